//! The Xen backend of the image, for both entries.
//!
//! - **PV** (`crate::entry::xen_pv`): no IDT, no privileged instructions:
//!   the trap table and event callback ([`traps`]), page-table hypercalls
//!   ([`mmu`]) and the event mask stand in for them; [`Xen`] is the PV
//!   guest's `Hal`.
//! - **PVH** ([`hvm`]): the PVH entry and the PC backend's paging, with
//!   Xen's console, time, idle and shutdown switched in at bring-up.
//! - Both: time is Xen's pvclock plus `set_timer_op` ([`time`]); the console
//!   is the Xen console ring; devices are found on xenstore (netfront,
//!   blkfront in `drivers::xen`); hypercalls go through the page Xen fills
//!   ([`hypercall_page`]).
pub(crate) mod devices;
pub mod hvm;
pub mod hypercall_page;
pub mod mmu;
pub mod time;
pub(crate) mod traps;

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use drivers::xen::{abi, console, evtchn, hypercall};
use hal::Hal;
use spin::Once;

/// The Xen PV guest's hardware services.
pub struct Xen;

pub(crate) static XEN: Xen = Xen;
pub(crate) static ACTIVE: AtomicBool = AtomicBool::new(false);
pub(crate) static MMU: Once<mmu::Mmu> = Once::new();

pub(crate) static HAL: Hal = Hal {
    platform: &XEN,
    console: &XEN,
    clock: &XEN,
    irq: &XEN,
    shutdown: &XEN,
    memory: &XEN,
    cpu: &arch::fault::CPU,
    user: None,
};

/// Whether this boot came in through the Xen PV entry.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

impl hal::Platform for Xen {
    fn name(&self) -> &'static str {
        "xen"
    }

    fn bring_up(&self, _: &hal::BootInfo) {
        crate::entry::xen_pv::bring_up()
    }

    fn describe(&self, out: &mut dyn Write) -> core::fmt::Result {
        describe(out, "PV")
    }
}

impl hal::Console for Xen {
    fn write(&self, bytes: &[u8]) {
        console_write(bytes)
    }
}

/// The Xen console ring, or Xen's own (emergency) console until the ring
/// is set up.
pub fn console_write(bytes: &[u8]) {
    if !console::write(bytes) {
        hypercall::console_io_write(bytes);
    }
}

/// The boot log's clock and event facts on Xen (`mode`: "PV" or "PVH").
pub fn describe(out: &mut dyn Write, mode: &str) -> core::fmt::Result {
    let hz = (1_000_000_000u128 * 1_000_000 / time::ticks_to_ns(1_000_000).max(1) as u128) as u64;
    write!(out, ", {mode}, pvclock (TSC {}.{:02} GHz), event channels", hz / 1_000_000_000, hz / 10_000_000 % 100)
}

impl hal::Clock for Xen {
    fn monotonic_ns(&self) -> u64 {
        time::monotonic_ns()
    }

    fn raw_timestamp(&self) -> u64 {
        arch::cpu::rdtsc()
    }

    fn raw_to_ns(&self, raw: u64) -> u64 {
        time::ticks_to_ns(raw)
    }

    fn wall_clock_ns(&self) -> u64 {
        time::wall_clock_ns()
    }

    fn wait_for_event(&self, deadline_ns: Option<u64>) {
        time::wait_pv(deadline_ns)
    }
}

impl hal::IrqControl for Xen {
    fn save(&self) -> bool {
        evtchn::mask_upcalls()
    }

    fn restore(&self, was_enabled: bool) {
        evtchn::restore_upcalls(was_enabled)
    }
}

impl hal::Shutdown for Xen {
    fn shutdown(&self, code: i32) -> ! {
        shutdown(code)
    }
}

impl hal::Memory for Xen {
    fn set_guard_page(&self, addr: u64, guard: bool) -> bool {
        let Some(m) = MMU.get() else { return false };
        let _irq = unikit_kernel::platform::IrqGuard::new();
        m.set_present(addr, !guard).is_ok()
    }

    fn virt_to_phys(&self, vaddr: u64) -> Option<u64> {
        // Pseudo-physical addresses are the identity; machine frames are
        // what Xen devices need, and they come from `drivers::xen::frame_of`.
        MMU.get().filter(|m| m.is_mapped(vaddr)).map(|_| vaddr)
    }
}

/// Stops the domain. The exit marker already carries the code; the ring is
/// drained first so that xenconsoled still sees the last lines. Crashes
/// (panic, CPU exception, deadlock) stop as a crash, everything else as a
/// power-off.
pub(crate) fn shutdown(code: i32) -> ! {
    console::flush();
    let reason = match code {
        unikit_kernel::exit::EXIT_PANIC | unikit_kernel::exit::EXIT_EXCEPTION | unikit_kernel::exit::EXIT_DEADLOCK => {
            abi::SHUTDOWN_CRASH
        }
        _ => abi::SHUTDOWN_POWEROFF,
    };
    loop {
        hypercall::shutdown(reason);
        hypercall::yield_cpu();
    }
}

/// The page the shared info frame is mapped over (PV) or placed at (PVH).
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut SHARED_INFO_PAGE: Page = Page([0; 4096]);

pub(crate) fn shared_info_page() -> u64 {
    // Only the address is taken; the page is never used as memory.
    &raw mut SHARED_INFO_PAGE as u64
}

pub use devices::probe as probe_devices;

/// The frame number Xen knows a page by: PV uses machine frames.
pub(crate) fn frame_of_pv(va: u64) -> Option<u64> {
    MMU.get()?.mfn(va / mmu::PAGE)
}
