//! cpio "newc" archives: the initrd behind `unikit run --rootfs DIR`
//! ([`pack`]), and archives built entry by entry ([`Archive`], the Xen test
//! bed's dom0 initramfs).
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Longest path the guest's file system takes, in bytes (crates/services/fs).
pub const PATH_MAX: usize = 4096;
/// Longest path component it takes, in bytes.
pub const NAME_MAX: usize = 255;
/// The name that ends a newc archive: a file with this name would end it early.
const TRAILER: &str = "TRAILER!!!";

/// Writes an archive of everything under `dir` (if any) to `out` (paths relative to
/// it, sorted, so the same tree always gives the same bytes), refusing to
/// grow it past `limit` bytes: each file's size is checked against that
/// before a byte of it is read, and files are streamed, never held whole.
/// Returns the archive's size and the special files (FIFOs, sockets, device
/// nodes) left out, which an initrd cannot carry.
///
/// With `extra`, one more file: `extra` is (its path in
/// the archive, relative to `/`; the host file). Its parent folders that
/// `dir` lacks are added; `dir` must not hold anything at that path. The
/// file is made executable (it is the `--exec` program).
pub fn pack_with(
    dir: Option<&Path>,
    extra: Option<(&str, &Path)>,
    out: &mut impl Write,
    limit: u64,
) -> Result<(u64, Vec<String>)> {
    let root = dir.unwrap_or(Path::new(""));
    let mut p = Packer { out, written: 0, limit, ino: 1, skipped: Vec::new(), root };
    if let Some(dir) = dir {
        let meta = std::fs::metadata(dir).with_context(|| format!("--rootfs {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("--rootfs {} is not a directory", dir.display());
        }
        p.walk(dir)?;
    }
    if let Some((rel, host)) = extra {
        let rel = rel.trim_start_matches('/');
        check_name(host, Path::new(rel))?;
        let mut parent = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            // A folder the tree has already went in with it.
            if dir.is_some_and(|d| std::fs::symlink_metadata(d.join(&parent)).is_ok()) {
                continue;
            }
            p.ino += 1;
            let ino = p.ino;
            p.entry(&parent, 0o040755, ino, 0, None)?;
        }
        if dir.is_some_and(|d| std::fs::symlink_metadata(d.join(rel)).is_ok()) {
            bail!("--rootfs {}: already holds /{rel}", root.display());
        }
        let meta = std::fs::metadata(host).with_context(|| format!("cannot read {}", host.display()))?;
        if !meta.is_file() {
            bail!("{}: not a regular file", host.display());
        }
        let perm = (meta.permissions().mode() & 0o7777) | 0o555;
        p.ino += 1;
        let ino = p.ino;
        p.entry(rel, 0o100000 | perm, ino, meta.mtime(), Some((host, meta.len())))?;
    }
    p.entry(TRAILER, 0, 0, 0, None)?;
    Ok((p.written, p.skipped))
}

/// Checks a path (relative to the rootfs) the guest must be able to take.
pub fn check_name(path: &Path, rel: &Path) -> Result<String> {
    let Some(name) = rel.to_str() else {
        bail!("--rootfs: {}: file names must be UTF-8 (the guest's file system takes no other)", path.display())
    };
    if name == TRAILER {
        bail!(
            "--rootfs: {}: a file named {TRAILER} cannot be carried (in a cpio archive that name ends the archive); rename it",
            path.display()
        );
    }
    if name.len() > PATH_MAX {
        bail!(
            "--rootfs: {}: the path is {} bytes long, over the guest's limit of {PATH_MAX}",
            path.display(),
            name.len()
        );
    }
    if let Some(c) = name.split('/').find(|c| c.len() > NAME_MAX) {
        bail!(
            "--rootfs: {}: the name {c:?} is {} bytes long, over the guest's limit of {NAME_MAX}",
            path.display(),
            c.len()
        );
    }
    Ok(name.to_string())
}

struct Packer<'a, W: Write> {
    out: &'a mut W,
    written: u64,
    limit: u64,
    ino: u32,
    skipped: Vec<String>,
    root: &'a Path,
}

impl<W: Write> Packer<'_, W> {
    fn walk(&mut self, dir: &Path) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(self.root).unwrap_or(&path);
            let meta = std::fs::symlink_metadata(&path).with_context(|| format!("cannot stat {}", path.display()))?;
            let ft = meta.file_type();
            if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
                self.skipped.push(rel.display().to_string());
                continue;
            }
            let name = check_name(&path, rel)?;
            let perm = meta.permissions().mode() & 0o7777;
            self.ino += 1;
            let ino = self.ino;
            if ft.is_dir() {
                self.entry(&name, 0o040000 | perm, ino, meta.mtime(), None)?;
                self.walk(&path)?;
            } else if ft.is_file() {
                self.entry(&name, 0o100000 | perm, ino, meta.mtime(), Some((&path, meta.len())))?;
            } else {
                let target = std::fs::read_link(&path)?;
                let Some(t) = target.to_str() else { bail!("{}: link target must be UTF-8", path.display()) };
                let mut hdr = Vec::new();
                entry(&mut hdr, &name, 0o120777, ino, meta.mtime(), t.as_bytes())?;
                self.put(&hdr, &name)?;
            }
        }
        Ok(())
    }

    /// Reserves `n` more bytes of the archive, or says which file broke the limit.
    fn reserve(&mut self, n: u64, name: &str) -> Result<()> {
        if self.written.saturating_add(n) > self.limit {
            let what = if self.root.as_os_str().is_empty() {
                "the initrd".to_string()
            } else {
                format!("--rootfs {}", self.root.display())
            };
            bail!("{what}: the archive would be larger than {} KiB (the guest's memory) at {name}", self.limit / 1024);
        }
        self.written += n;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8], name: &str) -> Result<()> {
        self.reserve(bytes.len() as u64, name)?;
        self.out.write_all(bytes).context("cannot write the rootfs archive")
    }

    /// One entry; a regular file's data is streamed from `file` (path, size).
    fn entry(&mut self, name: &str, mode: u32, ino: u32, mtime: i64, file: Option<(&Path, u64)>) -> Result<()> {
        let Some((path, size)) = file else {
            let mut hdr = Vec::new();
            entry(&mut hdr, name, mode, ino, mtime, &[])?;
            return self.put(&hdr, name);
        };
        let Ok(size32) = u32::try_from(size) else { bail!("{name}: files over 4 GiB do not fit in a cpio archive") };
        let mut hdr = Vec::new();
        header(&mut hdr, name, mode, ino, mtime, size32)?;
        // Checked before the file is opened: a huge file costs nothing.
        self.reserve(size.div_ceil(4) * 4, name)?;
        self.put(&hdr, name)?;
        let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let copied =
            std::io::copy(&mut f.take(size), self.out).with_context(|| format!("cannot read {}", path.display()))?;
        if copied != size {
            bail!("{}: the file changed while it was packed ({size} bytes, then {copied})", path.display());
        }
        let pad = (4 - size % 4) % 4;
        self.out.write_all(&[0u8; 3][..pad as usize]).context("cannot write the rootfs archive")?;
        Ok(())
    }
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

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn entry(out: &mut Vec<u8>, name: &str, mode: u32, ino: u32, mtime: i64, data: &[u8]) -> Result<()> {
    let Ok(size) = u32::try_from(data.len()) else { bail!("{name}: files over 4 GiB do not fit in a cpio archive") };
    header(out, name, mode, ino, mtime, size)?;
    out.extend_from_slice(data);
    pad4(out);
    Ok(())
}

/// A newc header and the padded name, for an entry of `size` data bytes.
fn header(out: &mut Vec<u8>, name: &str, mode: u32, ino: u32, mtime: i64, size: u32) -> Result<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(dir: &Path, out: &mut impl Write, limit: u64) -> Result<(u64, Vec<String>)> {
        pack_with(Some(dir), None, out, limit)
    }

    #[test]
    fn packs_a_tree_the_host_cpio_can_read() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("static")).unwrap();
        std::fs::write(d.path().join("index.html"), b"<h1>hi</h1>").unwrap();
        std::fs::write(d.path().join("static/a.txt"), b"abc").unwrap();
        std::os::unix::fs::symlink("index.html", d.path().join("home.html")).unwrap();
        let a = packed(d.path());
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        let s = String::from_utf8_lossy(&a);
        for name in ["index.html", "static", "static/a.txt", "home.html", "TRAILER!!!"] {
            assert!(s.contains(&format!("{name}\0")), "{name} missing");
        }
        // The same tree gives the same bytes.
        assert_eq!(a, packed(d.path()));
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

    /// (name, mode, data) of each entry of a newc archive.
    fn entries(a: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap() as usize;
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let h = &a[at..at + 110];
            let (mode, size, namesize) = (hex(&h[14..22]), hex(&h[54..62]), hex(&h[94..102]));
            let name = String::from_utf8(a[at + 110..at + 110 + namesize - 1].to_vec()).unwrap();
            let data_at = (at + 110 + namesize).div_ceil(4) * 4;
            if name == TRAILER {
                return out;
            }
            out.push((name, mode as u32, a[data_at..data_at + size].to_vec()));
            at = (data_at + size).div_ceil(4) * 4;
        }
    }

    #[test]
    fn an_extra_file_gets_its_missing_parents() {
        let d = tempfile::tempdir().unwrap();
        let prog = d.path().join("prog");
        std::fs::write(&prog, b"\x7fELF...").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o600)).unwrap();
        // No tree: the folders, then the file, executable.
        let mut v = Vec::new();
        pack_with(None, Some(("/usr/bin/prog", &prog)), &mut v, u64::MAX).unwrap();
        let e = entries(&v);
        let names: Vec<(&str, u32)> = e.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
        assert_eq!(names, [("usr", 0o040755), ("usr/bin", 0o040755), ("usr/bin/prog", 0o100755)]);
        assert_eq!(e[2].2, b"\x7fELF...");
        // With a tree that has usr/ but no usr/bin/: only usr/bin is added.
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/x"), b"x").unwrap();
        let mut v = Vec::new();
        pack_with(Some(&root), Some(("usr/bin/prog", &prog)), &mut v, u64::MAX).unwrap();
        let names: Vec<String> = entries(&v).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["usr", "usr/lib", "usr/lib/x", "usr/bin", "usr/bin/prog"]);
        // Never twice.
        let e = pack_with(Some(&root), Some(("usr/lib/x", &prog)), &mut Vec::new(), u64::MAX).unwrap_err();
        assert!(e.to_string().ends_with("already holds /usr/lib/x"), "{e}");
        // The limit counts the extra file too.
        let e = pack_with(None, Some(("bin/prog", &prog)), &mut Vec::new(), 300).unwrap_err().to_string();
        assert!(e.starts_with("the initrd: the archive would be larger than"), "{e}");
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
        assert!(pack(&f, &mut Vec::new(), u64::MAX).unwrap_err().to_string().contains("not a directory"));
        assert!(pack(&d.path().join("missing"), &mut Vec::new(), u64::MAX).is_err());
    }

    fn packed(dir: &Path) -> Vec<u8> {
        let mut v = Vec::new();
        let (n, skipped) = pack(dir, &mut v, u64::MAX).unwrap();
        assert_eq!(n, v.len() as u64);
        assert!(skipped.is_empty(), "{skipped:?}");
        v
    }

    #[test]
    fn size_limit_is_checked_before_reading() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("small"), b"abc").unwrap();
        let big = std::fs::File::create(d.path().join("zbig")).unwrap();
        // Sparse: 3 GiB that are never read.
        big.set_len(3 << 30).unwrap();
        let mut out = Vec::new();
        let e = pack(d.path(), &mut out, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("larger than 1024 KiB") && e.contains("zbig"), "{e}");
        assert!(out.len() < 4096, "nothing of the big file was read: {}", out.len());
        // Within the limit, the exact size counts.
        let mut out = Vec::new();
        std::fs::remove_file(d.path().join("zbig")).unwrap();
        let (n, _) = pack(d.path(), &mut out, u64::MAX).unwrap();
        assert_eq!(n as usize, out.len());
        assert!(pack(d.path(), &mut Vec::new(), n - 1).is_err());
        assert!(pack(d.path(), &mut Vec::new(), n).is_ok());
    }

    #[test]
    fn names_the_archive_cannot_carry_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("TRAILER!!!"), b"x").unwrap();
        let e = pack(d.path(), &mut Vec::new(), u64::MAX).unwrap_err().to_string();
        assert!(e.contains("TRAILER!!!") && e.contains("rename"), "{e}");
        // In a subdirectory the name is harmless.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/TRAILER!!!"), b"x").unwrap();
        packed(d.path());
        let d = tempfile::tempdir().unwrap();
        use std::os::unix::ffi::OsStrExt;
        std::fs::write(d.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
        let e = pack(d.path(), &mut Vec::new(), u64::MAX).unwrap_err().to_string();
        assert!(e.contains("UTF-8"), "{e}");
        assert!(check_name(Path::new("x"), Path::new(&"n".repeat(256))).unwrap_err().to_string().contains("255"));
        let deep = vec!["d".repeat(200); 21].join("/");
        assert!(check_name(Path::new("x"), Path::new(&deep)).unwrap_err().to_string().contains("4096"));
        check_name(Path::new("x"), Path::new(&"n".repeat(255))).unwrap();
    }

    #[test]
    fn special_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"x").unwrap();
        let fifo = std::ffi::CString::new(d.path().join("pipe").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        #[allow(unsafe_code)]
        let r = unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
        assert_eq!(r, 0);
        let _sock = std::os::unix::net::UnixListener::bind(d.path().join("sock")).unwrap();
        let mut v = Vec::new();
        let (_, skipped) = pack(d.path(), &mut v, u64::MAX).unwrap();
        assert_eq!(skipped, ["pipe", "sock"]);
        assert!(String::from_utf8_lossy(&v).contains("a\0"));
    }
}
