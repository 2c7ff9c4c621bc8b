//! Signals: dispositions, per-thread masks, alternate stacks, pending sets,
//! and delivery to handlers with Linux's x86_64 `rt_sigframe`
//! (arch/x86/kernel/signal_64.c, uapi asm/sigcontext.h, asm/ucontext.h).
//!
//! A signal for the running thread (a fault, `raise`) is delivered before
//! it returns to user mode. A signal for another thread is delivered when
//! that thread next returns to user mode: after its current system call
//! (which is not interrupted with EINTR) or at its next time slice.

use crate::errno::*;
use crate::vm;
use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use unikit_kernel::sched::{self, Tid};
use unikit_kernel::user::UserRegs;

const SA_SIGINFO: u64 = 4;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
/// `si_code` of a signal sent with `tkill`/`tgkill`.
const SI_TKILL: i32 = -6;
/// `si_code` of a SIGSEGV on an unmapped address / a protection fault.
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;

/// `struct k_sigaction` as `rt_sigaction` passes it.
#[derive(Clone, Copy, Default)]
struct Action {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

#[derive(Clone, Copy, Default)]
struct ThreadSignals {
    blocked: u64,
    pending: u64,
    alt_sp: u64,
    alt_size: u64,
    alt_disabled: bool,
}

static ACTIONS: Mutex<[Action; 64]> = Mutex::new([Action { handler: 0, flags: 0, restorer: 0, mask: 0 }; 64]);
static THREADS: Mutex<BTreeMap<Tid, ThreadSignals>> = Mutex::new(BTreeMap::new());
/// Whether any thread may have a pending signal: spares every system
/// call's return the look-up when none is (the common case).
static ANY_PENDING: AtomicBool = AtomicBool::new(false);

fn bit(sig: u32) -> u64 {
    1u64 << (sig - 1)
}

fn with_thread<R>(tid: Tid, f: impl FnOnce(&mut ThreadSignals) -> R) -> R {
    let mut m = THREADS.lock();
    f(m.entry(tid).or_insert(ThreadSignals { alt_disabled: true, ..ThreadSignals::default() }))
}

/// A new thread starts with its creator's mask and no alternate stack.
pub fn thread_created(child: Tid) {
    let blocked = with_thread(sched::current(), |t| t.blocked);
    with_thread(child, |t| t.blocked = blocked);
}

/// Forgets an exited thread.
pub fn thread_exited(tid: Tid) {
    THREADS.lock().remove(&tid);
}

/// `rt_sigaction`.
pub fn sigaction(sig: i64, act: u64, old: u64, size: u64) -> Result<u64, Errno> {
    if !(1..=64).contains(&sig) || size != 8 || (act != 0 && (sig == 9 || sig == 19)) {
        return Err(EINVAL);
    }
    let new = if act != 0 {
        let mut b = [0u8; 32];
        vm::read(act, &mut b)?;
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        Some(Action { handler: w(0), flags: w(1), restorer: w(2), mask: w(3) })
    } else {
        None
    };
    let mut actions = ACTIONS.lock();
    let slot = &mut actions[sig as usize - 1];
    if old != 0 {
        let mut b = [0u8; 32];
        for (i, v) in [slot.handler, slot.flags, slot.restorer, slot.mask].iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        vm::write(old, &b)?;
    }
    if let Some(a) = new {
        *slot = a;
    }
    Ok(0)
}

/// `rt_sigprocmask`.
pub fn sigprocmask(how: i64, set: u64, old: u64, size: u64) -> Result<u64, Errno> {
    if size != 8 {
        return Err(EINVAL);
    }
    let new = if set != 0 { Some(vm::read_u64(set)?) } else { None };
    let prev = with_thread(sched::current(), |t| {
        let prev = t.blocked;
        if let Some(s) = new {
            let b = match how {
                0 => t.blocked | s,
                1 => t.blocked & !s,
                2 => s,
                _ => return Err(EINVAL),
            };
            t.blocked = b & !(bit(9) | bit(19)); // SIGKILL and SIGSTOP cannot be blocked
        }
        Ok(prev)
    })?;
    if old != 0 {
        vm::write_u64(old, prev)?;
    }
    Ok(0)
}

/// `rt_sigpending`.
pub fn sigpending(set: u64) -> Result<u64, Errno> {
    let p = with_thread(sched::current(), |t| t.pending);
    vm::write_u64(set, p)?;
    Ok(0)
}

/// `sigaltstack`.
pub fn sigaltstack(new: u64, old: u64, sp_now: u64) -> Result<u64, Errno> {
    let me = sched::current();
    let (sp, size, disabled) = with_thread(me, |t| (t.alt_sp, t.alt_size, t.alt_disabled));
    if old != 0 {
        let on = !disabled && sp_now > sp && sp_now <= sp + size;
        let flags = if disabled {
            SS_DISABLE
        } else if on {
            SS_ONSTACK
        } else {
            0
        };
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&sp.to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..].copy_from_slice(&size.to_le_bytes());
        vm::write(old, &b)?;
    }
    if new != 0 {
        let mut b = [0u8; 24];
        vm::read(new, &mut b)?;
        let nsp = u64::from_le_bytes(b[..8].try_into().unwrap());
        let nflags = u32::from_le_bytes(b[8..12].try_into().unwrap());
        let nsize = u64::from_le_bytes(b[16..].try_into().unwrap());
        if nflags & !SS_DISABLE != 0 {
            return Err(EINVAL);
        }
        if nflags & SS_DISABLE == 0 && nsize < 2048 {
            return Err(ENOMEM);
        }
        with_thread(me, |t| {
            t.alt_disabled = nflags & SS_DISABLE != 0;
            t.alt_sp = nsp;
            t.alt_size = nsize;
        });
    }
    Ok(0)
}

const NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// The name of signal `sig`.
pub fn name(sig: u32) -> &'static str {
    NAMES.get(sig as usize - 1).copied().unwrap_or("a real-time signal")
}

fn ignored_by_default(sig: u32) -> bool {
    matches!(sig, 17 | 18 | 23 | 28) // CHLD, CONT, URG, WINCH
}

/// The default action of a fatal signal: the program ends with 128 + sig.
fn die(sig: u32) -> ! {
    if !matches!(sig, 4 | 5 | 7 | 8 | 11) {
        unikit_kernel::kprintln!("unikit: program killed by {}", name(sig)); // faults were reported already
    }
    crate::syscall::end_program(128 + sig as i32)
}

/// `tgkill` and friends: queues `sig` for thread `tid` (any thread of the
/// program for `None`).
pub fn send(tid: Option<Tid>, sig: u32) -> Result<(), Errno> {
    if !(1..=64).contains(&sig) {
        return Err(EINVAL);
    }
    let a = ACTIONS.lock()[sig as usize - 1];
    if a.handler == SIG_IGN || (a.handler == SIG_DFL && ignored_by_default(sig)) {
        return Ok(());
    }
    if a.handler == SIG_DFL {
        die(sig);
    }
    let target = tid.unwrap_or_else(sched::current);
    with_thread(target, |t| t.pending |= bit(sig));
    ANY_PENDING.store(true, Ordering::Relaxed);
    Ok(())
}

/// Before the running thread returns to user mode: delivers one pending,
/// unblocked signal by building its frame. True when `regs` changed.
pub fn deliver_pending(regs: &mut UserRegs) -> bool {
    if !ANY_PENDING.load(Ordering::Relaxed) {
        return false;
    }
    let me = sched::current();
    let sig = with_thread(me, |t| {
        let ready = t.pending & !t.blocked;
        if ready == 0 {
            return None;
        }
        let s = ready.trailing_zeros() + 1;
        t.pending &= !bit(s);
        Some(s)
    });
    if THREADS.lock().values().all(|t| t.pending == 0) {
        ANY_PENDING.store(false, Ordering::Relaxed);
    }
    match sig {
        Some(s) => {
            let mut info = [0u8; 128];
            info[..4].copy_from_slice(&(s as i32).to_le_bytes());
            info[8..12].copy_from_slice(&SI_TKILL.to_le_bytes());
            info[16..20].copy_from_slice(&(crate::syscall::pid() as i32).to_le_bytes());
            deliver(regs, s, &info, 0).is_ok()
        }
        None => false,
    }
}

/// Whether the program has a handler for `sig`.
pub fn has_handler(sig: u32) -> bool {
    ACTIONS.lock()[sig as usize - 1].handler > SIG_IGN
}

/// A CPU fault of the running thread as signal `sig` (SIGSEGV, ...):
/// delivered to its handler, or the program ends.
pub fn fault(regs: &mut UserRegs, sig: u32, addr: u64, protection: bool, trapno: u64, err: u64) {
    let a = ACTIONS.lock()[sig as usize - 1];
    let blocked = with_thread(sched::current(), |t| t.blocked & bit(sig) != 0);
    if a.handler == SIG_DFL || a.handler == SIG_IGN || blocked {
        die(sig); // a fault the program cannot take is fatal, as on Linux
    }
    let mut info = [0u8; 128];
    info[..4].copy_from_slice(&(sig as i32).to_le_bytes());
    let code = if sig == 11 { if protection { SEGV_ACCERR } else { SEGV_MAPERR } } else { 1 };
    info[8..12].copy_from_slice(&code.to_le_bytes());
    info[16..24].copy_from_slice(&addr.to_le_bytes());
    if deliver(regs, sig, &info, (trapno << 32) | err).is_err() {
        die(sig); // no room for the frame: the stack itself is bad
    }
}

/// Builds the `rt_sigframe` for `sig` on the program's stack and points
/// the registers at the handler.
fn deliver(regs: &mut UserRegs, sig: u32, info: &[u8; 128], trap: u64) -> Result<(), Errno> {
    let me = sched::current();
    let a = ACTIONS.lock()[sig as usize - 1];
    if a.handler == SIG_DFL || a.handler == SIG_IGN {
        if a.handler == SIG_DFL && !ignored_by_default(sig) {
            die(sig);
        }
        return Ok(());
    }
    let (alt_sp, alt_size, alt_off, blocked) = with_thread(me, |t| (t.alt_sp, t.alt_size, t.alt_disabled, t.blocked));
    let on_alt = !alt_off && regs.rsp > alt_sp && regs.rsp <= alt_sp + alt_size;
    let mut sp = if a.flags & SA_ONSTACK != 0 && !alt_off && !on_alt { alt_sp + alt_size } else { regs.rsp - 128 };
    // FPU state, 64-byte aligned as xsave wants it.
    sp = (sp - 512) & !63;
    let fpstate = sp;
    const FRAME: u64 = 8 + 304 + 128;
    sp = ((sp - FRAME) & !15) - 8;
    let frame = sp;
    let uc = frame + 8;
    let info_at = uc + 304;

    let cpu = unikit_kernel::user::cpu_state();
    let mut b = [0u8; FRAME as usize];
    b[..8].copy_from_slice(&if a.flags & SA_RESTORER != 0 { a.restorer } else { 0 }.to_le_bytes());
    let mut put = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    // uc_stack
    put(8 + 16, alt_sp);
    put(
        8 + 24,
        if alt_off {
            SS_DISABLE as u64
        } else if on_alt {
            SS_ONSTACK as u64
        } else {
            0
        },
    );
    put(8 + 32, alt_size);
    // uc_mcontext (struct sigcontext), at uc + 40
    let mc = 8 + 40;
    let gprs = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.rflags,
    ];
    for (i, v) in gprs.iter().enumerate() {
        put(mc + i * 8, *v);
    }
    put(mc + 144, 0x33 | (0x2b << 48)); // cs, gs, fs, ss as Linux shows them
    put(mc + 152, trap & 0xffff_ffff); // err
    put(mc + 160, trap >> 32); // trapno
    put(mc + 168, blocked); // oldmask
    put(mc + 176, u64::from_le_bytes(info[16..24].try_into().unwrap())); // cr2
    put(mc + 184, fpstate);
    put(8 + 296, blocked); // uc_sigmask
    b[8 + 304..].copy_from_slice(info);
    vm::write(fpstate, &cpu.fpu)?;
    vm::write(frame, &b)?;

    with_thread(me, |t| {
        t.blocked |= a.mask | if a.flags & SA_NODEFER != 0 { 0 } else { bit(sig) };
    });
    if a.flags & SA_RESETHAND != 0 {
        ACTIONS.lock()[sig as usize - 1] = Action::default();
    }
    regs.rsp = frame;
    regs.rip = a.handler;
    regs.rdi = sig as u64;
    regs.rsi = if a.flags & SA_SIGINFO != 0 { info_at } else { 0 };
    regs.rdx = if a.flags & SA_SIGINFO != 0 { uc } else { 0 };
    regs.rax = 0;
    regs.rflags &= !(1 << 10 | 1 << 8); // DF and TF clear in the handler
    Ok(())
}

/// `rt_sigreturn`: restores what the frame at `rsp - 8` saved.
pub fn sigreturn(regs: &mut UserRegs) -> Result<(), Errno> {
    let frame = regs.rsp - 8;
    let uc = frame + 8;
    let b = vm::read_vec(uc, 304)?;
    let w = |off: usize| u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
    let mc = 40;
    let g: [u64; 18] = core::array::from_fn(|i| w(mc + i * 8));
    let fpstate = w(mc + 184);
    *regs = UserRegs {
        r8: g[0],
        r9: g[1],
        r10: g[2],
        r11: g[3],
        r12: g[4],
        r13: g[5],
        r14: g[6],
        r15: g[7],
        rdi: g[8],
        rsi: g[9],
        rbp: g[10],
        rbx: g[11],
        rdx: g[12],
        rax: g[13],
        rcx: g[14],
        rsp: g[15],
        rip: g[16],
        rflags: g[17],
    };
    if fpstate != 0 {
        let mut fpu = [0u8; 512];
        vm::read(fpstate, &mut fpu)?;
        unikit_kernel::user::set_fpu(&fpu);
    }
    let mask = w(296) & !(bit(9) | bit(19));
    with_thread(sched::current(), |t| t.blocked = mask);
    Ok(())
}
