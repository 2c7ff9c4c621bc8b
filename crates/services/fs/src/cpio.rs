//! The cpio "newc" format (what Linux initramfs uses, `cpio -o -H newc`).
//!
//! Each entry is a 110-byte ASCII header (`070701` or `070702`, then 13
//! eight-digit hex fields), the NUL-terminated name, padding to 4 bytes,
//! the data, padding to 4 bytes. `TRAILER!!!` (with no file type) ends an
//! archive; archives
//! may be concatenated (with NUL padding between them). Every field is
//! checked: a bad archive gives an error with its offset, never a panic.
use crate::error::{Error, ErrorKind};
use crate::path;
use crate::ramfs::Ramfs;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;

/// What is wrong with an archive, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpioError {
    /// Byte offset in the archive of the header (or field) at fault.
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpio: {} at offset {:#x}", self.reason, self.offset)
    }
}

impl From<CpioError> for Error {
    fn from(e: CpioError) -> Self {
        Error::with_detail(ErrorKind::InvalidData, format!("{e}"))
    }
}

/// One archive member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Offset of its header.
    pub offset: usize,
    pub name: &'a str,
    pub ino: u32,
    pub mode: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub dev: (u32, u32),
    pub data: &'a [u8],
}

impl Entry<'_> {
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
}

/// Iterates over the members of (possibly concatenated) newc archives.
/// Stops after the first error.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Inside an archive (a header is due), as opposed to between archives.
    in_archive: bool,
    done: bool,
}

pub fn read(data: &[u8]) -> Reader<'_> {
    Reader { data, pos: 0, in_archive: false, done: false }
}

fn err(offset: usize, reason: impl Into<String>) -> CpioError {
    CpioError { offset, reason: reason.into() }
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

fn hex_field(h: &[u8], base: usize, idx: usize) -> Result<u32, CpioError> {
    let start = 6 + idx * 8;
    let f = &h[start..start + 8];
    let mut v: u32 = 0;
    for &c in f {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(err(base + start, "bad hex digit in header field")),
        };
        v = (v << 4) | d as u32;
    }
    Ok(v)
}

impl<'a> Reader<'a> {
    fn next_entry(&mut self) -> Result<Option<Entry<'a>>, CpioError> {
        let data = self.data;
        if !self.in_archive {
            // Between archives: skip NUL padding; the end of input is fine here.
            while self.pos < data.len() && data[self.pos] == 0 {
                self.pos += 1;
            }
            if self.pos >= data.len() {
                return Ok(None);
            }
            self.in_archive = true;
        }
        let at = self.pos;
        let rest = &data[at..];
        if rest.is_empty() {
            return Err(err(at, "archive ends without TRAILER!!! (truncated)"));
        }
        if rest.len() < HEADER_LEN {
            return Err(err(at, format!("truncated header ({} of {HEADER_LEN} bytes)", rest.len())));
        }
        let h = &rest[..HEADER_LEN];
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(err(at, "bad magic (not a cpio newc archive)"));
        }
        let ino = hex_field(h, at, 0)?;
        let mode = hex_field(h, at, 1)?;
        let nlink = hex_field(h, at, 4)?;
        let mtime = hex_field(h, at, 5)?;
        let filesize = hex_field(h, at, 6)? as usize;
        let dev = (hex_field(h, at, 7)?, hex_field(h, at, 8)?);
        let namesize = hex_field(h, at, 11)? as usize;
        if namesize == 0 {
            return Err(err(at, "empty name (namesize 0)"));
        }
        if namesize > path::PATH_MAX + 1 {
            return Err(err(at, format!("name too long (namesize {namesize})")));
        }
        let name_end = HEADER_LEN + namesize;
        if name_end > rest.len() {
            return Err(err(at, format!("name (namesize {namesize}) runs past the end of the archive")));
        }
        let raw_name = &rest[HEADER_LEN..name_end];
        if raw_name[namesize - 1] != 0 {
            return Err(err(at, "name is not NUL-terminated"));
        }
        let raw_name = &raw_name[..namesize - 1];
        if raw_name.contains(&0) {
            return Err(err(at, "NUL byte inside name"));
        }
        let name = core::str::from_utf8(raw_name).map_err(|_| err(at, "name is not UTF-8"))?;
        let mut data_start = align4(name_end).ok_or_else(|| err(at, "size overflow"))?;
        if filesize == 0 {
            // No data: the name's padding may be cut off at the very end.
            data_start = data_start.min(rest.len());
        }
        let data_end = data_start.checked_add(filesize).ok_or_else(|| err(at, "size overflow"))?;
        if data_end > rest.len() {
            return Err(err(
                at,
                format!(
                    "file size {filesize} runs past the end of the archive ({} bytes left)",
                    rest.len().saturating_sub(data_start)
                ),
            ));
        }
        let next = align4(data_end).ok_or_else(|| err(at, "size overflow"))?;
        // The final padding may be missing at the very end of the input.
        self.pos = at + next.min(rest.len());
        // The trailer is a name *and* no file type (GNU cpio and the Linux
        // kernel's gen_init_cpio write mode 0): a regular file or directory
        // a rootfs really holds under that name is an entry like any other
        // (issue 11.8: it vanished, and was taken for the end).
        if name == TRAILER && mode & S_IFMT == 0 {
            self.in_archive = false;
            return self.next_entry();
        }
        Ok(Some(Entry { offset: at, name, ino, mode, nlink, mtime, dev, data: &rest[data_start..data_end] }))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, CpioError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Builds a ramfs from an archive: directories, regular files (their bytes
/// borrowed from `data`, hard links shared), symbolic links. Device nodes,
/// FIFOs and sockets are skipped. Names are normalised (`./a`, `/a` and `a`
/// are the same; `..` cannot climb above the root). A later entry for an
/// existing file replaces it, as the kernel's initramfs unpacker does.
pub fn load(data: &'static [u8]) -> Result<Ramfs, CpioError> {
    let fs = Ramfs::new();
    // (dev, ino) -> first path, for hard links.
    let mut links: BTreeMap<(u32, u32, u32), String> = BTreeMap::new();
    for e in read(data) {
        let e = e?;
        let at = e.offset;
        let comps = path::components(e.name).map_err(|x| err(at, format!("bad name {:?}: {x}", e.name)))?;
        let rel = path::join_rel(&comps);
        let perm = e.mode & 0o7777;
        let mtime = u64::from(e.mtime);
        let fail = |x: Error| err(at, format!("{rel:?}: {x}"));
        if rel.is_empty() {
            if e.file_type() == S_IFDIR {
                fs.set_attributes("", perm, mtime).map_err(fail)?;
            }
            continue;
        }
        // Parents that the archive does not list come into being as 0755 directories.
        if let Some((parent, _)) = path::split_last(&rel)
            && !parent.is_empty()
        {
            fs.mkdir_p(parent, 0o755).map_err(fail)?;
        }
        match e.file_type() {
            S_IFDIR => fs.mkdir_p(&rel, perm).map_err(fail)?,
            S_IFREG => {
                remove_existing(&fs, &rel).map_err(fail)?;
                let key = (e.dev.0, e.dev.1, e.ino);
                match (e.nlink > 1, links.get(&key)) {
                    (true, Some(first)) => {
                        fs.hard_link(first, &rel).map_err(fail)?;
                        // newc stores the data with the last link only.
                        if !e.data.is_empty() {
                            fs.set_static_data(&rel, e.data).map_err(fail)?;
                        }
                    }
                    _ => {
                        fs.add_static_file(&rel, e.data, perm, mtime).map_err(fail)?;
                        if e.nlink > 1 {
                            links.insert(key, rel.clone());
                        }
                    }
                }
            }
            S_IFLNK => {
                let target = core::str::from_utf8(e.data).map_err(|_| err(at, "symlink target is not UTF-8"))?;
                if target.is_empty() || target.as_bytes().contains(&0) {
                    return Err(err(at, "bad symlink target"));
                }
                remove_existing(&fs, &rel).map_err(fail)?;
                crate::vfs::FileSystem::symlink(&fs, target, &rel).map_err(fail)?;
            }
            _ => {} // device nodes, FIFOs, sockets: nothing to hold them
        }
    }
    Ok(fs)
}

fn remove_existing(fs: &Ramfs, rel: &str) -> Result<(), Error> {
    use crate::vfs::FileSystem;
    match fs.metadata(rel) {
        Ok(m) if m.is_dir() => Err(Error::new(ErrorKind::IsADirectory)),
        Ok(_) => fs.remove_file(rel),
        Err(_) => Ok(()),
    }
}

/// Builds a newc archive (for tests and tools): `(name, mode, data)`.
pub fn build(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ino = 1;
    let mut push = |out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]| {
        let hdr = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        ino += 1;
        out.extend_from_slice(hdr.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    };
    for (name, mode, data) in entries {
        push(&mut out, name, *mode, data);
    }
    push(&mut out, TRAILER, 0, &[]);
    out
}
