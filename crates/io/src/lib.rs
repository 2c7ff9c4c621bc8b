//! The audited I/O layer between the drivers and the hardware.
//!
//! Drivers are `#![deny(unsafe_code)]`; everything they do to a device goes
//! through the handles here, each of which is created once (unsafely, by
//! whoever knows the address is a device's: a bus probe or the platform)
//! and is safe to use afterwards because every access is bounds- and
//! alignment-checked against the window the handle owns:
//!
//! - [`IoMem`]: an MMIO window; typed volatile [`IoMem::read`]/[`IoMem::write`].
//! - [`Port`]/[`PortRange`]: x86 port I/O of one typed register or a block.
//! - [`DmaRegion`]: memory shared with a device or a hypervisor (owned and
//!   zeroed heap memory, or a page the platform maps, such as a Xen ring),
//!   with its device address, checked typed accessors and atomics.
//! - [`Pod`]: the plain-data types those accessors move (any bit pattern is a
//!   valid value, so whatever a hostile device writes can be read safely).
//!
//! Where device addresses come from: [`set_dma_translate`] (see there).
//! On the host the same types run over heap memory, so ring logic built on
//! them is unit- and property-tested without a device.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod dma;
mod mmio;
pub mod pc;
mod pod;
mod port;

pub use dma::{DmaRegion, dma_addr_of, set_dma_translate};
pub use mmio::IoMem;
pub use pod::Pod;
pub use port::{Port, PortRange, PortValue};

/// Why a device became unusable: set once (the first reason wins), then
/// every later operation fails with it. One type for the "broken device"
/// flag of the virtio queues and devices and the Xen rings and store.
/// Shared (`&self`), so an interrupt path and a request path can both set it.
#[derive(Debug, Default)]
pub struct Broken(spin::Once<&'static str>);

impl Broken {
    /// Not broken.
    pub const fn new() -> Self {
        Self(spin::Once::new())
    }
    /// Marks it broken with `why` unless it already is; returns the reason
    /// in force and whether this call was the one that broke it.
    pub fn set_first(&self, why: &'static str) -> (&'static str, bool) {
        let mut first = false;
        let why = *self.0.call_once(|| {
            first = true;
            why
        });
        (why, first)
    }
    /// Marks it broken with `why` unless it already is; returns the reason
    /// in force.
    pub fn set(&self, why: &'static str) -> &'static str {
        self.set_first(why).0
    }
    /// The reason, if broken.
    pub fn get(&self) -> Option<&'static str> {
        self.0.get().copied()
    }
    /// Whether it is broken.
    pub fn is_broken(&self) -> bool {
        self.0.is_completed()
    }
    /// `Err(reason)` if broken, for `?` at the top of every operation.
    pub fn check(&self) -> Result<(), &'static str> {
        match self.get() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Broken;

    #[test]
    fn first_reason_wins() {
        let b = Broken::new();
        assert_eq!(b.check(), Ok(()));
        assert_eq!(b.set_first("a"), ("a", true));
        assert_eq!(b.set_first("b"), ("a", false));
        assert_eq!(b.get(), Some("a"));
        assert!(b.is_broken());
        assert_eq!(b.check(), Err("a"));
    }
}
