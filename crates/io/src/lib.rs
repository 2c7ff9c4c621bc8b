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
mod pod;
mod port;

pub use dma::{DmaRegion, dma_addr_of, set_dma_translate};
pub use mmio::IoMem;
pub use pod::Pod;
pub use port::{Port, PortRange, PortValue};

/// Why a device became unusable: set once (the first reason wins), then
/// every later operation fails with it. One type for the "broken device"
/// flag of the virtio queues and the Xen rings and store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Broken(Option<&'static str>);

impl Broken {
    /// Not broken.
    pub const fn new() -> Self {
        Self(None)
    }
    /// Marks it broken with `why` unless it already is; returns the reason
    /// in force.
    pub fn set(&mut self, why: &'static str) -> &'static str {
        *self.0.get_or_insert(why)
    }
    /// The reason, if broken.
    pub fn get(&self) -> Option<&'static str> {
        self.0
    }
    /// Whether it is broken.
    pub fn is_broken(&self) -> bool {
        self.0.is_some()
    }
    /// `Err(reason)` if broken, for `?` at the top of every operation.
    pub fn check(&self) -> Result<(), &'static str> {
        match self.0 {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}
