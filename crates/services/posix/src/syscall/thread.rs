//! Threads (`clone` with `CLONE_VM | CLONE_THREAD`), futexes and exit.
//! Each program thread is a kernel thread that runs in user mode; its
//! kernel stack takes its system calls and interrupts.

use super::SysResult;
use crate::errno::*;
use crate::vm;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;
use unikit_kernel::sched::{self, Tid};
use unikit_kernel::sync::WaitQueue;
use unikit_kernel::user::{self, UserRegs};

const CLONE_VM: u64 = 0x100;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
/// Kernel stack of a program thread: system calls and interrupts only.
const KERNEL_STACK: usize = 32 * 1024;

/// Program threads alive; the program ends when the last one exits.
static LIVE: AtomicUsize = AtomicUsize::new(1);
/// `clear_child_tid` of each thread (`set_tid_address`, CLONE_CHILD_CLEARTID).
static CLEAR_TID: Mutex<BTreeMap<Tid, u64>> = Mutex::new(BTreeMap::new());

pub fn clone(parent: &UserRegs, flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> SysResult {
    if flags & (CLONE_VM | CLONE_THREAD) != CLONE_VM | CLONE_THREAD {
        return super::unserved(56, "of a new process (what fork does) is not offered (one process per VM)");
    }
    let mut regs = *parent;
    regs.rax = 0;
    if stack != 0 {
        regs.rsp = stack;
    }
    let mut state = user::cpu_state();
    if flags & CLONE_SETTLS != 0 {
        state.tls = tls;
    }
    LIVE.fetch_add(1, Ordering::Relaxed);
    let n = LIVE.load(Ordering::Relaxed);
    let tid = match sched::spawn(format!("thread-{n}"), KERNEL_STACK, Box::new(move || user::enter(&regs, state))) {
        Ok(t) => t,
        Err(_) => {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            return Err(EAGAIN);
        }
    };
    sched::detach(tid);
    crate::signal::thread_created(tid);
    // The child runs only once this thread blocks or yields: these land first.
    if flags & CLONE_PARENT_SETTID != 0 {
        vm::write(ptid, &(tid as u32).to_le_bytes())?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        vm::write(ctid, &(tid as u32).to_le_bytes())?;
    }
    if flags & CLONE_CHILD_CLEARTID != 0 {
        CLEAR_TID.lock().insert(tid, ctid);
    }
    Ok(tid)
}

pub fn set_tid_address(p: u64) -> SysResult {
    let me = sched::current();
    CLEAR_TID.lock().insert(me, p);
    Ok(me)
}

/// `exit`: ends this thread; the program ends with its last thread.
pub fn exit(code: i32) -> SysResult {
    let me = sched::current();
    if let Some(p) = CLEAR_TID.lock().remove(&me)
        && p != 0
        && vm::write(p, &0u32.to_le_bytes()).is_ok()
    {
        wake(p, 1, u32::MAX);
    }
    crate::signal::thread_exited(me);
    if LIVE.fetch_sub(1, Ordering::Relaxed) == 1 {
        end_program(code);
    }
    if me == sched::MAIN_TID {
        // The main thread's kernel context is the boot one, which cannot
        // exit while others run: it waits for good (the last thread's
        // exit ends the program).
        static NEVER: WaitQueue = WaitQueue::new();
        NEVER.wait_until(|| false);
    }
    sched::exit_current()
}

pub fn exit_group(code: i32) -> SysResult {
    end_program(code)
}

/// The program is over: what its connections still have queued goes out
/// (up to a second each), then the VM stops with its status.
pub fn end_program(code: i32) -> ! {
    for f in crate::fd::all() {
        if let Some(s) = f.as_socket() {
            s.linger(core::time::Duration::from_secs(1));
        }
    }
    unikit_net::drain(core::time::Duration::from_secs(1));
    unikit_kernel::exit::exit(code & 0xff)
}

struct Waiter {
    id: u64,
    addr: u64,
    bitset: u32,
    woken: bool,
}

static WAITERS: Mutex<Vec<Waiter>> = Mutex::new(Vec::new());
static FUTEX_WQ: WaitQueue = WaitQueue::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn read_u32(addr: u64) -> Result<u32, Errno> {
    if !addr.is_multiple_of(4) {
        return Err(EINVAL);
    }
    let mut b = [0u8; 4];
    vm::read(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn wait(addr: u64, val: u32, deadline: Option<u64>, bitset: u32) -> SysResult {
    if bitset == 0 {
        return Err(EINVAL);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    WAITERS.lock().push(Waiter { id, addr, bitset, woken: false });
    let remove = || {
        let mut w = WAITERS.lock();
        let i = w.iter().position(|w| w.id == id);
        i.map(|i| w.swap_remove(i).woken).unwrap_or(true)
    };
    match read_u32(addr) {
        Ok(v) if v == val => {}
        Ok(_) => {
            remove();
            return Err(EAGAIN);
        }
        Err(e) => {
            remove();
            return Err(e);
        }
    }
    FUTEX_WQ.wait_until_deadline(|| WAITERS.lock().iter().find(|w| w.id == id).is_none_or(|w| w.woken), deadline);
    if remove() { Ok(0) } else { Err(ETIMEDOUT) }
}

/// Wakes up to `n` waiters on `addr` whose bitset meets `bitset`.
fn wake(addr: u64, n: u32, bitset: u32) -> u64 {
    let mut count = 0u64;
    for w in WAITERS.lock().iter_mut().filter(|w| w.addr == addr && !w.woken && w.bitset & bitset != 0) {
        if count >= n as u64 {
            break;
        }
        w.woken = true;
        count += 1;
    }
    if count > 0 {
        FUTEX_WQ.notify_all();
    }
    count
}

fn requeue(addr: u64, n_wake: u32, n_move: u32, to: u64) -> u64 {
    let woken = wake(addr, n_wake, u32::MAX);
    let mut moved = 0u64;
    for w in WAITERS.lock().iter_mut().filter(|w| w.addr == addr && !w.woken) {
        if moved >= n_move as u64 {
            break;
        }
        w.addr = to;
        moved += 1;
    }
    woken + moved
}

/// FUTEX_WAKE_OP: `*uaddr2 = op(*uaddr2, oparg)`, wake on `uaddr`, and on
/// `uaddr2` too if the old value passed the comparison (futex(2)).
fn wake_op(addr: u64, n: u32, n2: u32, addr2: u64, encoded: u32) -> SysResult {
    let op = (encoded >> 28) & 7;
    let shift = encoded >> 31 != 0;
    let cmp = (encoded >> 24) & 15;
    let mut oparg = (encoded >> 12) & 0xfff;
    let cmparg = encoded & 0xfff;
    if shift {
        oparg = 1u32.checked_shl(oparg).ok_or(EINVAL)?;
    }
    let old = read_u32(addr2)?;
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(ENOSYS),
    };
    vm::write(addr2, &new.to_le_bytes())?;
    let mut woken = wake(addr, n, u32::MAX);
    let pass = match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => (old as i32) < cmparg as i32,
        3 => (old as i32) <= cmparg as i32,
        4 => (old as i32) > cmparg as i32,
        5 => (old as i32) >= cmparg as i32,
        _ => return Err(ENOSYS),
    };
    if pass {
        woken += wake(addr2, n2, u32::MAX);
    }
    Ok(woken)
}

pub fn futex(addr: u64, op: u32, val: u32, timeout: u64, addr2: u64, val3: u32) -> SysResult {
    const WAIT: u32 = 0;
    const WAKE: u32 = 1;
    const REQUEUE: u32 = 3;
    const CMP_REQUEUE: u32 = 4;
    const WAKE_OP: u32 = 5;
    const WAIT_BITSET: u32 = 9;
    const WAKE_BITSET: u32 = 10;
    const CLOCK_REALTIME: u32 = 256;
    let now = unikit_kernel::time::monotonic_ns;
    match op & 0x7f {
        WAIT => {
            let deadline = if timeout == 0 { None } else { Some(now().saturating_add(vm::read_timespec(timeout)?)) };
            wait(addr, val, deadline, u32::MAX)
        }
        WAIT_BITSET => {
            let deadline = if timeout == 0 {
                None
            } else {
                let abs = vm::read_timespec(timeout)?;
                Some(if op & CLOCK_REALTIME != 0 {
                    now().saturating_add(abs.saturating_sub(unikit_kernel::time::wall_clock_ns()))
                } else {
                    abs
                })
            };
            wait(addr, val, deadline, val3)
        }
        WAKE => Ok(wake(addr, val, u32::MAX)),
        WAKE_BITSET => Ok(wake(addr, val, val3)),
        REQUEUE => Ok(requeue(addr, val, timeout as u32, addr2)),
        CMP_REQUEUE => {
            if read_u32(addr)? != val3 {
                return Err(EAGAIN);
            }
            Ok(requeue(addr, val, timeout as u32, addr2))
        }
        WAKE_OP => wake_op(addr, val, timeout as u32, addr2, val3),
        _ => Err(ENOSYS),
    }
}
