//! The image booted through PVH on Xen: memory and paging stay the kvm
//! platform's (PVH is hardware-virtualized), while console, time, idle,
//! shutdown and devices switch to Xen's interfaces (crates/plat/xen).
use crate::KVM;
use core::fmt::Write;
use unikit_kernel::platform::Platform;
use unikit_plat_xen::{hvm, time};

/// The IDT vector Xen delivers event upcalls on.
pub const XEN_VECTOR: u8 = 0xf3;

pub struct XenPvh;
pub static XEN_PVH: XenPvh = XenPvh;
pub static XEN_PVH_DYN: &dyn Platform = &XEN_PVH;

impl Platform for XenPvh {
    fn name(&self) -> &'static str {
        "xen"
    }

    fn console_write(&self, bytes: &[u8]) {
        hvm::console_write(bytes)
    }

    fn monotonic_ns(&self) -> u64 {
        time::monotonic_ns()
    }

    fn raw_timestamp(&self) -> u64 {
        KVM.raw_timestamp()
    }

    fn raw_to_ns(&self, raw: u64) -> u64 {
        time::ticks_to_ns(raw)
    }

    fn wall_clock_ns(&self) -> u64 {
        time::wall_clock_ns()
    }

    fn wait_for_event(&self, deadline_ns: Option<u64>) {
        hvm::wait(deadline_ns)
    }

    fn irq_save(&self) -> bool {
        arch::cpu::irq_save()
    }

    fn irq_restore(&self, was_enabled: bool) {
        arch::cpu::irq_restore(was_enabled)
    }

    fn shutdown(&self, code: i32) -> ! {
        hvm::shutdown(code)
    }

    fn set_guard_page(&self, addr: u64, guard: bool) -> bool {
        KVM.set_guard_page(addr, guard)
    }

    fn map_device(&self, phys: u64, len: u64) -> bool {
        KVM.map_device(phys, len)
    }

    fn virt_to_phys(&self, vaddr: u64) -> Option<u64> {
        KVM.virt_to_phys(vaddr)
    }

    fn describe(&self, out: &mut dyn Write) -> core::fmt::Result {
        let hz = (1_000_000_000u128 * 1_000_000 / time::ticks_to_ns(1_000_000).max(1) as u128) as u64;
        write!(out, ", PVH, pvclock (TSC {}.{:02} GHz), event channels", hz / 1_000_000_000, hz / 10_000_000 % 100)
    }
}
