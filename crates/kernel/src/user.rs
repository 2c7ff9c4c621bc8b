//! User mode, for the Linux system-call layer (`unikit-posix`): entering a
//! program, its threads' CPU state, its pages, and checked copies between
//! its memory and the kernel's.
//!
//! `unsafe` here is the copy to and from a program's memory. Every page a
//! copy touches is first checked in the page tables to be a user page with
//! the needed rights, and the copy happens with interrupts off, so nothing
//! can unmap the page in between (one CPU; the scheduler does not preempt
//! kernel code).
#![allow(unsafe_code)]

use crate::platform::{IrqGuard, hal};
pub use hal::{Fault, UserCpuState, UserProt, UserRegs};

/// The size of a page.
pub const PAGE: u64 = 4096;

/// A program's pointer did not lead to memory it may use (`EFAULT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddress(pub u64);

/// Whether this platform runs user programs.
pub fn available() -> bool {
    hal().user.is_some()
}

/// The platform's user mode: callers have checked [`available`].
fn um() -> &'static dyn hal::UserMode {
    hal().user.expect("user mode on a platform without it")
}

/// Routes system calls and program faults to the given handlers, and
/// calls `on_return` before a program resumes after an interrupt.
pub fn bind(syscall: fn(&mut UserRegs) -> bool, fault: fn(&mut UserRegs, &Fault), on_return: fn(&mut UserRegs)) {
    um().bind(syscall, fault, on_return)
}

/// Runs a program on the running thread from `regs`, with CPU state
/// `state`; never returns (the program ends through a system call).
pub fn enter(regs: &UserRegs, state: UserCpuState) -> ! {
    let _irq = IrqGuard::new();
    let top = crate::sched::become_user(state);
    hal().clock.arm_timer(hal().clock.monotonic_ns().saturating_add(crate::sched::TIME_SLICE_NS));
    um().enter(regs, top)
}

/// Sets the running thread's TLS base.
pub fn set_tls(base: u64) {
    let _irq = IrqGuard::new();
    crate::sched::with_user_state(|s| s.tls = base);
    um().set_tls(base);
}

/// A copy of the running thread's CPU state (for a new thread: `clone`
/// starts with its parent's FPU state).
pub fn cpu_state() -> UserCpuState {
    let _irq = IrqGuard::new();
    crate::sched::with_user_state(|s| {
        um().save(s);
        s.clone()
    })
    .unwrap_or_else(UserCpuState::initial)
}

/// Replaces the running thread's FPU/SSE registers (`rt_sigreturn`). The
/// MXCSR's reserved bits are cleared: loading them would fault.
pub fn set_fpu(fpu: &[u8; 512]) {
    let _irq = IrqGuard::new();
    let top = crate::sched::current_stack().1;
    crate::sched::with_user_state(|s| {
        s.fpu = *fpu;
        let mxcsr = u32::from_le_bytes([fpu[24], fpu[25], fpu[26], fpu[27]]) & 0xffff;
        s.fpu[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        um().load(s, top);
    });
}

/// Maps the user page `va` to frame `pa` with `prot`. False when the
/// platform cannot (out of frames for page tables).
pub fn map(va: u64, pa: u64, prot: UserProt) -> bool {
    let _irq = IrqGuard::new();
    hal().memory.map_user(va, pa, prot)
}

/// Unmaps the user page `va`; returns its frame.
pub fn unmap(va: u64) -> Option<u64> {
    let _irq = IrqGuard::new();
    hal().memory.unmap_user(va)
}

/// The frame and rights of the user page `va`.
pub fn page(va: u64) -> Option<(u64, UserProt)> {
    hal().memory.user_page(va)
}

/// Checks that `[addr, addr + len)` is user memory with the right for
/// `write`, page by page, and calls `f` on it as raw pointer and length.
fn with_range<R>(addr: u64, len: usize, write: bool, f: impl FnOnce(*mut u8) -> R) -> Result<R, BadAddress> {
    let _irq = IrqGuard::new();
    if len == 0 {
        return Ok(f(core::ptr::NonNull::dangling().as_ptr()));
    }
    let end = addr.checked_add(len as u64).ok_or(BadAddress(addr))?;
    let mut p = addr & !(PAGE - 1);
    while p < end {
        match hal().memory.user_page(p) {
            Some((_, prot)) if prot.read && (!write || prot.write) => {}
            _ => return Err(BadAddress(p.max(addr))),
        }
        p += PAGE;
    }
    Ok(f(addr as *mut u8))
}

/// Copies `out.len()` bytes from the program's `addr`.
pub fn copy_in(addr: u64, out: &mut [u8]) -> Result<(), BadAddress> {
    // SAFETY: `with_range` checked every page of the source is a readable
    // user page, and keeps interrupts off so it stays mapped; the source
    // is user memory, never the kernel's `out`.
    with_range(addr, out.len(), false, |src| unsafe {
        core::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len())
    })
}

/// Copies `data` to the program's `addr`.
pub fn copy_out(addr: u64, data: &[u8]) -> Result<(), BadAddress> {
    // SAFETY: as in `copy_in`, with every page writable.
    with_range(addr, data.len(), true, |dst| unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) })
}

/// Zeroes `len` bytes of the program's memory at `addr`.
pub fn zero(addr: u64, len: usize) -> Result<(), BadAddress> {
    // SAFETY: as in `copy_out`.
    with_range(addr, len, true, |dst| unsafe { core::ptr::write_bytes(dst, 0, len) })
}

/// Zeroes a frame before it becomes a program's page: `pa` was just taken
/// from the frame allocator by the caller and is identity mapped for the
/// kernel (not yet mapped for the program).
pub fn zero_frame(pa: u64) {
    assert!(pa.is_multiple_of(PAGE));
    // SAFETY: the frame belongs to the caller (fresh from the frame
    // allocator) and is identity mapped, writable for the kernel.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE as usize) }
}
