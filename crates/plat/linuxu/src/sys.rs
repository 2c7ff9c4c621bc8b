//! Raw Linux x86_64 system calls: the only way this platform talks to the host.
use core::arch::asm;

pub const SYS_WRITE: u64 = 1;
pub const SYS_MMAP: u64 = 9;
pub const SYS_MPROTECT: u64 = 10;
pub const SYS_RT_SIGACTION: u64 = 13;
pub const SYS_RT_SIGRETURN: u64 = 15;
pub const SYS_SIGALTSTACK: u64 = 131;
pub const SYS_CLOCK_GETTIME: u64 = 228;
pub const SYS_CLOCK_NANOSLEEP: u64 = 230;
pub const SYS_EXIT_GROUP: u64 = 231;

pub const CLOCK_REALTIME: u64 = 0;
pub const CLOCK_MONOTONIC: u64 = 1;
pub const TIMER_ABSTIME: u64 = 1;

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

pub fn sleep_until_monotonic(abs_ns: u64) {
    let ts = Timespec { sec: (abs_ns / 1_000_000_000) as i64, nsec: (abs_ns % 1_000_000_000) as i64 };
    // SAFETY: `ts` is valid; a null remainder pointer is allowed with TIMER_ABSTIME.
    unsafe { syscall6(SYS_CLOCK_NANOSLEEP, [CLOCK_MONOTONIC, TIMER_ABSTIME, &ts as *const _ as u64, 0, 0, 0]) };
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
