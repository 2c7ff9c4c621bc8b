//! `unikit-hvt`: a Solo5 hvt tender on the rust-vmm crates.
//!
//! A drop-in for Solo5's `solo5-hvt` (same command line, same ABI: hvt ABI
//! version 2, manifest version 1): it loads a Solo5 hvt unikernel — unikit's
//! or any other — into a KVM virtual machine, attaches the devices its
//! manifest declares, serves its hypercalls and exits with its status.
//! See README of the crate (module docs below) for the layout:
//!
//! - [`abi`]: the ABI constants and structure layouts (from Solo5's headers);
//! - [`elf`], [`mft`]: bounds-checked ELF, note and manifest parsing;
//! - [`args`]: the command line;
//! - [`mem`]: guest memory with checked ranges;
//! - [`x86`]: page tables, GDT and registers of the boot CPU;
//! - [`devices`]: taps and block files;
//! - [`hypercall`]: the hypercalls, with every guest pointer checked;
//! - [`seccomp`]: the allow-list installed before the guest runs;
//! - [`run`]: the whole flow and the vCPU loop;
//! - [`testguest`]: hand-assembled guests for tests.

pub mod abi;
pub mod args;
pub mod devices;
pub mod elf;
pub mod hypercall;
pub mod mem;
pub mod mft;
pub mod run;
pub mod seccomp;
pub mod testguest;
pub mod x86;
