//! The solo5 platform: unikit as a Solo5 hvt unikernel, run by a tender
//! (upstream `solo5-hvt`, or unikit's own `unikit-hvt`) that owns the KVM
//! virtual machine and serves a handful of hypercalls. ABI facts come from
//! Solo5 0.12's headers (see `hvt`).
//!
//! How the kernel's services map to hvt:
//! - console: the `puts` hypercall;
//! - monotonic clock: the TSC, zero at the entry stub's first instruction,
//!   scaled by `cpu_cycle_freq` from the boot info (the tender asks KVM);
//! - wall clock: the `walltime` hypercall;
//! - idle wait: the `poll` hypercall with the time to the next deadline; it
//!   returns early when a network device is readable, and its ready set
//!   signals the devices' events (there are no interrupts on hvt);
//! - exit: the `halt` hypercall with the exit code, which the tender exits
//!   with (so no console exit marker is needed);
//! - memory: from the end of the image to `mem_size` (boot info), with the
//!   kernel's own page tables (guard pages, W^X, the tender's low memory
//!   unmapped once read);
//! - devices: the manifest entries the tender attached (net, block).
#![warn(missing_docs)]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

// Host unit tests (`cargo test -p unikit-plat-solo5`) cover the manifest
// code only: the rest defines `_start` and needs the guest's linker script.
#[cfg(not(test))]
mod devices;
#[cfg(not(test))]
mod entry;
#[cfg(not(test))]
mod hvt;
mod mft;
#[cfg(not(test))]
mod platform;

#[cfg(not(test))]
pub use platform::solo5_main;
