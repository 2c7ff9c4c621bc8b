//! Device drivers. Each family is a module (later behind a cargo feature so
//! a specialised image carries only what its platform needs).
//!
//! - [`pc`]: legacy PC devices (16550, PIT, PIC, RTC).
//! - [`pci`]: PCI configuration space, enumeration, BARs, capabilities,
//!   MSI-X; `pci::probe::probe_all` (guest) enumerates once and hands each
//!   function to the family that drives it (cargo features `virtio`,
//!   `vmxnet3`, `e1000`, `pvscsi`, `tulip`, `ata`).
//! - [`ata`]: ATA disks on a PCI IDE controller (Hyper-V Gen1, QEMU pc).
//! - [`tulip`]: DEC 21140/21143 Ethernet (Hyper-V Gen1's legacy NIC).
//! - [`virtio`]: virtio transports (PCI modern and legacy, MMIO) and the
//!   net and block drivers; `virtio::probe_mmio` for virtio-mmio.
//! - [`vmxnet3`]: VMware's paravirtual NIC.
//! - [`e1000`]: Intel 8254x/82574 NICs (QEMU's and VMware's e1000/e1000e).
//! - [`pvscsi`]: VMware's paravirtual SCSI adapter, over the small SCSI
//!   disk layer in [`scsi`].
//! - [`vmbus`] (feature `hyperv`): Hyper-V's VMBus, its integration
//!   services, storvsc and netvsc, host-tested against a simulated host.
#![cfg_attr(not(test), no_std)]
// Crate-wide `deny(unsafe_code)` lands once every module is converted; until
// then each converted module denies it itself (see crates/io).

extern crate alloc;

pub mod ata;
pub mod e1000;
pub mod irq;
/// The audited I/O layer, re-exported so platforms can hand drivers
/// [`io::DmaRegion`]s and [`io::IoMem`]s without another dependency.
pub use unikit_io as io;
pub mod pc;
pub mod pci;
pub mod pvscsi;
pub mod scsi;
pub mod tulip;
pub mod virtio;
#[cfg(feature = "hyperv")]
pub mod vmbus;
pub mod vmxnet3;
pub mod xen;

/// A MAC address as `aa:bb:cc:dd:ee:ff`, for the drivers' device lines.
#[cfg(target_os = "none")]
pub(crate) struct Mac(pub [u8; 6]);

#[cfg(target_os = "none")]
impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Driver log line (guest only, silenced by `unikit.quiet`; nothing on the host).
#[allow(unused_macros)]
macro_rules! dlog {
    ($($arg:tt)*) => {{
        #[cfg(target_os = "none")]
        {
            if !unikit_kernel::boot::is_quiet() {
                unikit_kernel::console::_print(format_args!("{}\n", format_args!($($arg)*)));
            }
        }
        #[cfg(not(target_os = "none"))]
        {
            let _ = format_args!($($arg)*);
        }
    }};
}

/// A device that did not come up: said even under `unikit.quiet`, since
/// the app will not find it (guest only; nothing on the host).
#[allow(unused_macros)]
macro_rules! dwarn {
    ($($arg:tt)*) => {{
        #[cfg(target_os = "none")]
        {
            unikit_kernel::console::_print(format_args!("unikit: {}\n", format_args!($($arg)*)));
        }
        #[cfg(not(target_os = "none"))]
        {
            let _ = format_args!($($arg)*);
        }
    }};
}

#[allow(unused_imports)]
pub(crate) use {dlog, dwarn};
