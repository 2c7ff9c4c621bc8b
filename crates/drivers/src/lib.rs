//! Device drivers. Each family is a module (later behind a cargo feature so
//! a specialised image carries only what its platform needs).
#![cfg_attr(not(test), no_std)]

pub mod irq;
pub mod pc;
