//! Device drivers. Each family is a module (later behind a cargo feature so
//! a specialised image carries only what its platform needs).
//!
//! - [`pc`]: legacy PC devices (16550, PIT, PIC, RTC).
//! - [`pci`]: PCI configuration space, enumeration, BARs, capabilities, MSI-X.
//! - [`virtio`]: virtio transports (PCI modern and legacy, MMIO) and the
//!   net and block drivers; entry points `virtio::probe_pci`/`probe_mmio`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod irq;
pub mod pc;
pub mod pci;
mod port;
pub mod virtio;
pub mod xen;

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
#[allow(unused_imports)]
pub(crate) use dlog;
