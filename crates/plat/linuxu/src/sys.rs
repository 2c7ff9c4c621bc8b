//! Raw Linux x86_64 system calls: the only way this platform talks to the host.
use core::arch::asm;

pub const SYS_READ: u64 = 0;
pub const SYS_WRITE: u64 = 1;
pub const SYS_OPEN: u64 = 2;
pub const SYS_CLOSE: u64 = 3;
pub const SYS_LSEEK: u64 = 8;
pub const SYS_IOCTL: u64 = 16;
pub const SYS_PREAD64: u64 = 17;
pub const SYS_PWRITE64: u64 = 18;
pub const SYS_FSYNC: u64 = 74;
pub const SYS_PPOLL: u64 = 271;
pub const SYS_MMAP: u64 = 9;
pub const SYS_MPROTECT: u64 = 10;
pub const SYS_RT_SIGACTION: u64 = 13;
pub const SYS_RT_SIGRETURN: u64 = 15;
pub const SYS_SIGALTSTACK: u64 = 131;
pub const SYS_CLOCK_GETTIME: u64 = 228;
pub const SYS_EXIT_GROUP: u64 = 231;

pub const CLOCK_REALTIME: u64 = 0;
pub const CLOCK_MONOTONIC: u64 = 1;

/// # Safety
/// The arguments must be valid for system call `nr`.
#[inline]
pub unsafe fn syscall6(nr: u64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the caller vouches for the arguments; the kernel clobbers rcx, r11.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
             in("r10") a[3], in("r8") a[4], in("r9") a[5], lateout("rcx") _, lateout("r11") _, options(nostack))
    };
    ret
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

pub fn write(fd: u64, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { syscall6(SYS_WRITE, [fd, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0]) };
        if n == -4 {
            continue; // EINTR
        }
        if n <= 0 {
            return; // nowhere to report a console failure
        }
        buf = &buf[n as usize..];
    }
}

pub fn clock_ns(clock: u64) -> u64 {
    let mut ts = Timespec::default();
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { syscall6(SYS_CLOCK_GETTIME, [clock, &mut ts as *mut _ as u64, 0, 0, 0, 0]) };
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

/// Anonymous private mapping, reserved lazily (MAP_NORESERVE): the host only
/// commits pages the unikernel touches.
pub fn mmap_anon(len: u64) -> Option<u64> {
    const PROT_RW: u64 = 0x1 | 0x2;
    const MAP_PRIVATE_ANON_NORESERVE: u64 = 0x02 | 0x20 | 0x4000;
    // SAFETY: a fresh anonymous mapping aliases nothing.
    let r = unsafe { syscall6(SYS_MMAP, [0, len, PROT_RW, MAP_PRIVATE_ANON_NORESERVE, u64::MAX, 0]) };
    (r > 0).then_some(r as u64)
}

/// Makes one page inaccessible (`none`) or read-write again.
pub fn protect_page(addr: u64, none: bool) -> bool {
    let prot = if none { 0 } else { 0x1 | 0x2 };
    // SAFETY: the page is part of our own heap mapping.
    unsafe { syscall6(SYS_MPROTECT, [addr, 4096, prot, 0, 0, 0]) == 0 }
}

pub fn exit_group(code: i32) -> ! {
    loop {
        // SAFETY: ends the process.
        unsafe { syscall6(SYS_EXIT_GROUP, [code as u64, 0, 0, 0, 0, 0]) };
    }
}

pub const O_RDONLY: u64 = 0;
pub const O_RDWR: u64 = 2;
pub const O_NONBLOCK: u64 = 0o4000;
pub const O_CLOEXEC: u64 = 0o2000000;
pub const TUNSETIFF: u64 = 0x4004_54ca;
pub const POLLIN: i16 = 1;
pub const EPERM: i64 = 1;
pub const EINTR: i64 = 4;
pub const EAGAIN: i64 = 11;
pub const EACCES: i64 = 13;
pub const EROFS: i64 = 30;

fn check(r: i64) -> Result<u64, i64> {
    if r < 0 { Err(-r) } else { Ok(r as u64) }
}

/// `path` must end with a NUL byte.
pub fn open(path: &[u8], flags: u64) -> Result<i32, i64> {
    if path.last() != Some(&0) {
        return Err(22); // EINVAL
    }
    // SAFETY: a NUL-terminated path.
    check(unsafe { syscall6(SYS_OPEN, [path.as_ptr() as u64, flags, 0, 0, 0, 0]) }).map(|fd| fd as i32)
}

pub fn close(fd: i32) {
    // SAFETY: closing our own descriptor.
    unsafe { syscall6(SYS_CLOSE, [fd as u64, 0, 0, 0, 0, 0]) };
}

pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, i64> {
    // SAFETY: `buf` is valid for writes of its length.
    check(unsafe { syscall6(SYS_READ, [fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0]) })
        .map(|n| n as usize)
}

pub fn write_fd(fd: i32, buf: &[u8]) -> Result<usize, i64> {
    // SAFETY: `buf` is valid for reads of its length.
    check(unsafe { syscall6(SYS_WRITE, [fd as u64, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0]) })
        .map(|n| n as usize)
}

pub fn ioctl(fd: i32, req: u64, arg: u64) -> Result<u64, i64> {
    // SAFETY: the caller passes a request and argument that match.
    check(unsafe { syscall6(SYS_IOCTL, [fd as u64, req, arg, 0, 0, 0]) })
}

pub fn lseek_end(fd: i32) -> Result<u64, i64> {
    // SAFETY: no memory involved.
    check(unsafe { syscall6(SYS_LSEEK, [fd as u64, 0, 2, 0, 0, 0]) })
}

pub fn pread_all(fd: i32, mut buf: &mut [u8], mut off: u64) -> Result<(), i64> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for writes of its length.
        match check(unsafe { syscall6(SYS_PREAD64, [fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64, off, 0, 0]) })
        {
            Ok(0) => return Err(5), // EIO: short file
            Ok(n) => {
                buf = &mut buf[n as usize..];
                off += n;
            }
            Err(EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn pwrite_all(fd: i32, mut buf: &[u8], mut off: u64) -> Result<(), i64> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for reads of its length.
        match check(unsafe { syscall6(SYS_PWRITE64, [fd as u64, buf.as_ptr() as u64, buf.len() as u64, off, 0, 0]) }) {
            Ok(n) => {
                buf = &buf[n as usize..];
                off += n;
            }
            Err(EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn fsync(fd: i32) -> Result<(), i64> {
    // SAFETY: no memory involved.
    check(unsafe { syscall6(SYS_FSYNC, [fd as u64, 0, 0, 0, 0, 0]) }).map(|_| ())
}

#[repr(C)]
pub struct PollFd {
    pub fd: i32,
    pub events: i16,
    pub revents: i16,
}

/// Waits for readiness on `fds` (may be empty: then it just sleeps).
pub fn ppoll(fds: &mut [PollFd], timeout_ns: Option<u64>) -> i64 {
    let ts = timeout_ns.map(|ns| Timespec { sec: (ns / 1_000_000_000) as i64, nsec: (ns % 1_000_000_000) as i64 });
    let tsp = ts.as_ref().map(|t| t as *const Timespec as u64).unwrap_or(0);
    // SAFETY: `fds` and `ts` are valid; no signal mask change.
    unsafe { syscall6(SYS_PPOLL, [fds.as_mut_ptr() as u64, fds.len() as u64, tsp, 0, 8, 0]) }
}

pub fn mmap_file_ro(fd: i32, len: u64) -> Option<u64> {
    // SAFETY: a fresh private read-only mapping of our own descriptor.
    let r = unsafe { syscall6(SYS_MMAP, [0, len, 0x1, 0x02, fd as u64, 0]) };
    (r > 0).then_some(r as u64)
}

pub fn strerror(e: i64) -> &'static str {
    match e {
        EPERM => "Operation not permitted",
        2 => "No such file or directory",
        5 => "Input/output error",
        EACCES => "Permission denied",
        16 => "Device or resource busy",
        19 => "No such device",
        21 => "Is a directory",
        22 => "Invalid argument",
        EROFS => "Read-only file system",
        _ => "system call failed",
    }
}
