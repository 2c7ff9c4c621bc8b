//! Files, directories and descriptors.

use super::SysResult;
use crate::errno::*;
use crate::fd::{self, Dev, Dir, Fd, FileLike, Stat, Synth, VfsFile};
use crate::path::{self, resolve};
use crate::vm;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

/// `AT_SYMLINK_NOFOLLOW`.
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
/// `AT_REMOVEDIR`.
pub const AT_REMOVEDIR: u32 = 0x200;
const AT_EMPTY_PATH: u32 = 0x1000;

const O_ACCMODE: u32 = 3;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;
const O_CREAT: u32 = 0o100;
const O_EXCL: u32 = 0o200;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;
const O_NONBLOCK: u32 = 0o4000;
const O_DIRECTORY: u32 = 0o200000;
const O_CLOEXEC: u32 = 0o2000000;

/// Largest single transfer (Linux's `MAX_RW_COUNT` is about 2 GiB; a
/// smaller bound keeps the kernel's bounce buffer small).
const MAX_IO: usize = 1 << 20;

fn path_arg(dirfd: i64, p: u64) -> Result<String, Errno> {
    resolve(dirfd, &vm::read_cstr(p, 4096)?)
}

/// Reads and writes this small go through a buffer on the kernel stack.
const SMALL_IO: usize = 256;

pub fn read(fd: i64, buf: u64, len: u64) -> SysResult {
    let f = fd::get(fd)?;
    let len = (len as usize).min(MAX_IO);
    if len <= SMALL_IO {
        let mut tmp = [0u8; SMALL_IO];
        let n = f.read(&mut tmp[..len])?;
        vm::write(buf, &tmp[..n])?;
        return Ok(n as u64);
    }
    let mut tmp = vec![0u8; len];
    let n = f.read(&mut tmp)?;
    vm::write(buf, &tmp[..n])?;
    Ok(n as u64)
}

pub fn write(fd: i64, buf: u64, len: u64) -> SysResult {
    let f = fd::get(fd)?;
    let len = (len as usize).min(MAX_IO);
    if len <= SMALL_IO {
        let mut tmp = [0u8; SMALL_IO];
        vm::read(buf, &mut tmp[..len])?;
        return Ok(f.write(&tmp[..len])? as u64);
    }
    write_gather(&*f, &[(buf, len as u64)])
}

/// Writes the program's buffers `pieces` to `f` a chunk at a time, each
/// copied just before it is written, and stops at the first partial
/// write. A socket that takes a few KiB per call then costs one chunk's
/// copy per call, not the whole buffer's; a small vector still goes out
/// as one write (a line made of pieces stays whole on the console).
pub fn write_gather(f: &dyn FileLike, pieces: &[(u64, u64)]) -> SysResult {
    const CHUNK: usize = 64 * 1024;
    let mut rest = pieces.iter().copied().filter(|&(_, l)| l > 0);
    let mut cur = rest.next();
    let mut total = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        while let Some((base, len)) = cur
            && buf.len() < CHUNK
        {
            let take = (len as usize).min(CHUNK - buf.len());
            let at = buf.len();
            buf.resize(at + take, 0);
            if let Err(e) = vm::read(base, &mut buf[at..]) {
                return if total > 0 { Ok(total) } else { Err(e) };
            }
            cur = if take as u64 == len { rest.next() } else { Some((base + take as u64, len - take as u64)) };
        }
        if buf.is_empty() {
            return Ok(total);
        }
        let w = match f.write(&buf) {
            Ok(w) => w,
            Err(_) if total > 0 => return Ok(total),
            Err(e) => return Err(e),
        };
        total += w as u64;
        if w < buf.len() {
            return Ok(total);
        }
    }
}

pub fn pread(fd: i64, buf: u64, len: u64, off: u64) -> SysResult {
    let f = fd::get(fd)?;
    let mut tmp = vec![0u8; (len as usize).min(MAX_IO)];
    let n = f.pread(off, &mut tmp)?;
    vm::write(buf, &tmp[..n])?;
    Ok(n as u64)
}

pub fn pwrite(fd: i64, buf: u64, len: u64, off: u64) -> SysResult {
    let f = fd::get(fd)?;
    let data = vm::read_vec(buf, (len as usize).min(MAX_IO))?;
    Ok(f.pwrite(off, &data)? as u64)
}

fn iovecs(iov: u64, cnt: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if cnt > 1024 {
        return Err(EINVAL);
    }
    vm::read_iovecs(iov, cnt)
}

pub fn readv(fd: i64, iov: u64, cnt: u64) -> SysResult {
    let f = fd::get(fd)?;
    let mut total = 0u64;
    for (base, len) in iovecs(iov, cnt)? {
        if len == 0 {
            continue;
        }
        let mut tmp = vec![0u8; (len as usize).min(MAX_IO)];
        let n = f.read(&mut tmp)?;
        vm::write(base, &tmp[..n])?;
        total += n as u64;
        if n < tmp.len() {
            break;
        }
    }
    Ok(total)
}

pub fn writev(fd: i64, iov: u64, cnt: u64) -> SysResult {
    let f = fd::get(fd)?;
    write_gather(&*f, &iovecs(iov, cnt)?)
}

/// Opens what `path` names, the synthesized nodes first.
fn open_path(path: &str, flags: u32, mode: u32) -> Result<Arc<dyn FileLike>, Errno> {
    let _ = mode;
    match path {
        "/dev/null" => return Ok(fd::arc(Dev::Null)),
        "/dev/zero" => return Ok(fd::arc(Dev::Zero)),
        "/dev/urandom" | "/dev/random" => return Ok(fd::arc(Dev::Random)),
        "/dev/tty" | "/dev/console" | "/dev/stdout" | "/dev/stderr" => return Ok(fd::arc(fd::Console)),
        "/dev" => {
            return Ok(fd::arc(Dir::fixed(
                "/dev",
                &[("null", fd::DT_CHR), ("zero", fd::DT_CHR), ("urandom", fd::DT_CHR), ("random", fd::DT_CHR)],
            )));
        }
        _ => {}
    }
    if let Some(data) = crate::procfs::file(path) {
        return Ok(fd::arc(Synth::new(path, data)));
    }
    let meta = unikit_fs::metadata(path);
    if let Ok(m) = &meta
        && m.is_dir()
    {
        if flags & O_ACCMODE != 0 {
            return Err(EISDIR);
        }
        return Ok(fd::arc(Dir::open(path)?));
    }
    if flags & O_DIRECTORY != 0 {
        return Err(if meta.is_ok() { ENOTDIR } else { ENOENT });
    }
    let mut o = unikit_fs::OpenOptions::new();
    let acc = flags & O_ACCMODE;
    o.read(acc != O_WRONLY).write(acc == O_WRONLY || acc == O_RDWR);
    if flags & O_CREAT != 0 {
        if flags & O_EXCL != 0 {
            o.create_new(true);
        } else {
            o.create(true);
        }
        if acc == 0 {
            o.write(true); // the VFS wants write access to create
        }
    }
    if flags & O_TRUNC != 0 && acc != 0 {
        o.truncate(true);
    }
    let f = o.open(path).map_err(|e| from_fs(&e))?;
    Ok(fd::arc(VfsFile::new(f, path.into(), flags & O_APPEND != 0)))
}

pub fn openat(dirfd: i64, p: u64, flags: u32, mode: u32) -> SysResult {
    let path = path_arg(dirfd, p)?;
    let file = open_path(&path, flags, mode)?;
    let fd = fd::insert(Fd { file, cloexec: flags & O_CLOEXEC != 0, flags: flags & !O_CLOEXEC }, 0)?;
    Ok(fd as u64)
}

pub fn close(fd: i64) -> SysResult {
    fd::close(fd)?;
    Ok(0)
}

pub fn lseek(fd: i64, off: i64, whence: u32) -> SysResult {
    fd::get(fd)?.seek(off, whence)
}

/// `struct stat` (x86_64, 144 bytes).
fn stat_bytes(s: &Stat) -> [u8; 144] {
    let mut b = [0u8; 144];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(0, &1u64.to_le_bytes()); // st_dev
    put(8, &s.ino.to_le_bytes());
    put(16, &1u64.to_le_bytes()); // st_nlink
    put(24, &s.mode.to_le_bytes());
    put(40, &s.rdev.to_le_bytes());
    put(48, &s.size.to_le_bytes());
    put(56, &4096u64.to_le_bytes()); // st_blksize
    put(64, &s.size.div_ceil(512).to_le_bytes()); // st_blocks
    for t in [72, 88, 104] {
        put(t, &s.mtime.to_le_bytes());
    }
    b
}

fn stat_path(path: &str, follow: bool) -> Result<Stat, Errno> {
    if let Ok(f) = open_special(path) {
        return f.stat();
    }
    let m = if follow { unikit_fs::metadata(path) } else { unikit_fs::symlink_metadata(path) };
    Ok(fd::stat_of(&m.map_err(|e| from_fs(&e))?, path))
}

/// The synthesized nodes, for `stat` (which opens nothing else).
fn open_special(path: &str) -> Result<Arc<dyn FileLike>, Errno> {
    if path.starts_with("/dev") || crate::procfs::file(path).is_some() { open_path(path, 0, 0) } else { Err(ENOENT) }
}

pub fn fstat(fd: i64, out: u64) -> SysResult {
    let s = fd::get(fd)?.stat()?;
    vm::write(out, &stat_bytes(&s))?;
    Ok(0)
}

fn stat_at(dirfd: i64, p: u64, flags: u32) -> Result<Stat, Errno> {
    let raw = vm::read_cstr(p, 4096)?;
    if raw.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return fd::get(dirfd)?.stat();
    }
    stat_path(&resolve(dirfd, &raw)?, flags & AT_SYMLINK_NOFOLLOW == 0)
}

pub fn fstatat(dirfd: i64, p: u64, out: u64, flags: u32) -> SysResult {
    let s = stat_at(dirfd, p, flags)?;
    vm::write(out, &stat_bytes(&s))?;
    Ok(0)
}

pub fn statx(dirfd: i64, p: u64, flags: u32, out: u64) -> SysResult {
    let s = stat_at(dirfd, p, flags)?;
    let mut b = [0u8; 256];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(0, &0x7ffu32.to_le_bytes()); // STATX_BASIC_STATS
    put(4, &4096u32.to_le_bytes());
    put(16, &1u32.to_le_bytes()); // nlink
    put(28, &(s.mode as u16).to_le_bytes());
    put(32, &s.ino.to_le_bytes());
    put(40, &s.size.to_le_bytes());
    put(48, &s.size.div_ceil(512).to_le_bytes());
    for t in [64, 80, 96, 112] {
        put(t, &s.mtime.to_le_bytes());
    }
    put(128, &((s.rdev >> 8) as u32).to_le_bytes());
    put(132, &((s.rdev & 0xff) as u32).to_le_bytes());
    vm::write(out, &b)?;
    Ok(0)
}

pub fn faccessat(dirfd: i64, p: u64, _mode: u32) -> SysResult {
    stat_path(&path_arg(dirfd, p)?, true).map(|_| 0)
}

pub fn ioctl(fd: i64, cmd: u64, arg: u64) -> SysResult {
    const TCGETS: u64 = 0x5401;
    const TIOCGWINSZ: u64 = 0x5413;
    const FIONBIO: u64 = 0x5421;
    const FIOCLEX: u64 = 0x5451;
    let f = fd::get(fd)?;
    match cmd {
        TCGETS | TIOCGWINSZ if f.is_tty() && cmd == TIOCGWINSZ => {
            // 24 rows, 80 columns.
            vm::write(arg, &[24, 0, 80, 0, 0, 0, 0, 0])?;
            Ok(0)
        }
        TCGETS if f.is_tty() => {
            // The kernel's struct termios (36 bytes; libc's is larger and
            // copies from it), zeroed: what isatty() needs.
            vm::write(arg, &[0u8; 36])?;
            Ok(0)
        }
        FIONBIO => {
            let mut b = [0u8; 4];
            vm::read(arg, &mut b)?;
            f.set_nonblocking(u32::from_le_bytes(b) != 0);
            Ok(0)
        }
        FIOCLEX => fd::update(fd, |e| e.cloexec = true).map(|_| 0),
        _ => Err(ENOTTY),
    }
}

pub fn dup(fd: i64) -> SysResult {
    let mut e = fd::entry(fd)?;
    e.cloexec = false;
    Ok(fd::insert(e, 0)? as u64)
}

pub fn dup3(old: i64, new: i64, flags: u32, dup2: bool) -> SysResult {
    let mut e = fd::entry(old)?;
    if old == new {
        return if dup2 { Ok(new as u64) } else { Err(EINVAL) };
    }
    e.cloexec = flags & O_CLOEXEC != 0;
    Ok(fd::insert_at(new, e)? as u64)
}

pub fn fcntl(fd: i64, cmd: u32, arg: u64) -> SysResult {
    const F_DUPFD: u32 = 0;
    const F_GETFD: u32 = 1;
    const F_SETFD: u32 = 2;
    const F_GETFL: u32 = 3;
    const F_SETFL: u32 = 4;
    const F_SETLK: u32 = 6;
    const F_SETLKW: u32 = 7;
    const F_GETLK: u32 = 5;
    const F_DUPFD_CLOEXEC: u32 = 1030;
    let e = fd::entry(fd)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let e = Fd { cloexec: cmd == F_DUPFD_CLOEXEC, ..e };
            Ok(fd::insert(e, arg as usize)? as u64)
        }
        F_GETFD => Ok(e.cloexec as u64),
        F_SETFD => fd::update(fd, |e| e.cloexec = arg & 1 != 0).map(|_| 0),
        F_GETFL => Ok(e.flags as u64),
        F_SETFL => {
            e.file.set_nonblocking(arg as u32 & O_NONBLOCK != 0);
            fd::update(fd, |e| e.flags = (e.flags & O_ACCMODE) | (arg as u32 & !O_ACCMODE)).map(|_| 0)
        }
        F_GETLK | F_SETLK | F_SETLKW => Ok(0), // one process: every lock is granted
        _ => Err(EINVAL),
    }
}

pub fn fsync(fd: i64) -> SysResult {
    fd::get(fd)?.sync().map(|_| 0)
}

pub fn ftruncate(fd: i64, len: u64) -> SysResult {
    fd::get(fd)?.truncate(len).map(|_| 0)
}

pub fn truncate(p: u64, len: u64) -> SysResult {
    let path = path_arg(path::AT_FDCWD, p)?;
    open_path(&path, O_WRONLY, 0)?.truncate(len).map(|_| 0)
}

pub fn getdents64(fd: i64, buf: u64, len: u64) -> SysResult {
    let f = fd::get(fd)?;
    let (entries, pos) = f.read_dir()?;
    let mut out = Vec::new();
    let mut taken = 0;
    for (name, t, ino) in entries {
        let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
        if out.len() + reclen > len as usize {
            if taken == 0 {
                return Err(EINVAL);
            }
            break;
        }
        taken += 1;
        let mut rec = vec![0u8; reclen];
        rec[..8].copy_from_slice(&ino.to_le_bytes());
        rec[8..16].copy_from_slice(&((pos + taken) as u64).to_le_bytes());
        rec[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        rec[18] = t;
        rec[19..19 + name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&rec);
    }
    vm::write(buf, &out)?;
    f.seek((pos + taken) as i64, 0)?;
    Ok(out.len() as u64)
}

pub fn getcwd(buf: u64, size: u64) -> SysResult {
    let mut c = path::cwd().into_bytes();
    c.push(0);
    if c.len() as u64 > size {
        return Err(ERANGE);
    }
    vm::write(buf, &c)?;
    Ok(c.len() as u64)
}

fn set_dir(path: String) -> SysResult {
    let m = unikit_fs::metadata(&path).map_err(|e| from_fs(&e))?;
    if !m.is_dir() {
        return Err(ENOTDIR);
    }
    path::set_cwd(path);
    Ok(0)
}

pub fn chdir(p: u64) -> SysResult {
    set_dir(path_arg(path::AT_FDCWD, p)?)
}

pub fn fchdir(fd: i64) -> SysResult {
    let f = fd::get(fd)?;
    set_dir(String::from(f.path().ok_or(ENOTDIR)?))
}

pub fn renameat(olddir: i64, old: u64, newdir: i64, new: u64) -> SysResult {
    let (from, to) = (path_arg(olddir, old)?, path_arg(newdir, new)?);
    unikit_fs::rename(&from, &to).map(|_| 0).map_err(|e| from_fs(&e))
}

pub fn mkdirat(dirfd: i64, p: u64, _mode: u32) -> SysResult {
    let path = path_arg(dirfd, p)?;
    unikit_fs::create_dir(&path).map(|_| 0).map_err(|e| from_fs(&e))
}

pub fn unlinkat(dirfd: i64, p: u64, flags: u32) -> SysResult {
    let path = path_arg(dirfd, p)?;
    let r = if flags & AT_REMOVEDIR != 0 { unikit_fs::remove_dir(&path) } else { unikit_fs::remove_file(&path) };
    r.map(|_| 0).map_err(|e| from_fs(&e))
}

pub fn readlinkat(dirfd: i64, p: u64, buf: u64, size: u64) -> SysResult {
    let path = path_arg(dirfd, p)?;
    let target = match crate::procfs::link(&path) {
        Some(t) => t,
        None => unikit_fs::read_link(&path).map_err(|e| from_fs(&e))?,
    };
    let n = target.len().min(size as usize);
    vm::write(buf, &target.as_bytes()[..n])?;
    Ok(n as u64)
}

pub fn symlinkat(target: u64, dirfd: i64, p: u64) -> SysResult {
    let target = vm::read_cstr(target, 4096)?;
    let target = core::str::from_utf8(&target).map_err(|_| EINVAL)?;
    let path = path_arg(dirfd, p)?;
    unikit_fs::symlink(target, &path).map(|_| 0).map_err(|e| from_fs(&e))
}

/// `sendfile`: copies from `in_fd` (at `*offset`, or its position) to
/// `out_fd` through a kernel buffer.
pub fn sendfile(out_fd: i64, in_fd: i64, offset: u64, count: u64) -> SysResult {
    let (out, inp) = (fd::get(out_fd)?, fd::get(in_fd)?);
    let mut pos = if offset != 0 { Some(vm::read_u64(offset)?) } else { None };
    let mut buf = vec![0u8; (count as usize).min(64 * 1024)];
    let mut done = 0u64;
    while done < count {
        let want = ((count - done) as usize).min(buf.len());
        let n = match pos {
            Some(p) => inp.pread(p, &mut buf[..want])?,
            None => inp.read(&mut buf[..want])?,
        };
        if n == 0 {
            break;
        }
        let w = match out.write(&buf[..n]) {
            Ok(w) => w,
            Err(e) if done > 0 && e == EAGAIN => 0,
            Err(e) if done == 0 => return Err(e),
            Err(_) => 0,
        };
        if let Some(p) = pos.as_mut() {
            *p += w as u64;
        } else if w < n {
            // The rest goes back: the input's position follows what was sent.
            inp.seek(-((n - w) as i64), 1)?;
        }
        done += w as u64;
        if w < n {
            break;
        }
    }
    if let Some(p) = pos {
        vm::write_u64(offset, p)?;
    }
    Ok(done)
}

pub fn pipe2(fds: u64, flags: u32) -> SysResult {
    let (r, w) = crate::pipe::pair();
    let cloexec = flags & O_CLOEXEC != 0;
    if flags & O_NONBLOCK != 0 {
        r.set_nonblocking(true);
        w.set_nonblocking(true);
    }
    install_pair(fds, Fd { file: r, cloexec, flags: 0 }, Fd { file: w, cloexec, flags: 1 })
}

/// Puts both ends of a pipe or socket pair in the table and writes their
/// numbers to the program's `int[2]` (both or neither).
pub fn install_pair(out: u64, a: Fd, b: Fd) -> SysResult {
    let fa = fd::insert(a, 0)?;
    let fb = match fd::insert(b, 0) {
        Ok(f) => f,
        Err(e) => {
            let _ = fd::close(fa);
            return Err(e);
        }
    };
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(fa as i32).to_le_bytes());
    buf[4..].copy_from_slice(&(fb as i32).to_le_bytes());
    vm::write(out, &buf)?;
    Ok(0)
}

pub fn eventfd(initval: u64, flags: u32) -> SysResult {
    let e = crate::pipe::eventfd(initval, flags & O_NONBLOCK != 0);
    Ok(fd::insert(Fd { file: e, cloexec: flags & O_CLOEXEC != 0, flags: O_RDWR }, 0)? as u64)
}

pub fn epoll_create(flags: u32) -> SysResult {
    let e = fd::arc(crate::epoll::Epoll::new());
    Ok(fd::insert(Fd { file: e, cloexec: flags & O_CLOEXEC != 0, flags: O_RDWR }, 0)? as u64)
}

pub fn epoll_ctl(epfd: i64, op: u64, fdn: i64, ev: u64) -> SysResult {
    let ep = fd::get(epfd)?;
    let ep = ep.as_epoll().ok_or(EINVAL)?;
    if epfd == fdn {
        return Err(EINVAL);
    }
    let (events, data) = if op == 2 {
        (0, 0)
    } else {
        let mut b = [0u8; 12]; // struct epoll_event is packed on x86_64
        vm::read(ev, &mut b)?;
        (u32::from_le_bytes(b[..4].try_into().unwrap()), u64::from_le_bytes(b[4..].try_into().unwrap()))
    };
    ep.ctl(op, fdn, events, data).map(|_| 0)
}

pub fn epoll_wait(epfd: i64, out: u64, max: i64, deadline: Option<u64>) -> SysResult {
    if !(1..=65536).contains(&max) {
        return Err(EINVAL);
    }
    let file = fd::get(epfd)?;
    let ep = file.as_epoll().ok_or(EINVAL)?;
    let got = crate::poll::wait(
        deadline,
        || {
            let r = ep.ready(max as usize);
            Ok((!r.is_empty()).then_some(r))
        },
        Vec::new(),
    )?;
    let mut b = Vec::with_capacity(got.len() * 12);
    for (ev, data) in &got {
        b.extend_from_slice(&ev.to_le_bytes());
        b.extend_from_slice(&data.to_le_bytes());
    }
    vm::write(out, &b)?;
    Ok(got.len() as u64)
}

pub fn poll(fds: u64, nfds: u64, timeout_ms: i64) -> SysResult {
    let deadline = (timeout_ms >= 0).then(|| unikit_kernel::time::monotonic_ns() + timeout_ms as u64 * 1_000_000);
    crate::poll::poll(fds, nfds, deadline)
}

pub fn ppoll(fds: u64, nfds: u64, ts: u64) -> SysResult {
    let deadline = crate::poll::deadline_from_timespec(ts)?;
    crate::poll::poll(fds, nfds, deadline)
}

pub fn select(n: i64, r: u64, w: u64, e: u64, tv: u64) -> SysResult {
    let deadline = if tv == 0 {
        None
    } else {
        let s = vm::read_u64(tv)?;
        let us = vm::read_u64(tv + 8)?;
        Some(unikit_kernel::time::monotonic_ns() + s.saturating_mul(1_000_000_000) + us.saturating_mul(1000))
    };
    crate::poll::select(n, r, w, e, deadline)
}

pub fn pselect6(n: i64, r: u64, w: u64, e: u64, ts: u64) -> SysResult {
    let deadline = crate::poll::deadline_from_timespec(ts)?;
    crate::poll::select(n, r, w, e, deadline)
}
