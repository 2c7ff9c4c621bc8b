//! What every entry shares, owned here once: the boot stack (with a guard
//! page below it) and the TSC at the first instruction (boot time zero).
//! Each entry stub writes `unikit_boot_tsc` first and switches to
//! `unikit_boot_stack_top`; these symbols are this crate's own.
use core::arch::global_asm;

global_asm!(
    r#"
    .section .bss.boot_stack, "aw", @nobits
    .p2align 12
unikit_boot_stack_guard:
    .skip 4096
    .global unikit_boot_stack_bottom
unikit_boot_stack_bottom:
    .skip 64 * 1024
    .global unikit_boot_stack_top
unikit_boot_stack_top:

    .section .data.boot, "aw"
    .p2align 3
    .global unikit_boot_tsc
unikit_boot_tsc: .quad 0
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static unikit_boot_tsc: u64;
    static unikit_boot_stack_bottom: u8;
    static unikit_boot_stack_top: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The TSC at the entry's first instruction.
pub fn boot_tsc() -> u64 {
    // SAFETY: written once by the entry stub before any Rust code runs.
    unsafe { core::ptr::read_volatile(&raw const unikit_boot_tsc) }
}

/// The boot stack `[bottom, top)` (its guard page is the page below).
pub fn boot_stack() -> (u64, u64) {
    (&raw const unikit_boot_stack_bottom as u64, &raw const unikit_boot_stack_top as u64)
}

/// The loaded image `[start, end)` (linker script symbols).
pub fn kernel_image() -> (u64, u64) {
    (&raw const __kernel_start as u64, &raw const __kernel_end as u64)
}
