//! unikit's BIOS boot path (no GRUB): an MBR boot sector (`stage1.S`) that
//! reads stage 2 (`stage2.S`) from the BIOS boot partition, and stage 2,
//! which loads a PVH ELF kernel, its command line and initrd as the host
//! tool's load table says (crates/cli/src/image/bios.rs writes it) and
//! enters the kernel's PVH entry in 32-bit protected mode.
//!
//! All of it is 16-bit assembly; there is no Rust code to run.
#![no_std]
#![no_main]

core::arch::global_asm!(include_str!("stage1.S"), options(att_syntax, raw));
core::arch::global_asm!(include_str!("stage2.S"), options(att_syntax, raw));

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
