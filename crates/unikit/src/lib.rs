//! The unikit application API: what `std` would give a program, for a
//! unikernel. Apps are `#![no_std]` + `#![no_main]` crates with a
//! `#[unikit::main] fn main()`; no `unsafe` is needed.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use unikit::prelude::*;
//!
//! #[unikit::main]
//! fn main() {
//!     println!("Hello from unikit on {}!", unikit::platform());
//! }
//! ```
#![warn(missing_docs)]
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

// Link the platform chosen by `unikit build` (its entry point and drivers).
#[cfg(feature = "plat-linuxu")]
extern crate unikit_plat_linuxu;
#[cfg(feature = "plat-solo5")]
extern crate unikit_plat_solo5;
#[cfg(feature = "plat-kvm")]
extern crate unikit_plat_x86_vm;

pub use unikit_macros::main;

pub mod env;
pub mod fs;
pub mod io;
pub mod net;
pub mod process;
pub mod sync;
pub mod thread;
pub mod time;

#[doc(hidden)]
pub mod rt;

pub use alloc::{borrow, boxed, collections, fmt, format, rc, string, vec};

/// Name of the platform the app runs on ("kvm", "linuxu", ...).
pub fn platform() -> &'static str {
    unikit_kernel::hal().platform.name()
}

/// Everything an app usually wants in scope.
pub mod prelude {
    pub use crate::{eprint, eprintln, print, println};
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// Prints to the console, like std's `print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console, like std's `println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::io::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The console has one stream; `eprint!` writes to it like `print!` (on
/// linuxu it goes to stderr).
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::_eprint(format_args!($($arg)*)) };
}

/// Prints a line to the error console, like std's `eprintln!`.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::eprint!("\n") };
    ($($arg:tt)*) => { $crate::io::_eprint(format_args!("{}\n", format_args!($($arg)*))) };
}
