//! The EFI system partition: a FAT file system holding the UEFI loader
//! (`\EFI\BOOT\BOOTX64.EFI`, the path firmware boots removable and new
//! disks from) and the kernel, command line and initrd under `\unikit`.
use std::io::{Cursor, Write};

use anyhow::{Context, Result};

/// Files in the ESP: (path with `/` separators, contents).
pub fn build(files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let content: u64 = files.iter().map(|(_, d)| d.len() as u64 + 4096).sum();
    // FAT's own tables and a margin; at least 2 MiB, in whole MiB. The
    // unused part costs nothing in a sparse VMDK.
    let size = (content + content / 8 + (1 << 20)).max(2 << 20).next_multiple_of(1 << 20);
    let mut img = vec![0u8; size as usize];
    let fail = |e: std::io::Error| anyhow::anyhow!("cannot write the EFI system partition: {e}");
    fatfs::format_volume(Cursor::new(&mut img[..]), fatfs::FormatVolumeOptions::new().volume_label(*b"UNIKIT-ESP "))
        .map_err(fail)?;
    {
        let fs = fatfs::FileSystem::new(Cursor::new(&mut img[..]), fatfs::FsOptions::new()).map_err(fail)?;
        for (path, data) in files {
            let root = fs.root_dir();
            let (dirs, name) = path.rsplit_once('/').unwrap_or(("", path));
            let mut dir = root;
            for d in dirs.split('/').filter(|d| !d.is_empty()) {
                dir = match dir.open_dir(d) {
                    Ok(x) => x,
                    Err(_) => dir.create_dir(d).map_err(fail)?,
                };
            }
            let mut f = dir.create_file(name).map_err(fail)?;
            f.truncate().map_err(fail)?;
            f.write_all(data).with_context(|| format!("cannot write {path} into the EFI system partition"))?;
        }
        fs.unmount().map_err(fail)?;
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    #[test]
    fn files_read_back() {
        let big = vec![0x5a; 300 << 10];
        let img =
            super::build(&[("EFI/BOOT/BOOTX64.EFI", b"MZ loader"), ("unikit/kernel", &big), ("unikit/cmdline", b"")])
                .unwrap();
        assert_eq!(img.len() % (1 << 20), 0);
        let fs = fatfs::FileSystem::new(std::io::Cursor::new(img), fatfs::FsOptions::new()).unwrap();
        let mut s = Vec::new();
        fs.root_dir().open_file("efi/boot/bootx64.efi").unwrap().read_to_end(&mut s).unwrap();
        assert_eq!(s, b"MZ loader");
        s.clear();
        fs.root_dir().open_file("unikit/kernel").unwrap().read_to_end(&mut s).unwrap();
        assert_eq!(s, big);
    }
}
