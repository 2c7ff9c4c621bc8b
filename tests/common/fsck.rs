//! `fsck.fat` (Debian dosfstools) for the FAT crash checks: where it is, and
//! which of its `-n` output lines say nothing worse than "the dirty bit is
//! set". Shared by the fs crate's crash-replay test and the crash-kill test
//! and bench (`#[path]` includes: it uses std only).
use std::path::PathBuf;

/// The installed `fsck.fat`, if any.
pub fn fsck_fat() -> Option<PathBuf> {
    ["/usr/sbin/fsck.fat", "/sbin/fsck.fat", "/usr/bin/fsck.fat"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// Whether a line of `fsck.fat -n` output (4.2) is its banner, its summary or
/// about the dirty bit alone, i.e. not a complaint about the file system.
pub fn is_benign_line(line: &str) -> bool {
    let l = line.trim();
    l.is_empty()
        || l.starts_with("fsck.fat ")
        || l.starts_with("Dirty bit is set")
        || l.starts_with("Automatically removing dirty bit")
        || l.starts_with("Leaving filesystem unchanged")
        // FAT32: the dirty bit (offset 0x41 = 65) is not in the backup boot
        // sector, and fsck.fat reports the difference.
        || l.starts_with("There are differences between boot sector and its backup")
        || l.starts_with("This is mostly harmless. Differences: (offset:original/backup)")
        || l == "65:01/00"
        || l.starts_with("Not automatically fixing this")
        || l.contains(" files, ")
}
