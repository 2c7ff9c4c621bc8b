//! Open files: the descriptor table and what a descriptor can name (the
//! console, a VFS file or directory, `/dev` nodes, synthesized `/proc`
//! files, pipes).

use crate::errno::*;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// Most descriptors a program may hold (`RLIMIT_NOFILE`).
pub const MAX_FDS: usize = 1024;

/// A directory entry: name, type as `d_type`, inode number.
pub type DirEntry = (String, u8, u64);

/// File types as `st_mode` spells them.
pub const S_IFREG: u32 = 0o100000;
#[allow(missing_docs)]
pub const S_IFDIR: u32 = 0o040000;
#[allow(missing_docs)]
pub const S_IFCHR: u32 = 0o020000;
#[allow(missing_docs)]
pub const S_IFIFO: u32 = 0o010000;
#[allow(missing_docs)]
pub const S_IFLNK: u32 = 0o120000;
#[allow(missing_docs)]
pub const S_IFSOCK: u32 = 0o140000;

/// What `fstat` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    /// Type and permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Inode number (made up, stable per path).
    pub ino: u64,
    /// Device number (character devices).
    pub rdev: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// `poll` readiness bits (asm-generic/poll.h).
pub const POLLIN: u16 = 0x1;
#[allow(missing_docs)]
pub const POLLOUT: u16 = 0x4;
#[allow(missing_docs)]
pub const POLLERR: u16 = 0x8;
#[allow(missing_docs)]
pub const POLLHUP: u16 = 0x10;

/// An open file description.
pub trait FileLike: Send + Sync {
    /// Reads at the file's own position.
    fn read(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(EINVAL)
    }
    /// Writes at the file's own position (or its end).
    fn write(&self, _buf: &[u8]) -> Result<usize, Errno> {
        Err(EINVAL)
    }
    /// Reads at `offset` without moving the position.
    fn pread(&self, _offset: u64, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(ESPIPE)
    }
    /// Writes at `offset` without moving the position.
    fn pwrite(&self, _offset: u64, _buf: &[u8]) -> Result<usize, Errno> {
        Err(ESPIPE)
    }
    /// `lseek`.
    fn seek(&self, _offset: i64, _whence: u32) -> Result<u64, Errno> {
        Err(ESPIPE)
    }
    /// `fstat`.
    fn stat(&self) -> Result<Stat, Errno>;
    /// The directory entries (name, type as `d_type`, inode) from the
    /// directory's position on, and that position (`seek` moves it).
    fn read_dir(&self) -> Result<(Vec<DirEntry>, usize), Errno> {
        Err(ENOTDIR)
    }
    /// The path it was opened by (directories, for `*at` calls; `getcwd`).
    fn path(&self) -> Option<&str> {
        None
    }
    /// Whether it is a terminal (`isatty` asks with TCGETS).
    fn is_tty(&self) -> bool {
        false
    }
    /// Readiness for `poll`: which of `events` hold now.
    fn poll(&self, events: u16) -> u16 {
        events & (POLLIN | POLLOUT)
    }
    /// `ftruncate`.
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(EINVAL)
    }
    /// `fsync`.
    fn sync(&self) -> Result<(), Errno> {
        Ok(())
    }
    /// Whether reads and writes block (`O_NONBLOCK` off).
    fn set_nonblocking(&self, _on: bool) {}
    /// The epoll instance behind it.
    fn as_epoll(&self) -> Option<&crate::epoll::Epoll> {
        None
    }
    /// The socket behind it, for the socket calls.
    fn as_socket(&self) -> Option<&crate::socket::Socket> {
        None
    }
    /// Whether it is a socket (an end of a `socketpair` is one without an
    /// address: the send and receive calls read and write it).
    fn is_socket(&self) -> bool {
        self.as_socket().is_some()
    }
}

/// One slot of the table.
#[derive(Clone)]
pub struct Fd {
    /// The open file description (shared by `dup`).
    pub file: Arc<dyn FileLike>,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
    /// The `O_*` status flags given at open (for `F_GETFL`).
    pub flags: u32,
}

/// The descriptor table of the one program.
pub struct Table {
    slots: Vec<Option<Fd>>,
}

static TABLE: Mutex<Table> = Mutex::new(Table { slots: Vec::new() });

/// Opens stdin, stdout and stderr on the console.
pub fn init_std() {
    let console: Arc<dyn FileLike> = Arc::new(Console);
    let mut t = TABLE.lock();
    t.slots.clear();
    for flags in [0, 1, 1] {
        t.slots.push(Some(Fd { file: console.clone(), cloexec: false, flags }));
    }
}

/// The file behind `fd`.
pub fn get(fd: i64) -> Result<Arc<dyn FileLike>, Errno> {
    entry(fd).map(|e| e.file)
}

/// The whole slot of `fd`.
pub fn entry(fd: i64) -> Result<Fd, Errno> {
    let t = TABLE.lock();
    usize::try_from(fd).ok().and_then(|i| t.slots.get(i)).and_then(|s| s.clone()).ok_or(EBADF)
}

/// Updates the flags of `fd`.
pub fn update(fd: i64, f: impl FnOnce(&mut Fd)) -> Result<(), Errno> {
    let mut t = TABLE.lock();
    let slot = usize::try_from(fd).ok().and_then(|i| t.slots.get_mut(i)).and_then(|s| s.as_mut()).ok_or(EBADF)?;
    f(slot);
    Ok(())
}

/// Puts `fd` in the lowest free slot at or above `min`.
pub fn insert(entry: Fd, min: usize) -> Result<i64, Errno> {
    let mut t = TABLE.lock();
    let i = match (min..t.slots.len()).find(|&i| t.slots[i].is_none()) {
        Some(i) => i,
        None => t.slots.len().max(min),
    };
    if i >= MAX_FDS {
        return Err(EMFILE);
    }
    if i >= t.slots.len() {
        t.slots.resize(i + 1, None);
    }
    t.slots[i] = Some(entry);
    Ok(i as i64)
}

/// Puts `entry` at exactly `fd`, closing what was there (`dup2`).
pub fn insert_at(fd: i64, entry: Fd) -> Result<i64, Errno> {
    let i = usize::try_from(fd).ok().filter(|&i| i < MAX_FDS).ok_or(EBADF)?;
    let old = {
        let mut t = TABLE.lock();
        if i >= t.slots.len() {
            t.slots.resize(i + 1, None);
        }
        t.slots[i].replace(entry)
    };
    drop(old); // outside the lock: closing may do I/O
    Ok(fd)
}

/// Closes `fd`.
pub fn close(fd: i64) -> Result<(), Errno> {
    let old = {
        let mut t = TABLE.lock();
        usize::try_from(fd).ok().and_then(|i| t.slots.get_mut(i)).and_then(|s| s.take()).ok_or(EBADF)?
    };
    if Arc::strong_count(&old.file) == 1 {
        crate::epoll::forget(&old.file);
    }
    drop(old);
    Ok(())
}

/// Every open file, for the program's exit.
pub fn all() -> alloc::vec::Vec<Arc<dyn FileLike>> {
    TABLE.lock().slots.iter().flatten().map(|e| e.file.clone()).collect()
}

/// The console: stdin reads end of file (there is no console input),
/// stdout and stderr write to it. It is a terminal only when `unikit run`
/// itself writes to one (kernel option `unikit.tty`), as `docker run -t`:
/// a program whose output is piped or logged sees no terminal and buffers
/// and formats as it would on Linux.
pub struct Console;

static CONSOLE_TTY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Makes the console a terminal (`unikit.tty`).
pub fn set_console_tty(on: bool) {
    CONSOLE_TTY.store(on, core::sync::atomic::Ordering::Relaxed);
}

impl FileLike for Console {
    fn read(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Ok(0)
    }
    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        unikit_kernel::console::write_bytes(buf);
        Ok(buf.len())
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: S_IFCHR | 0o620, rdev: (136 << 8), ino: 3, ..Stat::default() })
    }
    fn is_tty(&self) -> bool {
        CONSOLE_TTY.load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// A `/dev` node.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Dev {
    /// `/dev/null`.
    Null,
    /// `/dev/zero`.
    Zero,
    /// `/dev/urandom` and `/dev/random`.
    Random,
}

impl FileLike for Dev {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            Dev::Null => Ok(0),
            Dev::Zero => {
                buf.fill(0);
                Ok(buf.len())
            }
            Dev::Random => {
                crate::random::fill(buf);
                Ok(buf.len())
            }
        }
    }
    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        Ok(buf.len())
    }
    fn pread(&self, _offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        self.read(buf)
    }
    fn pwrite(&self, _offset: u64, buf: &[u8]) -> Result<usize, Errno> {
        Ok(buf.len())
    }
    fn seek(&self, _offset: i64, _whence: u32) -> Result<u64, Errno> {
        Ok(0)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let (minor, ino) = match self {
            Dev::Null => (3, 5),
            Dev::Zero => (5, 6),
            Dev::Random => (9, 7),
        };
        Ok(Stat { mode: S_IFCHR | 0o666, rdev: (1 << 8) | minor, ino, ..Stat::default() })
    }
}

/// A regular file of the VFS.
pub struct VfsFile {
    file: Mutex<unikit_fs::File>,
    path: String,
    append: bool,
}

impl VfsFile {
    /// Wraps an opened VFS file.
    pub fn new(file: unikit_fs::File, path: String, append: bool) -> Self {
        Self { file: Mutex::new(file), path, append }
    }
}

fn fs_err(e: unikit_fs::Error) -> Errno {
    from_fs(&e)
}

/// A stable made-up inode number for a path.
pub fn ino_of(path: &str) -> u64 {
    // FNV-1a: different paths get different numbers in practice.
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) >> 1
}

/// `Stat` of VFS metadata.
pub fn stat_of(m: &unikit_fs::Metadata, path: &str) -> Stat {
    let kind = if m.is_dir() {
        S_IFDIR
    } else if m.is_symlink() {
        S_IFLNK
    } else {
        S_IFREG
    };
    Stat {
        mode: kind | (m.permissions().mode() & 0o7777),
        size: m.len(),
        ino: ino_of(path),
        rdev: 0,
        mtime: m.modified().map(|d| d.as_secs() as i64).unwrap_or(0),
    }
}

impl FileLike for VfsFile {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.file.lock().read(buf).map_err(fs_err)
    }
    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        let mut f = self.file.lock();
        if self.append {
            f.seek(unikit_fs::SeekFrom::End(0)).map_err(fs_err)?;
        }
        f.write(buf).map_err(fs_err)
    }
    fn pread(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut f = self.file.lock();
        let pos = f.stream_position();
        f.seek(unikit_fs::SeekFrom::Start(offset)).map_err(fs_err)?;
        let r = f.read(buf).map_err(fs_err);
        f.seek(unikit_fs::SeekFrom::Start(pos)).map_err(fs_err)?;
        r
    }
    fn pwrite(&self, offset: u64, buf: &[u8]) -> Result<usize, Errno> {
        let mut f = self.file.lock();
        let pos = f.stream_position();
        f.seek(unikit_fs::SeekFrom::Start(offset)).map_err(fs_err)?;
        let r = f.write(buf).map_err(fs_err);
        f.seek(unikit_fs::SeekFrom::Start(pos)).map_err(fs_err)?;
        r
    }
    fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        let to = match whence {
            0 => unikit_fs::SeekFrom::Start(u64::try_from(offset).map_err(|_| EINVAL)?),
            1 => unikit_fs::SeekFrom::Current(offset),
            2 => unikit_fs::SeekFrom::End(offset),
            _ => return Err(EINVAL),
        };
        self.file
            .lock()
            .seek(to)
            .map_err(|e| if e.kind() == unikit_fs::ErrorKind::InvalidInput { EINVAL } else { fs_err(e) })
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let m = self.file.lock().metadata().map_err(fs_err)?;
        Ok(stat_of(&m, &self.path))
    }
    fn path(&self) -> Option<&str> {
        Some(&self.path)
    }
    fn truncate(&self, len: u64) -> Result<(), Errno> {
        self.file.lock().set_len(len).map_err(fs_err)
    }
    fn sync(&self) -> Result<(), Errno> {
        self.file.lock().sync_all().map_err(fs_err)
    }
}

/// An open directory: its entries as of the open, and a position.
pub struct Dir {
    path: String,
    entries: Vec<DirEntry>,
    pos: Mutex<usize>,
}

/// `d_type` values (dirent.h).
pub const DT_DIR: u8 = 4;
#[allow(missing_docs)]
pub const DT_REG: u8 = 8;
#[allow(missing_docs)]
pub const DT_LNK: u8 = 10;
#[allow(missing_docs)]
pub const DT_CHR: u8 = 2;

impl Dir {
    /// Opens the directory at the absolute `path`.
    pub fn open(path: &str) -> Result<Self, Errno> {
        let list = unikit_fs::read_dir(path).map_err(fs_err)?;
        let mut entries = alloc::vec![(".".into(), DT_DIR, ino_of(path)), ("..".into(), DT_DIR, 1)];
        for e in list.flatten() {
            let name = String::from(e.file_name());
            let t = if e.file_type().is_dir() {
                DT_DIR
            } else if e.file_type().is_symlink() {
                DT_LNK
            } else {
                DT_REG
            };
            let full = crate::path::join(path, &name);
            entries.push((name, t, ino_of(&full)));
        }
        Ok(Self { path: path.into(), entries, pos: Mutex::new(0) })
    }

    /// A synthesized directory with fixed entries (`/dev`, `/proc`).
    pub fn fixed(path: &str, names: &[(&str, u8)]) -> Self {
        let mut entries = alloc::vec![(".".into(), DT_DIR, ino_of(path)), ("..".into(), DT_DIR, 1)];
        entries.extend(names.iter().map(|(n, t)| (String::from(*n), *t, ino_of(&crate::path::join(path, n)))));
        Self { path: path.into(), entries, pos: Mutex::new(0) }
    }
}

impl FileLike for Dir {
    fn read(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(EISDIR)
    }
    fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        if whence != 0 || offset < 0 {
            return Err(EINVAL);
        }
        *self.pos.lock() = offset as usize;
        Ok(offset as u64)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: S_IFDIR | 0o755, size: 4096, ino: ino_of(&self.path), ..Stat::default() })
    }
    fn read_dir(&self) -> Result<(Vec<DirEntry>, usize), Errno> {
        let pos = *self.pos.lock();
        Ok((self.entries.iter().skip(pos).cloned().collect(), pos))
    }
    fn path(&self) -> Option<&str> {
        Some(&self.path)
    }
}

/// A read-only file whose bytes are made when it is opened (`/proc`).
pub struct Synth {
    data: Vec<u8>,
    pos: Mutex<usize>,
    ino: u64,
}

impl Synth {
    /// A file holding `data`.
    pub fn new(path: &str, data: Vec<u8>) -> Self {
        Self { data, pos: Mutex::new(0), ino: ino_of(path) }
    }
}

impl FileLike for Synth {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut pos = self.pos.lock();
        let n = self.pread(*pos as u64, buf)?;
        *pos += n;
        Ok(n)
    }
    fn pread(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let rest = self.data.get(offset as usize..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
    fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        let mut pos = self.pos.lock();
        let base = match whence {
            0 => 0,
            1 => *pos as i64,
            2 => self.data.len() as i64,
            _ => return Err(EINVAL),
        };
        let to = base.checked_add(offset).filter(|&p| p >= 0).ok_or(EINVAL)?;
        *pos = to as usize;
        Ok(to as u64)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: S_IFREG | 0o444, size: 0, ino: self.ino, ..Stat::default() })
    }
}

/// Boxed for callers that build one of several kinds.
pub fn arc<F: FileLike + 'static>(f: F) -> Arc<dyn FileLike> {
    Arc::new(f)
}
