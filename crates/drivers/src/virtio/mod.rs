//! virtio drivers: transports (PCI modern and legacy, MMIO v2 and v1),
//! split virtqueues, virtio-net and virtio-blk.
//!
//! # Entry points (called by the platform; signatures are stable)
//!
//! - PCI: `crate::pci::probe::probe_all` enumerates PCI once and hands each
//!   virtio function to `probe::probe_pci_function`, which brings up every
//!   virtio-net and virtio-blk function (transitional ids 0x1000/0x1001 and modern
//!   0x1041/0x1042; the modern interface is preferred, legacy I/O BAR 0 is
//!   the fallback), registers them with `unikit_kernel::dev` and returns how
//!   many it registered. BARs the firmware left unassigned (qboot assigns
//!   none) are assigned from [`PCI_MEM_WINDOW`] / [`PCI_IO_WINDOW`].
//!   Memory BAR regions are made accessible with
//!   `Platform::map_device` (uncached); if that returns false they must
//!   already be identity mapped, or the device is skipped.
//! - [`probe_mmio`]`(base, size, gsi, irq) -> Result<(), ProbeError>`: one
//!   virtio-mmio device (from `virtio_mmio.device=<size>@<base>:<gsi>`).
//!   The region is mapped like a BAR (map_device, else it must be identity
//!   mapped already).
//!
//! With an interrupt controller, PCI devices use MSI-X (one vector for all
//! queues) and MMIO devices an edge-triggered GSI; `has_interrupts()` tells
//! the stack whether the device's `Event` is signalled or must be polled.
//! Devices are named `virtio-net0`, `virtio-net1`, ..., `virtio-blk0`, ...
//!
//! DMA: RAM is identity mapped on the kvm platform, so driver memory is
//! handed to devices by address; [`dma::dma_addr`] is the one place that
//! assumes it.
//!
//! Nothing a device reports is trusted: ring indexes, ids and lengths are
//! checked (see [`queue`]), configuration reads are bounded, capability
//! regions are checked against their BARs. A violation marks the device
//! broken (`DevError::Broken`), resets it, and it is not used again.
pub mod dma;
pub mod mmio;
pub mod pci;
pub mod queue;
pub mod transport;

#[cfg(target_os = "none")]
mod blk;
#[cfg(target_os = "none")]
mod common;
#[cfg(target_os = "none")]
mod net;
#[cfg(target_os = "none")]
pub(crate) mod probe;

#[cfg(target_os = "none")]
pub use blk::VirtioBlk;
#[cfg(target_os = "none")]
pub use net::VirtioNet;
#[cfg(target_os = "none")]
pub use probe::probe_mmio;

/// virtio device types this crate drives.
pub const TYPE_NET: u32 = 1;
pub const TYPE_BLOCK: u32 = 2;

pub use crate::pci::{PCI_IO_WINDOW, PCI_MEM_WINDOW};

/// Why [`probe_mmio`] did not register a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// No virtio-mmio magic at that address (or region too small).
    NotVirtio,
    /// A transport slot with no device behind it (device id 0).
    NoDevice,
    /// A device type this crate does not drive.
    Unsupported(u32),
    /// The region could not be mapped.
    NotMapped,
    /// The device failed to come up.
    Failed(&'static str),
}

impl core::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProbeError::NotVirtio => f.write_str("not a virtio-mmio device"),
            ProbeError::NoDevice => f.write_str("empty virtio-mmio slot"),
            ProbeError::Unsupported(t) => write!(f, "unsupported virtio device type {t}"),
            ProbeError::NotMapped => f.write_str("device registers cannot be mapped"),
            ProbeError::Failed(why) => write!(f, "device failed: {why}"),
        }
    }
}
