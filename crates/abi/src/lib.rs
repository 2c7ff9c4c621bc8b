//! `unikit-abi`: the binary interfaces that more than one part of unikit
//! speaks, written once.
//!
//! - [`hvt`]: the Solo5 hvt guest ABI (hypercalls, boot info, notes), used
//!   by the Solo5 guest platform and by the `unikit-hvt` tender;
//! - [`mft`]: the Solo5 application manifest (layout, validation, the note
//!   the guest carries and the copy the tender hands back);
//! - [`pvh`]: the PVH `hvm_start_info` structures, read by the PVH entry;
//! - [`pvclock`]: the Xen/KVM pvclock scaling from TSC to system time;
//! - [`exit`]: the console exit marker the guest prints and the CLI strips;
//! - [`elf`]: one bounds-checked ELF64 (x86_64, little-endian) reader, for
//!   the tender's loader, the CLI's strip/symbolizer/image checks and the
//!   coming Linux ELF loader.
//!
//! `no_std`, no allocation and no `unsafe`: every structure is read from a
//! byte slice field by field with checked offsets, so a hostile image,
//! manifest or console stream yields an error value, never a panic.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod elf;
pub mod exit;
pub mod hvt;
pub mod mft;
pub mod pvclock;
pub mod pvh;

mod bytes;
