//! Crash consistency of FAT on the host: every device write of a sequence
//! of file operations is logged, and the image as it would be after a crash
//! following each one (every prefix of the log) is checked with
//! `fsck.fat -n` and mounted again. A VMM kill loses exactly the writes not
//! yet issued, so these prefixes are every state a kill can leave.
extern crate std;

use crate::kdev::{BlockDevice, DevError, check_block_request};
use crate::*;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use std::process::Command;

/// An in-memory disk that logs every write and flush.
struct LogDisk {
    data: spin::Mutex<Vec<u8>>,
    /// `(byte offset, bytes)`; a flush is logged as an empty write.
    log: spin::Mutex<Vec<(usize, Vec<u8>)>>,
}

impl BlockDevice for LogDisk {
    fn name(&self) -> &str {
        "log"
    }
    fn block_size(&self) -> usize {
        512
    }
    fn num_blocks(&self) -> u64 {
        self.data.lock().len() as u64 / 512
    }
    fn read_only(&self) -> bool {
        false
    }
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> core::result::Result<(), DevError> {
        check_block_request(self, block, buf.len())?;
        let at = block as usize * 512;
        buf.copy_from_slice(&self.data.lock()[at..at + buf.len()]);
        Ok(())
    }
    fn write_blocks(&self, block: u64, buf: &[u8]) -> core::result::Result<(), DevError> {
        check_block_request(self, block, buf.len())?;
        let at = block as usize * 512;
        self.data.lock()[at..at + buf.len()].copy_from_slice(buf);
        self.log.lock().push((at, buf.to_vec()));
        Ok(())
    }
    fn flush(&self) -> core::result::Result<(), DevError> {
        self.log.lock().push((0, Vec::new()));
        Ok(())
    }
}

fn clock() -> u64 {
    1_700_000_000
}

#[path = "../../../../tests/common/fsck.rs"]
mod fsck_fat;

fn fsck() -> Option<std::path::PathBuf> {
    fsck_fat::fsck_fat()
}

/// `fsck.fat -n` on `img`: its complaints, without the banner, the summary
/// and the dirty-bit lines.
fn complaints(fsck: &std::path::Path, img: &[u8], tag: &str) -> Vec<String> {
    let path = std::env::temp_dir().join(format!("unikit-fs-crash-{}-{tag}.img", std::process::id()));
    std::fs::write(&path, img).unwrap();
    let out = Command::new(fsck).arg("-n").arg(&path).output().unwrap();
    std::fs::remove_file(&path).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().map(str::trim).filter(|l| !fsck_fat::is_benign_line(l)).map(String::from).collect()
}

/// A formatted disk (FAT12 4 MiB, FAT16 8 MiB, FAT32 40 MiB: each type
/// needs its number of clusters)
/// with its write log emptied.
fn formatted(bits: u8) -> Arc<LogDisk> {
    let size = match bits {
        12 => 4 << 20,
        16 => 8 << 20,
        _ => 40 << 20,
    };
    let d = Arc::new(LogDisk { data: spin::Mutex::new(vec![0; size]), log: spin::Mutex::new(Vec::new()) });
    FatFs::format(&Disk::new(d.clone()).unwrap(), &FormatOptions { label: None, fat_bits: Some(bits) }).unwrap();
    d.log.lock().clear();
    d
}

/// Runs `ops` on a mount of `disk`, then calls `check` with every state a
/// crash during `ops` can leave: `(write index, image, synced)` where
/// `synced` is the last value `ops` had reported durable before that write.
fn each_crash_state(
    disk: &Arc<LogDisk>,
    ops: impl FnOnce(&Vfs, &dyn Fn(u64)),
    mut check: impl FnMut(usize, &[u8], Option<u64>),
) -> usize {
    let base = disk.data.lock().clone();
    let marks: spin::Mutex<Vec<(usize, u64)>> = spin::Mutex::new(Vec::new());
    {
        let fs = Arc::new(FatFs::mount(Disk::new(disk.clone()).unwrap(), clock).unwrap());
        let v = Vfs::new(Arc::new(Ramfs::new()));
        v.mount("/d", fs).unwrap();
        let synced = |n: u64| marks.lock().push((disk.log.lock().len(), n));
        ops(&v, &synced);
    }
    let log = disk.log.lock().clone();
    let marks = marks.into_inner();
    let mut img = base;
    for (i, (at, bytes)) in log.iter().enumerate() {
        img[*at..*at + bytes.len()].copy_from_slice(bytes);
        let synced = marks.iter().rev().find(|(k, _)| *k <= i + 1).map(|m| m.1);
        check(i, &img, synced);
    }
    log.len()
}

/// Reads the counter the way examples/counter does (two checksummed
/// records; here a plain number per record is enough).
fn read_count(img: &[u8]) -> core::result::Result<Option<u64>, String> {
    let d = Arc::new(LogDisk { data: spin::Mutex::new(img.to_vec()), log: spin::Mutex::new(Vec::new()) });
    let fs = FatFs::mount(Disk::new(d).unwrap(), clock).map_err(|e| format!("mount: {e}"))?;
    let v = Vfs::new(Arc::new(Ramfs::new()));
    v.mount("/d", Arc::new(fs)).unwrap();
    let data = match v.read("/d/n.txt") {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("read: {e}")),
    };
    Ok(data
        .chunks(512)
        .filter_map(|r| core::str::from_utf8(r).ok()?.split('\n').next()?.trim().parse::<u64>().ok())
        .max())
}

/// fsck.fat's findings that cost no data: lost clusters, FAT copies that
/// differ, and a chain longer than its file's size (the chain was extended
/// and the crash came before the entry's new size).
fn benign(l: &str) -> bool {
    if let Some(rest) = l.strip_prefix("File size is ") {
        // "File size is A bytes, cluster chain length is [> ]B bytes."
        let num = |s: &str| s.trim_start_matches("> ").split(' ').next().and_then(|n| n.parse::<u64>().ok());
        let size = num(rest);
        let chain = rest.split("cluster chain length is ").nth(1).and_then(num);
        return matches!((size, chain), (Some(a), Some(b)) if b > a);
    }
    l.starts_with("Reclaimed ")
        || l.starts_with("FATs differ but appear to be intact")
        || l.starts_with("Using first FAT")
        || l.starts_with("Free cluster summary")
        || l.starts_with("Truncating file to ")
        || l.starts_with("Auto-correcting")
        || l.starts_with('/')
}

/// Whole-file rewrites (truncate, write, sync), appends that allocate
/// clusters, and removes: a crash at any write leaves no directory entry
/// pointing at a free cluster, no cross-linked clusters and no file longer
/// than its chain. What fsck.fat may still find is lost clusters (allocated,
/// in no file), FAT copies that differ (a crash between the copies' writes
/// of one cell) and the dirty bit.
#[test]
fn fat_crash_at_every_write_leaves_no_dangling_entry() {
    let Some(fsck) = fsck() else {
        std::eprintln!(
            "SKIPPED fat_crash_at_every_write_leaves_no_dangling_entry: fsck.fat not installed (dosfstools)"
        );
        return;
    };
    for bits in [12u8, 16, 32] {
        let disk = formatted(bits);
        let n = each_crash_state(
            &disk,
            |v, _| {
                for i in 0..6u64 {
                    v.write("/d/n.txt", format!("{i}\n").repeat(300 * i as usize + 1).as_bytes()).unwrap();
                }
                let mut f = v.open("/d/log.txt", OpenOptions::new().append(true).create(true)).unwrap();
                for i in 0..4 {
                    f.write_all(&[b'a' + i; 1500]).unwrap();
                    f.sync_all().unwrap();
                }
                drop(f);
                v.remove_file("/d/log.txt").unwrap();
                v.create_dir("/d/sub").unwrap();
                v.write("/d/sub/x", b"x").unwrap();
                v.rename("/d/sub/x", "/d/y").unwrap();
            },
            |i, img, _| {
                // FAT32 images are 40 MiB: check a sample of the states.
                if bits == 32 && i % 5 != 0 {
                    return;
                }
                // The mount's own checks (fatcheck.rs) accept every state.
                let d = Arc::new(LogDisk { data: spin::Mutex::new(img.to_vec()), log: spin::Mutex::new(Vec::new()) });
                if let Err(e) = FatFs::mount(Disk::new(d).unwrap(), clock) {
                    panic!("FAT{bits}, crash after write {i}: the mount refuses the image: {e}");
                }
                let bad: Vec<String> = complaints(&fsck, img, "a").into_iter().filter(|l| !benign(l)).collect();
                assert!(bad.is_empty(), "FAT{bits}, crash after write {i}: fsck.fat -n found\n{}", bad.join("\n"));
            },
        );
        assert!(n > 40, "FAT{bits}: only {n} writes logged");
    }
}

/// The counter's pattern (a fixed-size file of two records rewritten in
/// turn, synced each time): a crash at any write leaves an image fsck.fat
/// finds clean apart from the dirty bit, and the last synced count (or the
/// next one) readable.
#[test]
fn fat_crash_at_every_write_keeps_the_synced_count() {
    let fsck = fsck();
    if fsck.is_none() {
        std::eprintln!(
            "fat_crash_at_every_write_keeps_the_synced_count: fsck.fat not installed, checking the count only"
        );
    }
    for bits in [12u8, 16, 32] {
        let disk = formatted(bits);
        each_crash_state(
            &disk,
            |v, synced| {
                for n in 1..=12u64 {
                    let mut rec = format!("{n}\n").into_bytes();
                    rec.resize(512, b' ');
                    let mut f = v.open("/d/n.txt", OpenOptions::new().write(true).create(true)).unwrap();
                    f.seek(SeekFrom::Start((n % 2) * 512)).unwrap();
                    f.write_all(&rec).unwrap();
                    f.sync_all().unwrap();
                    synced(n);
                }
            },
            |i, img, synced| {
                if let Some(fsck) = fsck.as_deref().filter(|_| bits != 32 || i % 5 == 0) {
                    let c = complaints(fsck, img, "b");
                    // The file's first write (n = 1, before anything was
                    // synced) allocates its cluster: that may be lost.
                    let allowed = synced.is_none() && c.iter().all(|l| benign(l));
                    assert!(
                        c.is_empty() || allowed,
                        "FAT{bits}, crash after write {i}: fsck.fat -n found\n{}",
                        c.join("\n")
                    );
                }
                let got = read_count(img).unwrap_or_else(|e| panic!("FAT{bits}, crash after write {i}: {e}"));
                if let Some(s) = synced {
                    assert!(
                        got == Some(s) || got == Some(s + 1),
                        "FAT{bits}, crash after write {i}: synced {s}, found {got:?}"
                    );
                }
            },
        );
    }
}
