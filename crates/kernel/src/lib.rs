//! The unikit kernel core. It knows no hardware: a platform crate (x86-vm,
//! linuxu, solo5) boots the machine, builds one `hal::BootInfo` and one
//! `hal::Hal` and hands both to [`boot::enter`]. Everything above (the
//! `unikit` app API) calls in here.
//!
//! `unsafe` is denied except in `mem` (it hands out raw memory), in `sched`
//! (it switches stacks), in `user` (checked copies to and from a user
//! program's memory) and where `boot` calls the app's entry symbol; each
//! block says why it is sound.
//!
//! Modules depend one way (no import circle): `boot` on `sched`, `exit`,
//! `mem`, `cmdline`; `crash` (panic and exception reports) on `sched` and
//! `exit`; `sched` on `exit` and `mem`; `exit` only on the console, the
//! platform binding and `bootstats`.
#![warn(missing_docs)]
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod boot;
mod bootstats;
pub mod cmdline;
pub mod console;
pub mod crash;
pub mod dev;
pub mod event;
pub mod exit;
pub mod mem;
pub mod platform;
pub mod sched;
pub mod sync;
pub mod time;
#[cfg(feature = "user")]
pub mod user;

pub use platform::hal;
