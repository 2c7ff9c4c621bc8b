//! x86_64 CPU support. Everything here is a thin, safe-as-possible wrapper
//! around one CPU mechanism; policy (what to map, when to arm a timer) lives
//! in the platform and kernel crates.
#![warn(missing_docs)]
#![cfg_attr(not(test), no_std)]

pub mod apic;
pub mod backtrace;
pub mod context;
pub mod cpu;
pub mod fault;
pub mod gdt;
pub mod hypervisor;
pub mod idt;
pub mod io;
pub mod ioapic;
pub mod paging;
pub mod tsc;
pub mod user;
