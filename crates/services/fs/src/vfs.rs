//! The virtual file system: a mount table of [`FileSystem`]s, path
//! resolution (normalisation, symbolic links, longest-prefix mount match)
//! and open files with a cursor.
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Lock;
use crate::path;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

/// Symbolic links followed while resolving one path.
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    File,
    Dir,
    Symlink,
}

impl FileType {
    pub fn is_file(&self) -> bool {
        *self == FileType::File
    }
    pub fn is_dir(&self) -> bool {
        *self == FileType::Dir
    }
    pub fn is_symlink(&self) -> bool {
        *self == FileType::Symlink
    }
}

/// Unix permission bits (`0o644`, ...). Recorded, not enforced: a unikernel
/// has one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    mode: u32,
    readonly: bool,
}

impl Permissions {
    pub fn mode(&self) -> u32 {
        self.mode & 0o7777
    }
    /// True on a read-only file system (or a file without write bits).
    pub fn readonly(&self) -> bool {
        self.readonly || self.mode & 0o222 == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub(crate) file_type: FileType,
    pub(crate) len: u64,
    pub(crate) mode: u32,
    pub(crate) readonly: bool,
    /// Seconds since the Unix epoch.
    pub(crate) modified: Option<u64>,
}

impl Metadata {
    pub fn new(file_type: FileType, len: u64, mode: u32, modified: Option<u64>) -> Self {
        Self { file_type, len, mode, readonly: false, modified }
    }
    pub fn file_type(&self) -> FileType {
        self.file_type
    }
    pub fn is_file(&self) -> bool {
        self.file_type.is_file()
    }
    pub fn is_dir(&self) -> bool {
        self.file_type.is_dir()
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type.is_symlink()
    }
    /// Size in bytes (a symlink: its target's length; a directory: 0 or its size on disk).
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn permissions(&self) -> Permissions {
        Permissions { mode: self.mode, readonly: self.readonly }
    }
    /// Last modification, as time since the Unix epoch (`None` if the file
    /// system does not record it).
    pub fn modified(&self) -> Option<Duration> {
        self.modified.map(Duration::from_secs)
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub(crate) name: String,
    pub(crate) dir: String,
    pub(crate) meta: Metadata,
}

impl DirEntry {
    /// For file-system implementations; `path()` is filled in by the VFS.
    pub fn new(name: String, meta: Metadata) -> Self {
        Self { name, dir: String::new(), meta }
    }
    pub fn file_name(&self) -> &str {
        &self.name
    }
    /// Absolute path of the entry.
    pub fn path(&self) -> String {
        let mut p = self.dir.clone();
        if !p.ends_with('/') {
            p.push('/');
        }
        p.push_str(&self.name);
        p
    }
    pub fn file_type(&self) -> FileType {
        self.meta.file_type
    }
    pub fn len(&self) -> u64 {
        self.meta.len
    }
    pub fn is_empty(&self) -> bool {
        self.meta.len == 0
    }
    /// Metadata as read when the directory was listed (symlinks not followed).
    pub fn metadata(&self) -> Metadata {
        self.meta.clone()
    }
}

/// Whether `FileSystem::open` may create the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Open an existing file only.
    No,
    /// Create it if it is missing.
    IfMissing,
    /// Create it; fail with `AlreadyExists` if it exists.
    New,
}

/// A file system implementation. Paths are relative to its root, already
/// normalised, components joined by `/`; `""` is the root. Symbolic links
/// in the middle of a path have been resolved by the VFS (for file systems
/// that have them); the last component is never followed here.
pub trait FileSystem: Send + Sync {
    /// Short type name: "ramfs", "fat".
    fn fs_type(&self) -> &'static str;
    /// Metadata of the entry itself (a symlink is not followed).
    fn metadata(&self, path: &str) -> Result<Metadata>;
    /// Opens a regular file (`IsADirectory` for a directory).
    fn open(&self, path: &str, create: Create) -> Result<Box<dyn FileHandle>>;
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>>;
    fn create_dir(&self, path: &str) -> Result<()>;
    fn remove_file(&self, path: &str) -> Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &str) -> Result<()>;
    /// Renames `from` to `to`, replacing a file (or an empty directory, when
    /// `from` is one) at `to`, as POSIX `rename` does.
    fn rename(&self, from: &str, to: &str) -> Result<()>;
    fn has_symlinks(&self) -> bool {
        false
    }
    fn read_link(&self, _path: &str) -> Result<String> {
        Err(Error::with_detail(ErrorKind::InvalidInput, "not a symbolic link"))
    }
    fn symlink(&self, _target: &str, _path: &str) -> Result<()> {
        Err(Error::with_detail(ErrorKind::Unsupported, "no symbolic links on this file system"))
    }
    /// Makes every completed write durable.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// Called when the file system is unmounted: write back and mark clean.
    fn unmount(&self) -> Result<()> {
        self.sync()
    }
}

/// An open regular file of some file system. Positions are explicit; the
/// cursor lives in [`File`].
pub trait FileHandle: Send + Sync {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize>;
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize>;
    fn set_len(&self, len: u64) -> Result<()>;
    fn metadata(&self) -> Result<Metadata>;
    /// Makes this file's completed writes durable.
    fn sync(&self) -> Result<()>;
}

/// Options for opening a file, as `std::fs::OpenOptions`.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
}

impl OpenOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn read(&mut self, v: bool) -> &mut Self {
        self.read = v;
        self
    }
    pub fn write(&mut self, v: bool) -> &mut Self {
        self.write = v;
        self
    }
    /// Every write goes to the end of the file (implies `write`).
    pub fn append(&mut self, v: bool) -> &mut Self {
        self.append = v;
        self
    }
    pub fn truncate(&mut self, v: bool) -> &mut Self {
        self.truncate = v;
        self
    }
    pub fn create(&mut self, v: bool) -> &mut Self {
        self.create = v;
        self
    }
    pub fn create_new(&mut self, v: bool) -> &mut Self {
        self.create_new = v;
        self
    }
    /// Opens `path` in the global VFS.
    pub fn open(&self, path: &str) -> Result<File> {
        crate::vfs().open(path, self)
    }
}

/// Where `seek` moves the cursor, as `std::io::SeekFrom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekFrom {
    Start(u64),
    End(i64),
    Current(i64),
}

/// An open file with a cursor.
pub struct File {
    handle: Box<dyn FileHandle>,
    pos: u64,
    read: bool,
    write: bool,
    append: bool,
    path: String,
}

impl core::fmt::Debug for File {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("File").field("path", &self.path).field("pos", &self.pos).finish()
    }
}

impl File {
    /// Opens an existing file for reading.
    pub fn open(path: &str) -> Result<File> {
        OpenOptions::new().read(true).open(path)
    }
    /// Opens a file for writing, creating it or truncating it.
    pub fn create(path: &str) -> Result<File> {
        OpenOptions::new().write(true).create(true).truncate(true).open(path)
    }
    /// Creates a new file for reading and writing; fails if it exists.
    pub fn create_new(path: &str) -> Result<File> {
        OpenOptions::new().read(true).write(true).create_new(true).open(path)
    }
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }
    /// The absolute path the file was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn err(&self, e: Error) -> Error {
        e.at(&self.path)
    }

    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if !self.read {
            return Err(self.err(Error::with_detail(ErrorKind::PermissionDenied, "file not opened for reading")));
        }
        let n = self.handle.read_at(self.pos, buf).map_err(|e| self.err(e))?;
        self.pos += n as u64;
        Ok(n)
    }

    pub fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = self.read(buf)?;
            if n == 0 {
                return Err(self.err(Error::new(ErrorKind::UnexpectedEof)));
            }
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads to the end of the file, appending to `buf`; returns the byte count.
    pub fn read_to_end(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let start = buf.len();
        if let Ok(m) = self.handle.metadata() {
            let hint = m.len.saturating_sub(self.pos).min(1 << 30) as usize;
            buf.try_reserve(hint).map_err(|_| self.err(Error::new(ErrorKind::OutOfMemory)))?;
        }
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(buf.len() - start);
            }
            buf.try_reserve(n).map_err(|_| self.err(Error::new(ErrorKind::OutOfMemory)))?;
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads to the end of the file, which must be UTF-8 (`InvalidData` otherwise).
    pub fn read_to_string(&mut self, buf: &mut String) -> Result<usize> {
        let mut v = Vec::new();
        let n = self.read_to_end(&mut v)?;
        let s = core::str::from_utf8(&v)
            .map_err(|_| self.err(Error::with_detail(ErrorKind::InvalidData, "stream did not contain valid UTF-8")))?;
        buf.push_str(s);
        Ok(n)
    }

    pub fn write(&mut self, buf: &[u8]) -> Result<usize> {
        if !self.write {
            return Err(self.err(Error::with_detail(ErrorKind::PermissionDenied, "file not opened for writing")));
        }
        if self.append {
            self.pos = self.handle.metadata().map_err(|e| self.err(e))?.len;
        }
        let n = self.handle.write_at(self.pos, buf).map_err(|e| self.err(e))?;
        self.pos += n as u64;
        Ok(n)
    }

    pub fn write_all(&mut self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf)?;
            if n == 0 {
                return Err(self.err(Error::new(ErrorKind::WriteZero)));
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// `write!(file, ...)` support.
    pub fn write_fmt(&mut self, args: core::fmt::Arguments<'_>) -> Result<()> {
        match args.as_str() {
            Some(s) => self.write_all(s.as_bytes()),
            None => self.write_all(alloc::fmt::format(args).as_bytes()),
        }
    }

    pub fn seek(&mut self, pos: SeekFrom) -> Result<u64> {
        let (base, off) = match pos {
            SeekFrom::Start(n) => {
                self.pos = n;
                return Ok(n);
            }
            SeekFrom::Current(off) => (self.pos, off),
            SeekFrom::End(off) => (self.handle.metadata().map_err(|e| self.err(e))?.len, off),
        };
        match base.checked_add_signed(off) {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(self.err(Error::with_detail(
                ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            ))),
        }
    }

    pub fn rewind(&mut self) -> Result<()> {
        self.pos = 0;
        Ok(())
    }

    pub fn stream_position(&self) -> u64 {
        self.pos
    }

    /// Writes go to the file system at once; `flush` makes them durable as
    /// `sync_all` does (a unikernel has no page cache in between).
    pub fn flush(&mut self) -> Result<()> {
        self.sync_all()
    }

    /// Makes the file's data and metadata durable on the device.
    pub fn sync_all(&self) -> Result<()> {
        self.handle.sync().map_err(|e| self.err(e))
    }

    pub fn sync_data(&self) -> Result<()> {
        self.sync_all()
    }

    pub fn metadata(&self) -> Result<Metadata> {
        self.handle.metadata().map_err(|e| self.err(e))
    }

    /// Truncates or extends (with zeros) the file; the cursor stays.
    pub fn set_len(&self, len: u64) -> Result<()> {
        if !self.write {
            return Err(self.err(Error::with_detail(ErrorKind::PermissionDenied, "file not opened for writing")));
        }
        self.handle.set_len(len).map_err(|e| self.err(e))
    }
}

impl Drop for File {
    /// Closing writes back what the file system still holds (errors are
    /// lost here, as in std: call `sync_all` to see them).
    fn drop(&mut self) {
        if self.write {
            let _ = self.handle.sync();
        }
    }
}

struct Mount {
    /// Normalised components of the mount point.
    at: Vec<String>,
    fs: Arc<dyn FileSystem>,
}

/// A mount table and the operations on absolute paths.
pub struct Vfs {
    mounts: Lock<Vec<Mount>>,
}

/// A path resolved to its file system.
struct Resolved {
    fs: Arc<dyn FileSystem>,
    /// The path inside `fs`.
    rel: String,
    /// The absolute path, symlinks followed.
    abs: Vec<String>,
    /// Components of `abs` that name the mount point.
    mount_depth: usize,
}

impl Vfs {
    /// A VFS with `root` mounted at `/`.
    pub fn new(root: Arc<dyn FileSystem>) -> Self {
        Self { mounts: Lock::new(alloc::vec![Mount { at: Vec::new(), fs: root }]) }
    }

    /// Mounts `fs` at `at`, replacing what was mounted there. The mount
    /// point is created in the parent file system if it is missing.
    pub fn mount(&self, at: &str, fs: Arc<dyn FileSystem>) -> Result<()> {
        let comps = path::components(at).map_err(|e| e.at(at))?;
        if !comps.is_empty() {
            match self.metadata(at) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(Error::new(ErrorKind::NotADirectory).at(at)),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // Best effort: a read-only parent still gets the mount.
                    let _ = self.create_dir_all(at);
                }
                Err(e) => return Err(e),
            }
        }
        let mut m = self.mounts.lock();
        let old = m.iter().position(|x| x.at == comps);
        match old {
            Some(i) => m[i].fs = fs,
            None => m.push(Mount { at: comps, fs }),
        }
        // Longest mount point first, so the first prefix match wins.
        m.sort_by_key(|x| core::cmp::Reverse(x.at.len()));
        Ok(())
    }

    /// Unmounts the file system at `at` (writing it back) and returns it.
    /// The root cannot be unmounted.
    pub fn unmount(&self, at: &str) -> Result<Arc<dyn FileSystem>> {
        let comps = path::components(at).map_err(|e| e.at(at))?;
        if comps.is_empty() {
            return Err(Error::with_detail(ErrorKind::InvalidInput, "cannot unmount /"));
        }
        let fs = {
            let mut m = self.mounts.lock();
            let i = m
                .iter()
                .position(|x| x.at == comps)
                .ok_or_else(|| Error::with_detail(ErrorKind::InvalidInput, "not a mount point").at(at))?;
            if m.iter().any(|x| x.at.len() > comps.len() && x.at.starts_with(&comps)) {
                return Err(Error::with_detail(ErrorKind::InvalidInput, "file systems are mounted below").at(at));
            }
            m.remove(i).fs
        };
        fs.unmount().map_err(|e| e.at(at))?;
        Ok(fs)
    }

    /// `(mount point, file-system type)` for every mount.
    pub fn mounts(&self) -> Vec<(String, &'static str)> {
        let m = self.mounts.lock();
        let mut v: Vec<_> = m.iter().map(|x| (path::join_abs(&x.at), x.fs.fs_type())).collect();
        v.sort();
        v
    }

    /// Writes back every mounted file system.
    pub fn sync(&self) -> Result<()> {
        let all: Vec<_> = self.mounts.lock().iter().map(|x| (path::join_abs(&x.at), x.fs.clone())).collect();
        let mut first = Ok(());
        for (at, fs) in all {
            if let Err(e) = fs.sync()
                && first.is_ok()
            {
                first = Err(e.at(&at));
            }
        }
        first
    }

    fn find_mount(&self, comps: &[String]) -> (Arc<dyn FileSystem>, usize) {
        let m = self.mounts.lock();
        for x in m.iter() {
            if comps.starts_with(&x.at) {
                return (x.fs.clone(), x.at.len());
            }
        }
        unreachable!("the root is always mounted")
    }

    /// Resolves `p`: normalises it, follows symbolic links in every
    /// component but the last (and the last too if `follow_last`), and
    /// finds the file system that holds it.
    fn resolve(&self, p: &str, follow_last: bool) -> Result<Resolved> {
        let mut comps = path::components(p).map_err(|e| e.at(p))?;
        let mut hops = 0;
        'restart: loop {
            let (fs, depth) = self.find_mount(&comps);
            if fs.has_symlinks() {
                let n = comps.len() - depth;
                let limit = if follow_last { n } else { n.saturating_sub(1) };
                for i in 0..limit {
                    let rel = path::join_rel(&comps[depth..depth + i + 1]);
                    match fs.metadata(&rel) {
                        Ok(m) if m.is_symlink() => {
                            hops += 1;
                            if hops > MAX_SYMLINK_HOPS {
                                return Err(Error::new(ErrorKind::FilesystemLoop).at(p));
                            }
                            let target = fs.read_link(&rel).map_err(|e| e.at(p))?;
                            let mut next: Vec<String> = comps[..depth + i].to_vec();
                            path::push_components(&mut next, &target).map_err(|e| e.at(p))?;
                            next.extend(comps[depth + i + 1..].iter().cloned());
                            comps = next;
                            continue 'restart;
                        }
                        Ok(_) => {}
                        // The operation itself reports the missing component.
                        Err(_) => break,
                    }
                }
            }
            let rel = path::join_rel(&comps[depth..]);
            return Ok(Resolved { fs, rel, abs: comps, mount_depth: depth });
        }
    }

    pub fn open(&self, p: &str, o: &OpenOptions) -> Result<File> {
        let write = o.write || o.append;
        if !o.read && !write {
            return Err(Error::with_detail(ErrorKind::InvalidInput, "open needs read, write or append").at(p));
        }
        if (o.create || o.create_new || o.truncate) && !write {
            return Err(Error::with_detail(ErrorKind::InvalidInput, "create or truncate without write access").at(p));
        }
        if o.truncate && o.append {
            return Err(Error::with_detail(ErrorKind::InvalidInput, "truncate and append together").at(p));
        }
        let r = self.resolve(p, !o.create_new)?;
        let abs = path::join_abs(&r.abs);
        let create = if o.create_new {
            Create::New
        } else if o.create {
            Create::IfMissing
        } else {
            Create::No
        };
        if r.rel.is_empty() {
            return Err(Error::new(ErrorKind::IsADirectory).at(&abs));
        }
        let handle = r.fs.open(&r.rel, create).map_err(|e| e.at(&abs))?;
        if o.truncate {
            handle.set_len(0).map_err(|e| e.at(&abs))?;
        }
        Ok(File { handle, pos: 0, read: o.read, write, append: o.append, path: abs })
    }

    /// Metadata, following symbolic links.
    pub fn metadata(&self, p: &str) -> Result<Metadata> {
        let r = self.resolve(p, true)?;
        r.fs.metadata(&r.rel).map_err(|e| e.at(&path::join_abs(&r.abs)))
    }

    /// Metadata of the entry itself (a symlink is not followed).
    pub fn symlink_metadata(&self, p: &str) -> Result<Metadata> {
        let r = self.resolve(p, false)?;
        r.fs.metadata(&r.rel).map_err(|e| e.at(&path::join_abs(&r.abs)))
    }

    pub fn exists(&self, p: &str) -> bool {
        self.metadata(p).is_ok()
    }

    /// The entries of a directory, sorted by name (no `.` and `..`).
    pub fn read_dir(&self, p: &str) -> Result<ReadDir> {
        let r = self.resolve(p, true)?;
        let abs = path::join_abs(&r.abs);
        let mut entries = r.fs.read_dir(&r.rel).map_err(|e| e.at(&abs))?;
        for e in entries.iter_mut() {
            e.dir = abs.clone();
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ReadDir { entries: entries.into_iter() })
    }

    pub fn create_dir(&self, p: &str) -> Result<()> {
        let r = self.resolve(p, false)?;
        let abs = path::join_abs(&r.abs);
        if r.rel.is_empty() {
            return Err(Error::new(ErrorKind::AlreadyExists).at(&abs));
        }
        r.fs.create_dir(&r.rel).map_err(|e| e.at(&abs))
    }

    /// Creates a directory and its missing parents.
    pub fn create_dir_all(&self, p: &str) -> Result<()> {
        let comps = path::components(p).map_err(|e| e.at(p))?;
        for i in 1..=comps.len() {
            let sub = path::join_abs(&comps[..i]);
            match self.metadata(&sub) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => return Err(Error::new(ErrorKind::NotADirectory).at(&sub)),
                Err(e) if e.kind() == ErrorKind::NotFound => match self.create_dir(&sub) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn remove_file(&self, p: &str) -> Result<()> {
        let r = self.resolve(p, false)?;
        let abs = path::join_abs(&r.abs);
        if r.rel.is_empty() {
            return Err(Error::new(ErrorKind::IsADirectory).at(&abs));
        }
        r.fs.remove_file(&r.rel).map_err(|e| e.at(&abs))
    }

    pub fn remove_dir(&self, p: &str) -> Result<()> {
        let r = self.resolve(p, false)?;
        let abs = path::join_abs(&r.abs);
        if r.rel.is_empty() {
            return Err(Error::with_detail(ErrorKind::PermissionDenied, "a mount point cannot be removed").at(&abs));
        }
        r.fs.remove_dir(&r.rel).map_err(|e| e.at(&abs))
    }

    /// Removes a directory and everything in it (symlinks are removed, not followed).
    pub fn remove_dir_all(&self, p: &str) -> Result<()> {
        let abs = path::normalize(p)?;
        for e in self.read_dir(&abs)? {
            let e = e?;
            if e.file_type().is_dir() {
                self.remove_dir_all(&e.path())?;
            } else {
                self.remove_file(&e.path())?;
            }
        }
        self.remove_dir(&abs)
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let a = self.resolve(from, false)?;
        let b = self.resolve(to, false)?;
        let abs_a = path::join_abs(&a.abs);
        if !Arc::ptr_eq(&a.fs, &b.fs) || a.mount_depth != b.mount_depth {
            return Err(Error::new(ErrorKind::CrossesDevices).at(&abs_a));
        }
        if a.rel.is_empty() || b.rel.is_empty() {
            return Err(Error::with_detail(ErrorKind::PermissionDenied, "a mount point cannot be renamed").at(&abs_a));
        }
        a.fs.rename(&a.rel, &b.rel).map_err(|e| e.at(&abs_a))
    }

    pub fn read_link(&self, p: &str) -> Result<String> {
        let r = self.resolve(p, false)?;
        r.fs.read_link(&r.rel).map_err(|e| e.at(&path::join_abs(&r.abs)))
    }

    /// Creates a symbolic link at `link` pointing to `target`.
    pub fn symlink(&self, target: &str, link: &str) -> Result<()> {
        let r = self.resolve(link, false)?;
        let abs = path::join_abs(&r.abs);
        if r.rel.is_empty() {
            return Err(Error::new(ErrorKind::AlreadyExists).at(&abs));
        }
        r.fs.symlink(target, &r.rel).map_err(|e| e.at(&abs))
    }

    /// The absolute path with every symbolic link followed.
    pub fn canonicalize(&self, p: &str) -> Result<String> {
        let r = self.resolve(p, true)?;
        let abs = path::join_abs(&r.abs);
        r.fs.metadata(&r.rel).map_err(|e| e.at(&abs))?;
        Ok(abs)
    }

    pub fn read(&self, p: &str) -> Result<Vec<u8>> {
        let mut f = self.open(p, OpenOptions::new().read(true))?;
        let mut v = Vec::new();
        f.read_to_end(&mut v)?;
        Ok(v)
    }

    pub fn read_to_string(&self, p: &str) -> Result<String> {
        let mut f = self.open(p, OpenOptions::new().read(true))?;
        let mut s = String::new();
        f.read_to_string(&mut s)?;
        Ok(s)
    }

    /// Writes `data` as the whole content of `p` (created or truncated) and
    /// makes it durable.
    pub fn write(&self, p: &str, data: &[u8]) -> Result<()> {
        let mut f = self.open(p, OpenOptions::new().write(true).create(true).truncate(true))?;
        f.write_all(data)?;
        f.sync_all()
    }

    /// Copies a file's content; returns the number of bytes copied.
    pub fn copy(&self, from: &str, to: &str) -> Result<u64> {
        let data = self.read(from)?;
        self.write(to, &data)?;
        Ok(data.len() as u64)
    }
}

/// Iterator over directory entries, as `std::fs::ReadDir`.
pub struct ReadDir {
    entries: alloc::vec::IntoIter<DirEntry>,
}

impl Iterator for ReadDir {
    type Item = Result<DirEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next().map(Ok)
    }
}

// `ReadDir` yields `Result`s like std; this makes `for e in read_dir(..)?` with
// `let e = e?;` work and also lets callers collect plain entries.
impl ReadDir {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}
