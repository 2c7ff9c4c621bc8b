//! Hypercalls through the hypercall page: Xen fills one 32-byte stub per
//! hypercall into a page of the image (PV: named by the HYPERCALL_PAGE ELF
//! note; PVH: written when the guest puts the page's address into the MSR
//! that CPUID leaf base+2 names). Stubs use `syscall` (PV) or `vmcall`
//! (HVM), so the caller never needs to know which. The page belongs to the
//! platform (crates/plat/x86-vm), which binds its address here at boot.
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// The hypercall page's address; 0 until the platform binds it.
static PAGE: AtomicU64 = AtomicU64::new(0);

/// Linux's ENOSYS: what a hypercall returns before the page is bound.
const ENOSYS: isize = 38;

/// Binds the hypercall page (called once by the platform, before the
/// first hypercall).
pub fn bind_page(addr: u64) {
    PAGE.store(addr, Ordering::Release);
}

/// Address of the hypercall page (0 if not bound).
pub fn page_addr() -> u64 {
    PAGE.load(Ordering::Acquire)
}

/// Issues hypercall `nr` with up to five arguments; returns Xen's result
/// (negative errno on failure).
///
/// # Safety
/// Arguments are passed to the hypervisor as is: pointers must be valid
/// for what the hypercall reads and writes.
#[inline]
pub unsafe fn hypercall(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    let ret: isize;
    let page = page_addr();
    // A stub lies inside the page: 4096 / 32 hypercalls at most.
    if page == 0 || nr >= 4096 / 32 {
        return -ENOSYS;
    }
    let stub = page + (nr as u64) * 32;
    // SAFETY: the stub is Xen's; it clobbers rcx/r11 (syscall) and may
    // clobber the argument registers, all of which are declared.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            lateout("rax") ret,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}

/// `HYPERVISOR_sched_op`.
///
/// # Safety
/// `arg` must point at the structure the sub-op expects (or be 0).
pub unsafe fn sched_op(cmd: usize, arg: usize) -> isize {
    // SAFETY: forwarded.
    unsafe { hypercall(super::abi::HYPERVISOR_SCHED_OP, cmd, arg, 0, 0, 0) }
}

/// `HYPERVISOR_event_channel_op`.
///
/// # Safety
/// `arg` must point at the structure the sub-op expects.
pub unsafe fn event_channel_op(cmd: usize, arg: usize) -> isize {
    // SAFETY: forwarded.
    unsafe { hypercall(super::abi::HYPERVISOR_EVENT_CHANNEL_OP, cmd, arg, 0, 0, 0) }
}

/// Writes to Xen's own console (the emergency console). Release builds
/// of Xen drop writes from unprivileged guests; it still helps in dom0,
/// in debug builds and with `guest_loglvl=all`.
pub fn console_io_write(bytes: &[u8]) {
    for chunk in bytes.chunks(1024) {
        // SAFETY: Xen reads `len` bytes from a valid buffer.
        unsafe {
            hypercall(
                super::abi::HYPERVISOR_CONSOLE_IO,
                super::abi::CONSOLEIO_WRITE,
                chunk.len(),
                chunk.as_ptr() as usize,
                0,
                0,
            )
        };
    }
}

/// Yields the vCPU (lets the backends in dom0 run).
pub fn yield_cpu() {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { sched_op(super::abi::SCHEDOP_YIELD, 0) };
}

/// Asks Xen to stop this domain with `reason` (SHUTDOWN_*). Returns only
/// if Xen refuses.
pub fn shutdown(reason: u32) {
    let arg = reason;
    // SAFETY: `struct sched_shutdown { unsigned int reason; }`.
    unsafe { sched_op(super::abi::SCHEDOP_SHUTDOWN, &arg as *const u32 as usize) };
}

/// `HYPERVISOR_set_timer_op`: one-shot timer event (VIRQ_TIMER) at Xen
/// system time `deadline_ns`; 0 cancels.
pub fn set_timer(deadline_ns: u64) {
    // SAFETY: takes a value, no memory.
    unsafe { hypercall(super::abi::HYPERVISOR_SET_TIMER_OP, deadline_ns as usize, 0, 0, 0, 0) };
}
