//! The pure parts of unikit's UEFI loader (the binary is `src/main.rs`):
//! the kernel ELF checks and the E820 table. No firmware calls here, so
//! they are unit-tested on the host:
//! `cargo test -p unikit-boot-uefi --lib`.
#![no_std]

pub mod e820;
pub mod kernel;
