//! An in-memory, writable file system. File contents loaded from the
//! initrd stay borrowed from it until first written (copy on write).
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Lock;
use crate::path::split_last;
use crate::vfs::{Create, DirEntry, FileHandle, FileSystem, FileType, Metadata};
use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

type Ino = u64;
const ROOT: Ino = 1;
/// Largest file ramfs holds (an `isize::MAX` vector is not a useful limit).
const MAX_FILE: u64 = 1 << 40;

enum Data {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl Data {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Static(s) => s,
            Data::Owned(v) => v,
        }
    }
    fn owned(&mut self) -> Result<&mut Vec<u8>> {
        if let Data::Static(s) = self {
            let mut v = Vec::new();
            v.try_reserve_exact(s.len()).map_err(|_| Error::new(ErrorKind::StorageFull))?;
            v.extend_from_slice(s);
            *self = Data::Owned(v);
        }
        match self {
            Data::Owned(v) => Ok(v),
            Data::Static(_) => unreachable!(),
        }
    }
}

enum Kind {
    File(Data),
    Dir(BTreeMap<String, Ino>),
    Symlink(String),
}

struct Node {
    kind: Kind,
    mode: u32,
    mtime: u64,
    /// Directory entries naming this node.
    links: u32,
    /// Open handles.
    open: u32,
}

impl Node {
    fn meta(&self) -> Metadata {
        let (t, len) = match &self.kind {
            Kind::File(d) => (FileType::File, d.bytes().len() as u64),
            Kind::Dir(_) => (FileType::Dir, 0),
            Kind::Symlink(s) => (FileType::Symlink, s.len() as u64),
        };
        Metadata::new(t, len, self.mode, Some(self.mtime))
    }
}

struct Tree {
    nodes: BTreeMap<Ino, Node>,
    next: Ino,
    /// Seconds since the epoch, for modification times.
    clock: fn() -> u64,
}

fn no_clock() -> u64 {
    0
}

impl Tree {
    fn node(&self, ino: Ino) -> &Node {
        self.nodes.get(&ino).expect("ramfs: dangling inode")
    }
    fn node_mut(&mut self, ino: Ino) -> &mut Node {
        self.nodes.get_mut(&ino).expect("ramfs: dangling inode")
    }

    /// Follows `path` from the root. Every component but the last must be
    /// a directory.
    fn walk(&self, path: &str) -> Result<Ino> {
        let mut cur = ROOT;
        if path.is_empty() {
            return Ok(cur);
        }
        for name in path.split('/') {
            match &self.node(cur).kind {
                Kind::Dir(entries) => {
                    cur = *entries.get(name).ok_or(Error::new(ErrorKind::NotFound))?;
                }
                _ => return Err(Error::new(ErrorKind::NotADirectory)),
            }
        }
        Ok(cur)
    }

    fn dir(&self, ino: Ino) -> Result<&BTreeMap<String, Ino>> {
        match &self.node(ino).kind {
            Kind::Dir(d) => Ok(d),
            _ => Err(Error::new(ErrorKind::NotADirectory)),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut BTreeMap<String, Ino>> {
        match &mut self.node_mut(ino).kind {
            Kind::Dir(d) => Ok(d),
            _ => Err(Error::new(ErrorKind::NotADirectory)),
        }
    }

    /// The parent directory of `path` and the last name.
    fn parent<'p>(&self, path: &'p str) -> Result<(Ino, &'p str)> {
        let (parent, name) = split_last(path).ok_or(Error::new(ErrorKind::AlreadyExists))?;
        let p = self.walk(parent)?;
        self.dir(p)?;
        Ok((p, name))
    }

    fn alloc(&mut self, kind: Kind, mode: u32) -> Ino {
        let ino = self.next;
        self.next += 1;
        let mtime = (self.clock)();
        self.nodes.insert(ino, Node { kind, mode, mtime, links: 0, open: 0 });
        ino
    }

    fn link(&mut self, dir: Ino, name: &str, ino: Ino) -> Result<()> {
        let now = (self.clock)();
        let d = self.dir_mut(dir)?;
        if d.contains_key(name) {
            return Err(Error::new(ErrorKind::AlreadyExists));
        }
        d.insert(name.to_owned(), ino);
        self.node_mut(dir).mtime = now;
        self.node_mut(ino).links += 1;
        Ok(())
    }

    fn unlink(&mut self, dir: Ino, name: &str) -> Result<Ino> {
        let now = (self.clock)();
        let ino = self.dir_mut(dir)?.remove(name).ok_or(Error::new(ErrorKind::NotFound))?;
        self.node_mut(dir).mtime = now;
        let n = self.node_mut(ino);
        n.links -= 1;
        self.collect(ino);
        Ok(ino)
    }

    /// Frees a node no directory names and no handle holds.
    fn collect(&mut self, ino: Ino) {
        let n = self.node(ino);
        if n.links == 0 && n.open == 0 {
            self.nodes.remove(&ino);
        }
    }

    fn create(&mut self, path: &str, kind: Kind, mode: u32) -> Result<Ino> {
        let (p, name) = self.parent(path)?;
        if self.dir(p)?.contains_key(name) {
            return Err(Error::new(ErrorKind::AlreadyExists));
        }
        let ino = self.alloc(kind, mode);
        self.link(p, name, ino)?;
        Ok(ino)
    }
}

/// An in-memory file system.
pub struct Ramfs {
    tree: Arc<Lock<Tree>>,
}

impl Default for Ramfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Ramfs {
    /// An empty file system (a root directory, mode 0755).
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node { kind: Kind::Dir(BTreeMap::new()), mode: 0o755, mtime: 0, links: 1, open: 0 });
        Self { tree: Arc::new(Lock::new(Tree { nodes, next: ROOT + 1, clock: no_clock })) }
    }

    /// Sets the clock for modification times (seconds since the epoch).
    pub fn set_clock(&self, clock: fn() -> u64) {
        self.tree.lock().clock = clock;
    }

    /// Adds a regular file whose bytes stay borrowed until written (for
    /// loading an initrd without copying it).
    pub fn add_static_file(&self, path: &str, data: &'static [u8], mode: u32, mtime: u64) -> Result<()> {
        let mut t = self.tree.lock();
        let ino = t.create(path, Kind::File(Data::Static(data)), mode)?;
        t.node_mut(ino).mtime = mtime;
        Ok(())
    }

    /// Adds another name for an existing file (`path` -> same node as `existing`).
    pub fn hard_link(&self, existing: &str, path: &str) -> Result<()> {
        let mut t = self.tree.lock();
        let ino = t.walk(existing)?;
        if matches!(t.node(ino).kind, Kind::Dir(_)) {
            return Err(Error::new(ErrorKind::IsADirectory));
        }
        let (p, name) = t.parent(path)?;
        t.link(p, name, ino)
    }

    /// Replaces a file's content with borrowed bytes (used for cpio hard
    /// links, whose data comes with the last link).
    pub(crate) fn set_static_data(&self, path: &str, data: &'static [u8]) -> Result<()> {
        let mut t = self.tree.lock();
        let ino = t.walk(path)?;
        match &mut t.node_mut(ino).kind {
            Kind::File(d) => {
                *d = Data::Static(data);
                Ok(())
            }
            _ => Err(Error::new(ErrorKind::InvalidInput)),
        }
    }

    /// Sets mode and modification time of an existing entry.
    pub fn set_attributes(&self, path: &str, mode: u32, mtime: u64) -> Result<()> {
        let mut t = self.tree.lock();
        let ino = t.walk(path)?;
        let n = t.node_mut(ino);
        n.mode = mode & 0o7777;
        n.mtime = mtime;
        Ok(())
    }

    /// Creates a directory with `mode`, and its missing parents (0755).
    pub(crate) fn mkdir_p(&self, path: &str, mode: u32) -> Result<()> {
        let mut t = self.tree.lock();
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(part);
            let last = i + 1 == parts.len();
            match t.walk(&cur) {
                Ok(ino) => {
                    if !matches!(t.node(ino).kind, Kind::Dir(_)) {
                        return Err(Error::new(ErrorKind::NotADirectory));
                    }
                    if last {
                        t.node_mut(ino).mode = mode;
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    t.create(&cur, Kind::Dir(BTreeMap::new()), if last { mode } else { 0o755 })?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl FileSystem for Ramfs {
    fn fs_type(&self) -> &'static str {
        "ramfs"
    }

    fn metadata(&self, path: &str) -> Result<Metadata> {
        let t = self.tree.lock();
        let ino = t.walk(path)?;
        Ok(t.node(ino).meta())
    }

    fn open(&self, path: &str, create: Create) -> Result<Box<dyn FileHandle>> {
        let mut t = self.tree.lock();
        let ino = match t.walk(path) {
            Ok(ino) => {
                if create == Create::New {
                    return Err(Error::new(ErrorKind::AlreadyExists));
                }
                match t.node(ino).kind {
                    Kind::File(_) => ino,
                    Kind::Dir(_) => return Err(Error::new(ErrorKind::IsADirectory)),
                    // The VFS follows the last link before calling open;
                    // one left here is dangling or a loop.
                    Kind::Symlink(_) => {
                        return Err(Error::with_detail(ErrorKind::NotFound, "dangling symbolic link"));
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound && create != Create::No => {
                t.create(path, Kind::File(Data::Owned(Vec::new())), 0o644)?
            }
            Err(e) => return Err(e),
        };
        t.node_mut(ino).open += 1;
        Ok(Box::new(RamFile { tree: self.tree.clone(), ino }))
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let t = self.tree.lock();
        let ino = t.walk(path)?;
        let d = t.dir(ino)?;
        Ok(d.iter().map(|(name, &i)| DirEntry::new(name.clone(), t.node(i).meta())).collect())
    }

    fn create_dir(&self, path: &str) -> Result<()> {
        let mut t = self.tree.lock();
        t.create(path, Kind::Dir(BTreeMap::new()), 0o755).map(|_| ())
    }

    fn remove_file(&self, path: &str) -> Result<()> {
        let mut t = self.tree.lock();
        let ino = t.walk(path)?;
        if matches!(t.node(ino).kind, Kind::Dir(_)) {
            return Err(Error::new(ErrorKind::IsADirectory));
        }
        let (p, name) = t.parent(path)?;
        t.unlink(p, name).map(|_| ())
    }

    fn remove_dir(&self, path: &str) -> Result<()> {
        let mut t = self.tree.lock();
        let ino = t.walk(path)?;
        if !t.dir(ino)?.is_empty() {
            return Err(Error::new(ErrorKind::DirectoryNotEmpty));
        }
        let (p, name) = t.parent(path)?;
        t.unlink(p, name).map(|_| ())
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        let mut t = self.tree.lock();
        let src = t.walk(from)?;
        let (sp, sname) = t.parent(from)?;
        let (dp, dname) = t.parent(to)?;
        let src_is_dir = matches!(t.node(src).kind, Kind::Dir(_));
        if src_is_dir && (to == from || to.starts_with(from) && to.as_bytes().get(from.len()) == Some(&b'/')) {
            if to == from {
                return Ok(());
            }
            return Err(Error::with_detail(ErrorKind::InvalidInput, "cannot move a directory into itself"));
        }
        if let Some(&dst) = t.dir(dp)?.get(dname) {
            if dst == src {
                return Ok(()); // same node (hard links or the same name): nothing to do
            }
            match (&t.node(dst).kind, src_is_dir) {
                (Kind::Dir(d), true) if d.is_empty() => {}
                (Kind::Dir(_), true) => return Err(Error::new(ErrorKind::DirectoryNotEmpty)),
                (Kind::Dir(_), false) => return Err(Error::new(ErrorKind::IsADirectory)),
                (_, true) => return Err(Error::new(ErrorKind::NotADirectory)),
                (_, false) => {}
            }
            t.unlink(dp, dname)?;
        }
        t.link(dp, dname, src)?;
        t.unlink(sp, sname)?;
        Ok(())
    }

    fn has_symlinks(&self) -> bool {
        true
    }

    fn read_link(&self, path: &str) -> Result<String> {
        let t = self.tree.lock();
        match &t.node(t.walk(path)?).kind {
            Kind::Symlink(s) => Ok(s.clone()),
            _ => Err(Error::with_detail(ErrorKind::InvalidInput, "not a symbolic link")),
        }
    }

    fn symlink(&self, target: &str, path: &str) -> Result<()> {
        let mut t = self.tree.lock();
        t.create(path, Kind::Symlink(target.to_owned()), 0o777).map(|_| ())
    }
}

struct RamFile {
    tree: Arc<Lock<Tree>>,
    ino: Ino,
}

impl RamFile {
    /// Runs `f` on the file's data; a success updates the modification time.
    fn modify<R>(&self, f: impl FnOnce(&mut Data) -> Result<R>) -> Result<R> {
        let mut t = self.tree.lock();
        let now = (t.clock)();
        let n = t.node_mut(self.ino);
        let Kind::File(d) = &mut n.kind else {
            return Err(Error::new(ErrorKind::IsADirectory));
        };
        let r = f(d)?;
        n.mtime = now;
        Ok(r)
    }
}

fn check_len(end: u64) -> Result<usize> {
    if end > MAX_FILE {
        return Err(Error::new(ErrorKind::FileTooLarge));
    }
    usize::try_from(end).map_err(|_| Error::new(ErrorKind::FileTooLarge))
}

/// Resizes `v` to `len`, reporting a failed allocation instead of aborting.
fn resize(v: &mut Vec<u8>, len: usize) -> Result<()> {
    if len > v.len() {
        v.try_reserve(len - v.len()).map_err(|_| Error::new(ErrorKind::StorageFull))?;
    }
    v.resize(len, 0);
    Ok(())
}

impl FileHandle for RamFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let t = self.tree.lock();
        let Kind::File(d) = &t.node(self.ino).kind else {
            return Err(Error::new(ErrorKind::IsADirectory));
        };
        let b = d.bytes();
        let Ok(off) = usize::try_from(offset) else {
            return Ok(0);
        };
        if off >= b.len() {
            return Ok(0);
        }
        let n = buf.len().min(b.len() - off);
        buf[..n].copy_from_slice(&b[off..off + n]);
        Ok(n)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let end = offset.checked_add(buf.len() as u64).ok_or(Error::new(ErrorKind::FileTooLarge))?;
        let end = check_len(end)?;
        self.modify(|d| {
            let v = d.owned()?;
            if end > v.len() {
                resize(v, end)?;
            }
            v[end - buf.len()..end].copy_from_slice(buf);
            Ok(buf.len())
        })
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let len = check_len(len)?;
        self.modify(|d| {
            if let Data::Static(s) = d
                && len <= s.len()
            {
                let s: &'static [u8] = s;
                *d = Data::Static(&s[..len]);
                return Ok(());
            }
            resize(d.owned()?, len)
        })
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(self.tree.lock().node(self.ino).meta())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

impl Drop for RamFile {
    fn drop(&mut self) {
        let mut t = self.tree.lock();
        t.node_mut(self.ino).open -= 1;
        t.collect(self.ino);
    }
}
