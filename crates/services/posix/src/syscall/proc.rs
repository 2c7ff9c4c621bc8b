//! Identity, limits, time, randomness and the signal calls.

use super::SysResult;
use crate::errno::*;
use crate::vm;
use core::sync::atomic::{AtomicU32, Ordering};
use unikit_kernel::time::{monotonic_ns, sleep_ns, wall_clock_ns};

/// The release `uname` reports: a kernel new enough for every libc.
pub const RELEASE: &str = "6.1.0-unikit";
const CLOCK_REALTIME: u32 = 0;
const TIMER_ABSTIME: u32 = 1;

static UMASK: AtomicU32 = AtomicU32::new(0o022);

/// The process id: the main thread's.
pub fn getpid() -> u64 {
    unikit_kernel::sched::MAIN_TID
}

pub fn sched_yield() -> SysResult {
    unikit_kernel::sched::yield_now();
    Ok(0)
}

fn write_timespec(p: u64, ns: u64) -> Result<(), Errno> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    vm::write(p, &b)
}

pub fn nanosleep(req: u64, _rem: u64) -> SysResult {
    sleep_ns(vm::read_timespec(req)?);
    Ok(0)
}

pub fn clock_nanosleep(clock: u32, flags: u32, req: u64, _rem: u64) -> SysResult {
    let t = vm::read_timespec(req)?;
    let ns = if flags & TIMER_ABSTIME != 0 {
        let now = if clock == CLOCK_REALTIME { wall_clock_ns() } else { monotonic_ns() };
        t.saturating_sub(now)
    } else {
        t
    };
    sleep_ns(ns);
    Ok(0)
}

pub fn clock_gettime(clock: u32, out: u64) -> SysResult {
    // REALTIME (0), REALTIME_COARSE (5), TAI (11) read the wall clock;
    // MONOTONIC (1), the CPU-time clocks (2, 3), RAW (4), COARSE (6) and
    // BOOTTIME (7) the monotonic one (one process, never suspended).
    let ns = match clock {
        0 | 5 | 11 => wall_clock_ns(),
        1..=4 | 6 | 7 => monotonic_ns(),
        _ => return Err(EINVAL),
    };
    write_timespec(out, ns)?;
    Ok(0)
}

pub fn clock_getres(out: u64) -> SysResult {
    if out != 0 {
        write_timespec(out, 1)?;
    }
    Ok(0)
}

pub fn gettimeofday(tv: u64, _tz: u64) -> SysResult {
    if tv != 0 {
        let ns = wall_clock_ns();
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
        vm::write(tv, &b)?;
    }
    Ok(0)
}

pub fn time(out: u64) -> SysResult {
    let s = wall_clock_ns() / 1_000_000_000;
    if out != 0 {
        vm::write_u64(out, s)?;
    }
    Ok(s)
}

pub fn uname(out: u64) -> SysResult {
    let mut b = [0u8; 65 * 6];
    for (i, f) in ["Linux", "unikit", RELEASE, "#1 unikit", "x86_64", "(none)"].iter().enumerate() {
        b[i * 65..i * 65 + f.len()].copy_from_slice(f.as_bytes());
    }
    vm::write(out, &b)?;
    Ok(0)
}

pub fn umask(mask: u32) -> u64 {
    UMASK.swap(mask & 0o777, Ordering::Relaxed) as u64
}

pub fn prlimit(pid: i64, resource: u32, new: u64, old: u64) -> SysResult {
    const RLIMIT_STACK: u32 = 3;
    const RLIMIT_NOFILE: u32 = 7;
    const INF: u64 = u64::MAX;
    if pid != 0 && pid as u64 != getpid() {
        return Err(ESRCH);
    }
    if resource > 15 {
        return Err(EINVAL);
    }
    let _ = new; // limits are fixed: setting one is accepted and has no effect
    if old != 0 {
        let (cur, max) = match resource {
            RLIMIT_STACK => (vm::STACK_SIZE, vm::STACK_SIZE),
            RLIMIT_NOFILE => (crate::fd::MAX_FDS as u64, crate::fd::MAX_FDS as u64),
            _ => (INF, INF),
        };
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&cur.to_le_bytes());
        b[8..].copy_from_slice(&max.to_le_bytes());
        vm::write(old, &b)?;
    }
    Ok(0)
}

pub fn getrusage(out: u64) -> SysResult {
    let mut b = [0u8; 144];
    let ns = monotonic_ns();
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..16].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
    vm::write(out, &b)?;
    Ok(0)
}

pub fn sysinfo(out: u64) -> SysResult {
    let m = unikit_kernel::mem::stats();
    let mut b = [0u8; 112];
    b[..8].copy_from_slice(&(monotonic_ns() / 1_000_000_000).to_le_bytes());
    b[32..40].copy_from_slice(&m.total_bytes.to_le_bytes());
    b[40..48].copy_from_slice(&m.free_bytes.to_le_bytes());
    b[80..82].copy_from_slice(&(unikit_kernel::sched::thread_count() as u16).to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes()); // mem_unit
    vm::write(out, &b)?;
    Ok(0)
}

pub fn getresid(a: u64, b: u64, c: u64) -> SysResult {
    for p in [a, b, c] {
        vm::write(p, &0u32.to_le_bytes())?;
    }
    Ok(0)
}

pub fn statfs(out: u64) -> SysResult {
    let mut b = [0u8; 120];
    b[..8].copy_from_slice(&0x858458f6u64.to_le_bytes()); // RAMFS_MAGIC
    b[8..16].copy_from_slice(&4096u64.to_le_bytes());
    b[64..72].copy_from_slice(&255u64.to_le_bytes()); // f_namelen
    vm::write(out, &b)?;
    Ok(0)
}

pub fn arch_prctl(code: u64, addr: u64) -> SysResult {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    match code {
        ARCH_SET_FS => {
            if (addr as i64) >> 47 != 0 {
                return Err(EPERM); // not a canonical user address
            }
            unikit_kernel::user::set_tls(addr);
            Ok(0)
        }
        ARCH_GET_FS => {
            vm::write_u64(addr, unikit_kernel::user::cpu_state().tls)?;
            Ok(0)
        }
        ARCH_SET_GS => Err(EINVAL),
        _ => Err(EINVAL),
    }
}

pub fn sched_getaffinity(len: u64, mask: u64) -> SysResult {
    if len < 8 {
        return Err(EINVAL);
    }
    vm::write_u64(mask, 1)?; // CPU 0
    Ok(8)
}

pub fn getrandom(buf: u64, len: u64) -> SysResult {
    let n = (len as usize).min(1 << 20);
    let mut tmp = alloc::vec![0u8; n];
    crate::random::fill(&mut tmp);
    vm::write(buf, &tmp)?;
    Ok(n as u64)
}

/// `tgkill`: a signal for one of the program's threads.
pub fn tgkill(tgid: i64, tid: i64, sig: i64) -> SysResult {
    if tgid as u64 != getpid() && tgid != -1 {
        return Err(ESRCH);
    }
    if !(0..=64).contains(&sig) {
        return Err(EINVAL);
    }
    if tid <= 0 || !unikit_kernel::sched::exists(tid as u64) {
        return Err(ESRCH);
    }
    if sig == 0 {
        return Ok(0);
    }
    crate::signal::send(Some(tid as u64), sig as u32).map(|_| 0)
}

/// `kill`: only the program itself can be a target.
pub fn kill(pid: i64, sig: i64) -> SysResult {
    if pid > 0 && pid as u64 != getpid() {
        return Err(ESRCH);
    }
    if !(0..=64).contains(&sig) {
        return Err(EINVAL);
    }
    if sig == 0 {
        return Ok(0);
    }
    crate::signal::send(None, sig as u32).map(|_| 0)
}
