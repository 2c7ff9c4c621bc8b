//! Xen PV traps and events. There is no IDT: Xen's trap table points at
//! small stubs here. Xen enters them in ring 3 with `rcx` and `r11` pushed
//! on top of the usual hardware frame; each stub restores the two and
//! jumps into the arch layer's stub for its vector, so exceptions end in
//! the same `TrapFrame` and report as on every other platform. The event
//! upcall enters the same way, as vector [`EVENT_VECTOR`].
use arch::idt::TrapFrame;
use core::arch::global_asm;
use drivers::xen::abi::{self, TrapInfo};
use drivers::xen::{evtchn, hypercall::hypercall};

/// The pseudo-vector the event upcall is dispatched as.
pub const EVENT_VECTOR: u8 = 0x30;
const FIRST_EXCEPTIONS: usize = 20;
const RFLAGS_IF: u64 = 1 << 9;

global_asm!(
    ".section .text.xen_pv_traps, \"ax\"",
    ".balign 32",
    ".global xen_pv_trap_stubs",
    "xen_pv_trap_stubs:",
    ".set vec, 0",
    ".rept {n}",
    ".balign 32",
    "mov rcx, [rsp]",
    "mov r11, [rsp + 8]",
    "lea rsp, [rsp + 16]",
    "jmp unikit_isr_stubs + 16 * vec",
    ".set vec, vec + 1",
    ".endr",
    ".global xen_pv_event_stub",
    "xen_pv_event_stub:",
    "mov rcx, [rsp]",
    "mov r11, [rsp + 8]",
    "lea rsp, [rsp + 16]",
    "jmp unikit_isr_stubs + 16 * {event}",
    // Xen could not load a segment register for us: nothing sensible to
    // return to. Report it and stop.
    ".global xen_pv_failsafe_stub",
    "xen_pv_failsafe_stub:",
    "and rsp, -16",
    "call {failsafe}",
    "ud2",
    ".text",
    n = const FIRST_EXCEPTIONS,
    event = const EVENT_VECTOR,
    failsafe = sym failsafe,
);

unsafe extern "C" {
    static xen_pv_trap_stubs: u8;
    static xen_pv_event_stub: u8;
    static xen_pv_failsafe_stub: u8;
}

extern "C" fn failsafe() -> ! {
    unikit_kernel::kprintln!("\n[unikit] Xen failsafe callback: bad segment state on return to the guest");
    super::shutdown(unikit_kernel::exit::EXIT_EXCEPTION)
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in the boot error
pub struct Error(pub &'static str, pub isize);

/// Registers the trap table and the event and failsafe callbacks.
pub fn init() -> Result<(), Error> {
    arch::idt::set_handler(trap);
    let mut table = [TrapInfo { vector: 0, flags: 0, cs: 0, pad: 0, address: 0 }; FIRST_EXCEPTIONS + 1];
    let base = &raw const xen_pv_trap_stubs as u64;
    for (v, t) in table.iter_mut().take(FIRST_EXCEPTIONS).enumerate() {
        // int3 and into may be raised from anywhere (DPL 3); nothing masks
        // events on entry, so a fault report can still print.
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        *t = TrapInfo { vector: v as u8, flags: dpl, cs: abi::FLAT_KERNEL_CS, pad: 0, address: base + 32 * v as u64 };
    }
    // The last entry stays zero: it ends the table.
    // SAFETY: a zero-terminated table, copied by Xen.
    let rc = unsafe { hypercall(abi::HYPERVISOR_SET_TRAP_TABLE, table.as_ptr() as usize, 0, 0, 0, 0) };
    if rc < 0 {
        return Err(Error("set_trap_table", rc));
    }
    let (event, failsafe) = (&raw const xen_pv_event_stub as usize, &raw const xen_pv_failsafe_stub as usize);
    // SAFETY: x86_64 set_callbacks(event, failsafe, syscall).
    let rc = unsafe { hypercall(abi::HYPERVISOR_SET_CALLBACKS, event, failsafe, 0, 0, 0) };
    if rc < 0 {
        return Err(Error("set_callbacks", rc));
    }
    Ok(())
}

fn trap(frame: &mut TrapFrame) {
    // Xen hides the ring-3 kernel by saving CS and SS with RPL 0; `iretq`
    // needs the real RPL (3) to return to the same ring.
    frame.cs |= 3;
    frame.ss |= 3;
    if frame.vector == EVENT_VECTOR as u64 {
        return upcall(frame);
    }
    // CR2 is privileged; Xen copies it into vcpu_info for PV guests.
    let fault_addr = (frame.vector == arch::idt::PAGE_FAULT)
        // SAFETY: a field of the mapped shared page.
        .then(|| evtchn::vcpu().map_or(0, |v| unsafe { core::ptr::read_volatile(&raw const (*v).cr2) }));
    unikit_kernel::crash::exception(&arch::fault::decode(frame.regs(), fault_addr))
}

/// Xen masked events to deliver this upcall; the interrupted context had
/// them enabled iff IF is set in the saved flags. Before returning, events
/// are unmasked again in that case, and anything that arrived meanwhile is
/// handled here rather than by a nested upcall.
fn upcall(frame: &mut TrapFrame) {
    evtchn::dispatch();
    if frame.rflags & RFLAGS_IF == 0 {
        return;
    }
    let Some(v) = evtchn::vcpu() else { return };
    // SAFETY: bytes of the mapped shared page.
    unsafe {
        loop {
            core::ptr::write_volatile(&raw mut (*v).evtchn_upcall_mask, 0);
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            if core::ptr::read_volatile(&raw const (*v).evtchn_upcall_pending) == 0 {
                break;
            }
            core::ptr::write_volatile(&raw mut (*v).evtchn_upcall_mask, 1);
            evtchn::dispatch();
        }
    }
}
