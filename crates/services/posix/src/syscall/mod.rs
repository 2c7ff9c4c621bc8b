//! System-call dispatch (x86_64 Linux numbering, arch/x86/entry/syscalls/
//! syscall_64.tbl): arguments in rdi, rsi, rdx, r10, r8, r9; the result,
//! or a negated errno, in rax.

mod fs;
mod mem;
mod names;
mod net;
mod proc;
mod thread;

use crate::errno::*;
use crate::signal;
use alloc::collections::BTreeSet;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
pub(crate) use thread::end_program;
use unikit_kernel::kprintln;
use unikit_kernel::user::{Fault, UserRegs};

pub use proc::RELEASE;

/// The process id.
pub fn pid() -> u64 {
    proc::getpid()
}

/// A system call's result: a value, or an errno.
pub type SysResult = Result<u64, Errno>;

static STRACE: AtomicBool = AtomicBool::new(false);
/// Unserved calls already reported (one line per distinct call).
static REPORTED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// Turns `unikit.strace` tracing on.
pub fn set_strace(on: bool) {
    STRACE.store(on, Ordering::Relaxed);
}

fn unserved(nr: u64, why: &str) -> SysResult {
    if REPORTED.lock().insert(nr) {
        kprintln!("unikit: system call {} ({nr}) {why}: ENOSYS", names::name(nr).unwrap_or("unknown"));
    }
    Err(ENOSYS)
}

/// The entry every system call arrives at. Returns true when the
/// registers must be restored whole (after `rt_sigreturn`).
pub fn handle(regs: &mut UserRegs) -> bool {
    let nr = regs.rax;
    let a = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
    let mut full = false;
    let r = dispatch(nr, a, regs, &mut full);
    let ret = match r {
        Ok(v) => v,
        Err(e) => (-e) as u64,
    };
    // EAGAIN from an I/O call: the file's next readiness is an epoll edge.
    if r == Err(EAGAIN)
        && matches!(nr, 0 | 1 | 19 | 20 | 40 | 43 | 44 | 45 | 46 | 47 | 288)
        && let Ok(f) = crate::fd::get(a[0] as i64)
    {
        crate::epoll::note_would_block(&f);
    }
    if STRACE.load(Ordering::Relaxed) {
        let name = names::name(nr).unwrap_or("unknown");
        match r {
            Ok(v) => kprintln!(
                "[strace] {name}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}) = {v:#x}",
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                a[5]
            ),
            Err(e) => kprintln!(
                "[strace] {name}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}) = -{e} ({})",
                a[0],
                a[1],
                a[2],
                a[3],
                a[4],
                a[5],
                names::errno_name(e)
            ),
        }
    }
    if !full {
        regs.rax = ret;
    }
    signal::deliver_pending(regs);
    full
}

fn dispatch(nr: u64, a: [u64; 6], regs: &mut UserRegs, full: &mut bool) -> SysResult {
    let i = |x: u64| x as i64;
    match nr {
        0 => fs::read(i(a[0]), a[1], a[2]),
        1 => fs::write(i(a[0]), a[1], a[2]),
        2 => fs::openat(crate::path::AT_FDCWD, a[0], a[1] as u32, a[2] as u32),
        3 => fs::close(i(a[0])),
        4 => fs::fstatat(crate::path::AT_FDCWD, a[0], a[1], 0),
        5 => fs::fstat(i(a[0]), a[1]),
        6 => fs::fstatat(crate::path::AT_FDCWD, a[0], a[1], fs::AT_SYMLINK_NOFOLLOW),
        7 => fs::poll(a[0], a[1], i(a[2])),
        8 => fs::lseek(i(a[0]), i(a[1]), a[2] as u32),
        9 => mem::mmap(a[0], a[1], a[2], a[3], i(a[4]), a[5]),
        10 => mem::mprotect(a[0], a[1], a[2]),
        11 => mem::munmap(a[0], a[1]),
        12 => Ok(crate::vm::brk(a[0])),
        13 => signal::sigaction(i(a[0]), a[1], a[2], a[3]),
        14 => signal::sigprocmask(i(a[0]), a[1], a[2], a[3]),
        15 => {
            signal::sigreturn(regs)?;
            *full = true;
            Ok(regs.rax)
        }
        16 => fs::ioctl(i(a[0]), a[1], a[2]),
        17 => fs::pread(i(a[0]), a[1], a[2], a[3]),
        18 => fs::pwrite(i(a[0]), a[1], a[2], a[3]),
        19 => fs::readv(i(a[0]), a[1], a[2]),
        20 => fs::writev(i(a[0]), a[1], a[2]),
        21 => fs::faccessat(crate::path::AT_FDCWD, a[0], a[1] as u32),
        22 => fs::pipe2(a[0], 0),
        23 => fs::select(i(a[0]), a[1], a[2], a[3], a[4]),
        24 => proc::sched_yield(),
        25 => mem::mremap(a[0], a[1], a[2], a[3], a[4]),
        26 | 27 => Ok(0), // msync, mincore-free: memory is never written back
        28 => Ok(0),      // madvise: advice only
        32 => fs::dup(i(a[0])),
        33 => fs::dup3(i(a[0]), i(a[1]), 0, true),
        35 => proc::nanosleep(a[0], a[1]),
        39 => Ok(proc::getpid()),
        40 => fs::sendfile(i(a[0]), i(a[1]), a[2], a[3]),
        41 => net::socket(a[0], a[1], a[2]),
        42 => net::connect(i(a[0]), a[1], a[2]),
        43 => net::accept4(i(a[0]), a[1], a[2], 0),
        44 => net::sendto(i(a[0]), a[1], a[2], a[3], a[4], a[5]),
        45 => net::recvfrom(i(a[0]), a[1], a[2], a[3], a[4], a[5]),
        46 => net::sendmsg(i(a[0]), a[1], a[2]),
        47 => net::recvmsg(i(a[0]), a[1], a[2]),
        48 => net::shutdown(i(a[0]), a[1]),
        49 => net::bind(i(a[0]), a[1], a[2]),
        50 => net::listen(i(a[0])),
        51 => net::getsockname(i(a[0]), a[1], a[2]),
        52 => net::getpeername(i(a[0]), a[1], a[2]),
        53 => net::socketpair(a[0], a[1], a[3]),
        54 => net::setsockopt(i(a[0]), a[1], a[2], a[3], a[4]),
        55 => net::getsockopt(i(a[0]), a[1], a[2], a[3], a[4]),
        56 => thread::clone(regs, a[0], a[1], a[2], a[3], a[4]),
        57 | 58 => unserved(nr, "is not offered (one process per VM)"),
        59 => unserved(nr, "is not offered (one program per VM)"),
        60 => thread::exit(i(a[0]) as i32),
        61 => Err(ECHILD), // wait4: there are never children
        62 => proc::kill(i(a[0]), i(a[1])),
        63 => proc::uname(a[0]),
        72 => fs::fcntl(i(a[0]), a[1] as u32, a[2]),
        73 => Ok(0), // flock: one process, nobody to exclude
        74 | 75 => fs::fsync(i(a[0])),
        76 => fs::truncate(a[0], a[1]),
        77 => fs::ftruncate(i(a[0]), a[1]),
        79 => fs::getcwd(a[0], a[1]),
        80 => fs::chdir(a[0]),
        81 => fs::fchdir(i(a[0])),
        82 => fs::renameat(crate::path::AT_FDCWD, a[0], crate::path::AT_FDCWD, a[1]),
        83 => fs::mkdirat(crate::path::AT_FDCWD, a[0], a[1] as u32),
        84 => fs::unlinkat(crate::path::AT_FDCWD, a[0], fs::AT_REMOVEDIR),
        87 => fs::unlinkat(crate::path::AT_FDCWD, a[0], 0),
        88 => fs::symlinkat(a[0], crate::path::AT_FDCWD, a[1]),
        89 => fs::readlinkat(crate::path::AT_FDCWD, a[0], a[1], a[2]),
        90..=94 => Ok(0), // chmod, fchmod, chown, fchown, lchown: no users here
        95 => Ok(proc::umask(a[0] as u32)),
        96 => proc::gettimeofday(a[0], a[1]),
        97 => proc::prlimit(0, a[0] as u32, 0, a[1]),
        98 => proc::getrusage(a[1]),
        99 => proc::sysinfo(a[0]),
        102 | 104 | 107 | 108 => Ok(0), // getuid, getgid, geteuid, getegid: root
        105 | 106 | 113 | 114 | 117 | 119 => Ok(0), // setuid & co.: already root
        110 => Ok(0),                   // getppid: no parent in the VM
        109 => Ok(0),                   // setpgid
        111 | 121 | 124 => Ok(proc::getpid()), // getpgrp, getpgid, getsid
        112 => Ok(proc::getpid()),      // setsid
        115 | 116 => Ok(0),             // getgroups, setgroups: none
        118 | 120 => proc::getresid(a[0], a[1], a[2]),
        127 => signal::sigpending(a[0]),
        131 => signal::sigaltstack(a[0], a[1], regs.rsp),
        137 | 138 => proc::statfs(a[1]),
        157 => Ok(0), // prctl: names and flags have no effect here
        158 => proc::arch_prctl(a[0], a[1]),
        186 => Ok(unikit_kernel::sched::current()),
        200 => proc::tgkill(-1, i(a[0]), i(a[1])),
        201 => proc::time(a[0]),
        202 => thread::futex(a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32),
        203 => Ok(0), // sched_setaffinity: one CPU
        204 => proc::sched_getaffinity(a[1], a[2]),
        217 => fs::getdents64(i(a[0]), a[1], a[2]),
        218 => thread::set_tid_address(a[0]),
        228 => proc::clock_gettime(a[0] as u32, a[1]),
        229 => proc::clock_getres(a[1]),
        230 => proc::clock_nanosleep(a[0] as u32, a[1] as u32, a[2], a[3]),
        231 => thread::exit_group(i(a[0]) as i32),
        213 => fs::epoll_create(0),
        291 => fs::epoll_create(a[0] as u32),
        233 => fs::epoll_ctl(i(a[0]), a[1], i(a[2]), a[3]),
        232 | 281 => fs::epoll_wait(i(a[0]), a[1], i(a[2]), ms_deadline(i(a[3]))),
        441 => fs::epoll_wait(i(a[0]), a[1], i(a[2]), crate::poll::deadline_from_timespec(a[3])?),
        234 => proc::tgkill(i(a[0]), i(a[1]), i(a[2])),
        257 => fs::openat(i(a[0]), a[1], a[2] as u32, a[3] as u32),
        258 => fs::mkdirat(i(a[0]), a[1], a[2] as u32),
        262 => fs::fstatat(i(a[0]), a[1], a[2], a[3] as u32),
        263 => fs::unlinkat(i(a[0]), a[1], a[2] as u32),
        264 | 316 => fs::renameat(i(a[0]), a[1], i(a[2]), a[3]),
        267 => fs::readlinkat(i(a[0]), a[1], a[2], a[3]),
        266 => fs::symlinkat(a[0], i(a[1]), a[2]),
        268 => Ok(0), // fchmodat
        269 | 439 => fs::faccessat(i(a[0]), a[1], a[2] as u32),
        270 => fs::pselect6(i(a[0]), a[1], a[2], a[3], a[4]),
        271 => fs::ppoll(a[0], a[1], a[2]),
        273 => Ok(0), // set_robust_list: robust futexes only matter when a process dies
        280 => Ok(0), // utimensat
        284 | 290 => fs::eventfd(a[0], if nr == 290 { a[1] as u32 } else { 0 }),
        288 => net::accept4(i(a[0]), a[1], a[2], a[3]),
        292 => fs::dup3(i(a[0]), i(a[1]), a[2] as u32, false),
        293 => fs::pipe2(a[0], a[1] as u32),
        302 => proc::prlimit(i(a[0]), a[1] as u32, a[2], a[3]),
        318 => proc::getrandom(a[0], a[1]),
        324 => Ok(0), // membarrier: one CPU
        332 => fs::statx(i(a[0]), a[1], a[2] as u32, a[4]),
        334 => Err(ENOSYS), // rseq: libc falls back silently
        435 => Err(ENOSYS), // clone3: libc falls back to clone silently
        _ => unserved(nr, "is not served"),
    }
}

/// Before the program resumes after an interrupt: the time slice may be
/// over (another thread's turn), and signals may be pending.
pub fn on_return(regs: &mut UserRegs) {
    unikit_kernel::sched::preempt();
    signal::deliver_pending(regs);
}

/// A deadline `ms` milliseconds from now (negative: none).
fn ms_deadline(ms: i64) -> Option<u64> {
    (ms >= 0).then(|| unikit_kernel::time::monotonic_ns().saturating_add(ms as u64 * 1_000_000))
}

/// A CPU exception in the program: a page it may touch is made present;
/// anything else ends the program as Linux's default action would.
pub fn fault(regs: &mut UserRegs, f: &Fault) {
    const PAGE_FAULT: u64 = 14;
    if f.vector == PAGE_FAULT
        && let Some(a) = f.address
        && crate::vm::page_fault(a.addr, f.error_code & 2 != 0, f.error_code & 0x10 != 0)
    {
        return;
    }
    let sig = match f.vector {
        0 | 16 | 19 => 8, // SIGFPE
        6 => 4,           // SIGILL
        1 | 3 => 5,       // SIGTRAP
        17 => 7,          // SIGBUS
        _ => 11,          // SIGSEGV
    };
    let addr = f.address.map(|a| a.addr).unwrap_or(0);
    if !signal::has_handler(sig) {
        kprintln!(
            "unikit: program killed by {}: {} at rip {:#x}, rsp {:#x}",
            signal::name(sig),
            f.name,
            regs.rip,
            regs.rsp
        );
        if let Some(a) = f.address {
            kprintln!("  fault address {:#x}: {}, {}", a.addr, a.access, a.cause);
        }
    }
    signal::fault(regs, sig, addr, f.error_code & 1 != 0, f.vector, f.error_code);
}
