//! unikit as a Xen guest.
//!
//! - **PV** (x86_64 PV ABI): Xen loads the image's ELF and jumps to
//!   `xen_pv_start` in 64-bit mode, ring 3, on its own page tables, with
//!   `rsi` = `start_info` ([`pv`]). No IDT, no privileged instructions: the
//!   trap table and event callback ([`traps`]), page-table hypercalls
//!   ([`mmu`]) and the event mask stand in for them.
//! - Time is Xen's pvclock plus `set_timer_op` ([`time`]); the console is
//!   the Xen console ring; devices are found on xenstore (netfront,
//!   blkfront in `drivers::xen`).
//!
//! The entry and the Xen ELF notes are part of the one x86_64 VM image
//! (crates/plat/kvm), which also boots through PVH on QEMU and Firecracker.
#![no_std]

mod devices;
pub mod hvm;
pub mod mmu;
mod pv;
pub mod time;
mod traps;

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use drivers::xen::{abi, console, evtchn, hypercall};
use hal::Hal;
use spin::Once;

/// The Xen PV guest's hardware services.
pub struct Xen;

static XEN: Xen = Xen;
static ACTIVE: AtomicBool = AtomicBool::new(false);
static MMU: Once<mmu::Mmu> = Once::new();

pub(crate) static HAL: Hal =
    Hal { platform: &XEN, console: &XEN, clock: &XEN, irq: &XEN, shutdown: &XEN, memory: &XEN, cpu: &arch::fault::CPU };

/// Whether this boot came in through the Xen PV entry.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

unsafe extern "C" {
    static unikit_boot_tsc: u64;
}

fn boot_tsc() -> u64 {
    // SAFETY: written once by the entry stub before any Rust code runs.
    unsafe { core::ptr::read_volatile(&raw const unikit_boot_tsc) }
}

impl hal::Platform for Xen {
    fn name(&self) -> &'static str {
        "xen"
    }

    fn bring_up(&self, _: &hal::BootInfo) {
        pv::bring_up()
    }

    fn describe(&self, out: &mut dyn Write) -> core::fmt::Result {
        let hz = (1_000_000_000u128 * 1_000_000 / time::ticks_to_ns(1_000_000).max(1) as u128) as u64;
        write!(out, ", PV, pvclock (TSC {}.{:02} GHz), event channels", hz / 1_000_000_000, hz / 10_000_000 % 100)
    }
}

impl hal::Console for Xen {
    fn write(&self, bytes: &[u8]) {
        if !console::write(bytes) {
            hypercall::console_io_write(bytes);
        }
    }
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
fn shutdown(code: i32) -> ! {
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

fn shared_info_page() -> u64 {
    // Only the address is taken; the page is never used as memory.
    &raw mut SHARED_INFO_PAGE as u64
}

pub use devices::probe as probe_devices;

/// The frame number Xen knows a page by: PV uses machine frames.
fn frame_of_pv(va: u64) -> Option<u64> {
    MMU.get()?.mfn(va / mmu::PAGE)
}
