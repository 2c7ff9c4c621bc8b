//! cpio "newc" archives: the initrd behind `unikit run --rootfs DIR`
//! ([`pack`]), and archives built entry by entry ([`Archive`], the Xen test
//! bed's dom0 initramfs).
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Archive of everything under `dir` (paths relative to it, sorted, so the
/// same tree always gives the same bytes).
pub fn pack(dir: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(dir).with_context(|| format!("--rootfs {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("--rootfs {} is not a directory", dir.display());
    }
    let mut out = Vec::new();
    let mut ino = 1;
    walk(dir, dir, &mut out, &mut ino)?;
    entry(&mut out, "TRAILER!!!", 0, 0, 0, &[])?;
    Ok(out)
}

/// An archive built in memory, entry by entry. Parent directories must be
/// added before what they contain (the kernel unpacks in order).
pub struct Archive {
    out: Vec<u8>,
    ino: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Self::new()
    }
}

impl Archive {
    pub fn new() -> Archive {
        Archive { out: Vec::new(), ino: 1 }
    }

    fn next_ino(&mut self) -> u32 {
        self.ino += 1;
        self.ino
    }

    pub fn dir(&mut self, name: &str, perm: u32) -> Result<()> {
        let ino = self.next_ino();
        entry(&mut self.out, name, 0o040000 | (perm & 0o7777), ino, 0, &[])
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        let ino = self.next_ino();
        entry(&mut self.out, name, 0o100000 | (perm & 0o7777), ino, 0, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let ino = self.next_ino();
        entry(&mut self.out, name, 0o120777, ino, 0, target.as_bytes())
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        entry(&mut self.out, "TRAILER!!!", 0, 0, 0, &[])?;
        Ok(self.out)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<u8>, ino: &mut u32) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let Some(name) = rel.to_str() else { bail!("{}: file names must be UTF-8", path.display()) };
        let meta = std::fs::symlink_metadata(&path).with_context(|| format!("cannot stat {}", path.display()))?;
        let perm = meta.permissions().mode() & 0o7777;
        *ino += 1;
        let ft = meta.file_type();
        if ft.is_dir() {
            entry(out, name, 0o040000 | perm, *ino, meta.mtime(), &[])?;
            walk(root, &path, out, ino)?;
        } else if ft.is_file() {
            let data = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            entry(out, name, 0o100000 | perm, *ino, meta.mtime(), &data)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let Some(t) = target.to_str() else { bail!("{}: link target must be UTF-8", path.display()) };
            entry(out, name, 0o120777, *ino, meta.mtime(), t.as_bytes())?;
        } // sockets, fifos and devices have no place in an initrd
    }
    Ok(())
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn entry(out: &mut Vec<u8>, name: &str, mode: u32, ino: u32, mtime: i64, data: &[u8]) -> Result<()> {
    let Ok(size) = u32::try_from(data.len()) else { bail!("{name}: files over 4 GiB do not fit in a cpio archive") };
    write!(
        out,
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
        0,
        0,
        if mode & 0o170000 == 0o040000 { 2 } else { 1 },
        mtime.clamp(0, u32::MAX as i64) as u32,
        0,
        0,
        0,
        0,
        name.len() + 1,
        0
    )?;
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_a_tree_the_host_cpio_can_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("static")).unwrap();
        std::fs::write(d.path().join("index.html"), b"<h1>hi</h1>").unwrap();
        std::fs::write(d.path().join("static/a.txt"), b"abc").unwrap();
        std::os::unix::fs::symlink("index.html", d.path().join("home.html")).unwrap();
        let a = pack(d.path()).unwrap();
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        let s = String::from_utf8_lossy(&a);
        for name in ["index.html", "static", "static/a.txt", "home.html", "TRAILER!!!"] {
            assert!(s.contains(&format!("{name}\0")), "{name} missing");
        }
        // The same tree gives the same bytes.
        assert_eq!(a, pack(d.path()).unwrap());
        // Cross-check with the host's cpio when it is installed.
        if let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            child.stdin.take().unwrap().write_all(&a).unwrap();
            let out = child.wait_with_output().unwrap();
            let list = String::from_utf8_lossy(&out.stdout);
            assert_eq!(list.lines().collect::<Vec<_>>(), ["home.html", "index.html", "static", "static/a.txt"]);
        }
    }

    #[test]
    fn archive_entries_the_host_cpio_can_read() {
        let mut a = Archive::new();
        a.dir("etc", 0o755).unwrap();
        a.file("etc/init", 0o755, b"#!/bin/sh\n").unwrap();
        a.symlink("sh", "bin/busybox").unwrap();
        let bytes = a.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let d = tempfile::tempdir().unwrap();
        if let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-i", "-d", "--quiet"])
            .current_dir(d.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
        {
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            assert!(child.wait().unwrap().success());
            assert_eq!(std::fs::read(d.path().join("etc/init")).unwrap(), b"#!/bin/sh\n");
            let mode = std::fs::metadata(d.path().join("etc/init")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o755);
            assert_eq!(std::fs::read_link(d.path().join("sh")).unwrap(), Path::new("bin/busybox"));
        }
    }

    #[test]
    fn refuses_a_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        assert!(pack(&f).unwrap_err().to_string().contains("not a directory"));
        assert!(pack(&d.path().join("missing")).is_err());
    }
}
