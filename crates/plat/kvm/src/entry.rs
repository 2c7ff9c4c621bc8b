//! PVH entry: the hypervisor jumps to `pvh_start32` in 32-bit protected mode,
//! paging off, with `ebx` = physical address of `hvm_start_info`. The stub
//! records the TSC (boot time zero), identity-maps 1 GiB with 2 MiB pages,
//! enters long mode and calls `kvm_main`. The kernel replaces these tables
//! with its own as soon as it has a frame allocator, and frees them.
use core::arch::global_asm;

/// XEN_ELFNOTE_PHYS32_ENTRY: the note QEMU, Firecracker and Xen look for.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

global_asm!(
    r#"
    .section .note.pvh, "a", @note
    .p2align 2
    .long 4
    .long 4
    .long {note_type}
    .asciz "Xen"
    .p2align 2
    .long pvh_start32
    .p2align 2

    /* Xen PV: the same image boots as a PV guest (crates/plat/xen). The
       pseudo-physical layout is the identity (VIRT_BASE 0), like PVH. */
    .section .note.xen, "a", @note
    .p2align 2
    .long 4, 2f - 1f, 6             /* GUEST_OS */
    .asciz "Xen"
1:  .asciz "unikit"
2:  .p2align 2
    .long 4, 2f - 1f, 8             /* LOADER */
    .asciz "Xen"
1:  .asciz "generic"
2:  .p2align 2
    .long 4, 2f - 1f, 5             /* XEN_VERSION */
    .asciz "Xen"
1:  .asciz "xen-3.0"
2:  .p2align 2
    .long 4, 2f - 1f, 10            /* FEATURES */
    .asciz "Xen"
1:  .asciz "!writable_page_tables"
2:  .p2align 2
    .long 4, 8, 3                   /* VIRT_BASE */
    .asciz "Xen"
    .quad 0
    .long 4, 8, 4                   /* PADDR_OFFSET */
    .asciz "Xen"
    .quad 0
    .long 4, 8, 1                   /* ENTRY */
    .asciz "Xen"
    .quad xen_pv_start
    .long 4, 8, 2                   /* HYPERCALL_PAGE */
    .asciz "Xen"
    .quad xen_hypercall_page

    /* Boot page tables. The PD is prebuilt in the image: code that runs
       with paging off is emulated instruction by instruction on some
       hypervisors (e.g. page-table-based nested KVM), so a loop that fills
       512 entries at boot would cost far more than 4 KiB of image. */
    .section .bss.boot_pt, "aw", @nobits
    .p2align 12
    .global unikit_boot_pml4
unikit_boot_pml4: .skip 4096
    .global unikit_boot_pdpt
unikit_boot_pdpt: .skip 4096
    .section .data.boot_pt, "aw"
    .p2align 12
    .global unikit_boot_pd
unikit_boot_pd:
    .set i, 0
    .rept 512
    .quad (i << 21) | 0xe3  /* present, writable, accessed, dirty, 2 MiB */
    .set i, i + 1
    .endr

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
    .global unikit_start_info
unikit_start_info: .quad 0
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_ptr:
    .word 23
    .long boot_gdt

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    rdtsc
    movl %eax, unikit_boot_tsc
    movl %edx, unikit_boot_tsc + 4
    movl %ebx, unikit_start_info
    cli
    cld
    movl $unikit_boot_stack_top, %esp

    /* Identity-map the first 1 GiB (kernel, boot data, low RAM). */
    movl $unikit_boot_pd + 0x23, unikit_boot_pdpt
    movl $unikit_boot_pdpt + 0x23, unikit_boot_pml4

    movl %cr4, %eax
    orl $(1 << 5), %eax             /* PAE */
    movl %eax, %cr4
    movl $unikit_boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax   /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax  /* PG | WP | PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $2f

    .code64
2:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq $unikit_boot_stack_top, %rsp
    movl unikit_start_info(%rip), %edi
    xorl %ebp, %ebp
    call {main}
3:  hlt
    jmp 3b
    .text
    "#,
    note_type = const XEN_ELFNOTE_PHYS32_ENTRY,
    main = sym crate::kvm_main,
    options(att_syntax)
);

unsafe extern "C" {
    pub static unikit_boot_tsc: u64;
    pub static unikit_boot_stack_bottom: u8;
    pub static unikit_boot_stack_top: u8;
    pub static __kernel_start: u8;
    pub static __kernel_end: u8;
    pub static unikit_boot_pml4: u8;
    pub static unikit_boot_pdpt: u8;
    pub static unikit_boot_pd: u8;
}

pub fn boot_tsc() -> u64 {
    // SAFETY: written once by the entry stub before any Rust code runs.
    unsafe { core::ptr::read_volatile(&raw const unikit_boot_tsc) }
}

pub fn boot_stack() -> (u64, u64) {
    (&raw const unikit_boot_stack_bottom as u64, &raw const unikit_boot_stack_top as u64)
}

pub fn kernel_image() -> (u64, u64) {
    (&raw const __kernel_start as u64, &raw const __kernel_end as u64)
}

/// The three 4 KiB pages of the boot stub's page tables.
pub fn boot_page_tables() -> [u64; 3] {
    [&raw const unikit_boot_pml4 as u64, &raw const unikit_boot_pdpt as u64, &raw const unikit_boot_pd as u64]
}
