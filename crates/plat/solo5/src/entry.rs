//! hvt entry. The tender (tenders/hvt/hvt_kvm_x86_64.c, hvt_vcpu_init)
//! starts the vCPU at the ELF entry in 64-bit long mode: paging on with an
//! identity map of guest memory (hvt_x86_setup_pagetables: nothing below
//! 0x10000, [0x10000, 0x100000) read-only, the rest writable), CS/DS/SS
//! from its GDT at 0x1000 (which the guest cannot read: that page is not
//! mapped), EFER = LME|LMA (no NXE), CR4 = PAE|OSFXSR|OSXMMEXCPT, RFLAGS =
//! 0x2 (interrupts off), rsp = top of guest memory - 8 and rdi = the
//! address of `struct hvt_boot_info` (0x10000).
//!
//! The stub records the TSC first (boot time zero), turns on EFER.NXE (the
//! kernel's page tables use the NX bit), moves to the image's own boot
//! stack (with a guard page below it) and calls `solo5_main`.
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

    .section .text.boot, "ax"
    .global _start
    .type _start, @function
_start:
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov [rip + unikit_boot_tsc], rax
    cli
    cld
    mov rsi, rdi
    mov ecx, 0xc0000080             /* EFER */
    rdmsr
    or eax, 1 << 11                 /* NXE */
    wrmsr
    lea rsp, [rip + unikit_boot_stack_top]
    mov rdi, rsi
    xor ebp, ebp
    call {main}
2:  hlt
    jmp 2b
    .size _start, . - _start
    .text
    "#,
    main = sym crate::solo5_main,
);

unsafe extern "C" {
    static unikit_boot_tsc: u64;
    static unikit_boot_stack_bottom: u8;
    static unikit_boot_stack_top: u8;
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

pub fn boot_tsc() -> u64 {
    // SAFETY: written once by the entry stub before any Rust code runs.
    unsafe { core::ptr::read_volatile(&raw const unikit_boot_tsc) }
}

pub fn boot_stack() -> (u64, u64) {
    (&raw const unikit_boot_stack_bottom as u64, &raw const unikit_boot_stack_top as u64)
}

/// The image's parts: (start, end of text, end of read-only data, end).
pub fn image() -> (u64, u64, u64, u64) {
    (
        &raw const __kernel_start as u64,
        &raw const __text_end as u64,
        &raw const __rodata_end as u64,
        &raw const __kernel_end as u64,
    )
}
