//! unikit as one x86_64 virtual-machine image. The ELF carries its entries
//! side by side ([`entry`]): the PVH note (QEMU `-kernel` on q35 or
//! microvm, KVM or TCG, Firecracker >= 1.12, cloud-hypervisor, Xen PVH) and
//! the Xen PV notes. Beneath them sit the hypervisor backends: [`pc`] (PC
//! devices: 16550, TSC + local APIC, I/O APIC, virtio over PCI or MMIO)
//! and [`xen`] (hypercall page, event channels, pvclock, console ring,
//! xenstore devices). [`boot`] owns the boot stack and the boot TSC.
//!
//! Boot: entry stub -> `entry::pvh::pvh_main` or `entry::xen_pv::xen_pv_main`
//! -> one `hal::BootInfo` -> `unikit_kernel::boot::enter`.
#![warn(missing_docs)]
#![cfg_attr(not(test), no_std)]
// The parsers are host-tested; without `virtio` nothing in the guest uses
// them (nor the interrupt routing only virtio devices ask for).
#![cfg_attr(
    any(not(target_os = "none"), not(any(feature = "virtio", feature = "vmxnet3", feature = "e1000"))),
    allow(dead_code)
)]

extern crate alloc;

// Host unit tests (`cargo test -p unikit-plat-x86-vm`) cover the parsers
// only: the rest defines entry points, needs the guest's linker script and
// drivers that exist only for the guest target.
mod acpi;
#[cfg(all(not(test), target_os = "none"))]
mod boot;
#[cfg(all(not(test), target_os = "none"))]
mod entry;
mod hyperv;
#[cfg(all(not(test), target_os = "none"))]
mod pc;
mod rpci;
#[cfg(all(not(test), target_os = "none"))]
mod start_info;
mod virtio_mmio;
#[cfg(all(not(test), target_os = "none", feature = "xen"))]
mod xen;

#[cfg(all(not(test), target_os = "none"))]
use arch::paging::FrameSource;

/// Page-table frames come from the kernel's frame allocator.
#[cfg(all(not(test), target_os = "none"))]
pub(crate) struct KernelFrames;

#[cfg(all(not(test), target_os = "none"))]
impl FrameSource for KernelFrames {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        unikit_kernel::mem::alloc_zeroed_frame()
    }
}

/// The kernel's device discovery hook, run on first use: virtio on PCI (q35) and the
/// virtio-mmio devices named on the command line (microvm, Firecracker);
/// on Xen, netfront and blkfront from xenstore.
#[cfg(all(not(test), target_os = "none"))]
#[unsafe(no_mangle)]
pub fn __unikit_probe_devices() {
    #[cfg(feature = "hyperv")]
    hyperv::probe();
    #[cfg(feature = "xen")]
    if xen::active() || xen::hvm::active() {
        return xen::probe_devices();
    }
    #[cfg(any(feature = "virtio", feature = "vmxnet3", feature = "e1000"))]
    probe_pc();
}

/// PCI (q35: virtio, vmxnet3, e1000 as compiled in), or the virtio-mmio
/// devices named on the command line (microvm, Firecracker).
#[cfg(all(not(test), target_os = "none", any(feature = "virtio", feature = "vmxnet3", feature = "e1000")))]
fn probe_pc() {
    let irq: &'static dyn drivers::irq::InterruptController = &pc::irq::CONTROLLER;
    let mmio = virtio_mmio::devices(&unikit_kernel::boot::command_line().options);
    if mmio.is_empty() {
        drivers::pci::probe::probe_all(Some(irq));
    }
    #[cfg(feature = "virtio")]
    for d in mmio {
        if let Err(e) = drivers::virtio::probe_mmio(d.base, d.size, d.irq, Some(irq)) {
            unikit_kernel::kprintln!("unikit: virtio-mmio device at {:#x}: {e}", d.base);
        }
    }
}
