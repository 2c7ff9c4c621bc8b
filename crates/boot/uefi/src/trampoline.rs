//! The jump from UEFI's 64-bit long mode to the kernel's 32-bit PVH entry.
//!
//! PVH wants: 32-bit protected mode, flat 4 GiB code and data segments,
//! paging off, EFER zero, `ebx` = the `hvm_start_info`. Long mode cannot be
//! left in place: the code must first drop to a 32-bit *compatibility-mode*
//! segment (still long mode, but 32-bit code), and only there may paging and
//! then EFER.LME be turned off (Intel SDM vol. 3, 10.8.5 "Initializing IA-32e
//! mode", leaving it). Turning paging off means the code doing it must be at
//! the same physical and virtual address and below 4 GiB: UEFI identity-maps
//! memory, so the code is copied to a page of ours below 1 GiB and run there.
//!
//! The same code also copies the kernel's segments into place, because
//! parts of the kernel's range may still be boot-services memory (the
//! firmware's page tables, stack or pool) until the very end: with paging
//! off, nothing of the firmware is needed any more and that memory is ours.

use core::arch::{asm, global_asm};

use unikit_boot_uefi::kernel::{MAX_SEGMENTS, Segment};

/// Layout of the trampoline page (offsets; the asm below uses the same numbers).
const GDT: usize = 0xc00;
const GDT_PTR: usize = 0xc20;
const ENTRY: usize = 0xc40;
const START_INFO: usize = 0xc44;
const NSEG: usize = 0xc48;
const TABLE: usize = 0xc50;
const TABLE_ENTRY: usize = 16;
const _: () = assert!(TABLE + MAX_SEGMENTS * TABLE_ENTRY <= 4096);
const _: () = assert!(GDT + 8 * GDT_ENTRIES.len() <= GDT_PTR);

/// Selectors of our GDT: 0x08 32-bit code, 0x10 data, 0x18 TSS.
const GDT_ENTRIES: [u64; 4] = [
    0,
    // base 0, limit 0xfffff pages (4 GiB), present, ring 0, code exec/read, D=1 (32-bit), L=0
    0x00cf_9a00_0000_ffff,
    // base 0, limit 4 GiB, present, ring 0, data read/write, B=1
    0x00cf_9200_0000_ffff,
    // PVH asks for TR = a 32-bit TSS, base 0, limit 0x67 (never used for a task switch)
    0x0000_8900_0000_0067,
];

// The code; entered with `rdi` = the page it was copied to (= rip's page).
// Only the register file and the page itself are used from the far return
// on: the firmware's stack and page tables may lie in the kernel's range.
global_asm!(
    ".globl unikit_tramp_start",
    ".globl unikit_tramp_end",
    ".code64",
    "unikit_tramp_start:",
    "cli",
    "mov rbp, rdi",
    "lgdt [rbp + 0xc20]",
    // Far return into the 32-bit code segment (selector 0x08): compatibility mode.
    "lea rax, [rip + unikit_tramp_32]",
    "push 0x08",
    "push rax",
    "retfq",
    ".code32",
    "unikit_tramp_32:",
    "mov ax, 0x10",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov fs, ax",
    "mov gs, ax",
    // Paging off: this leaves long mode (EFER.LMA drops); we run identity-mapped.
    "mov eax, cr0",
    "and eax, 0x7fffffff",
    "mov cr0, eax",
    // EFER = 0 (LME, NXE, SCE off), as PVH specifies.
    "mov ecx, 0xc0000080",
    "xor eax, eax",
    "xor edx, edx",
    "wrmsr",
    // CR4 = 0: PAE and the rest off, as PVH specifies.
    "mov cr4, eax",
    "mov ax, 0x18",
    "ltr ax",
    "lea esp, [ebp + 0xc00]",
    "cld",
    // Copy each segment's file image, then zero the rest of its memory.
    "mov edx, [ebp + 0xc48]",
    "lea ebx, [ebp + 0xc50]",
    "2:",
    "test edx, edx",
    "jz 3f",
    "mov edi, [ebx]",
    "mov esi, [ebx + 4]",
    "mov ecx, [ebx + 8]",
    "rep movsb",
    "mov ecx, [ebx + 12]",
    "xor eax, eax",
    "rep stosb",
    "add ebx, 16",
    "dec edx",
    "jmp 2b",
    "3:",
    "mov eax, [ebp + 0xc40]",
    "mov ebx, [ebp + 0xc44]",
    "jmp eax",
    "unikit_tramp_end:",
    ".code64",
);

unsafe extern "C" {
    static unikit_tramp_start: u8;
    static unikit_tramp_end: u8;
}

/// Fills `page` (4 KiB, identity-mapped, below 1 GiB, outside the kernel)
/// with the code, the GDT and what to copy where.
pub fn prepare(page: &mut [u8], page_addr: u64, kernel_buf: u64, segments: &[Segment], entry: u32, start_info: u64) {
    let code = code();
    page[..code.len()].copy_from_slice(code);
    for (i, d) in GDT_ENTRIES.iter().enumerate() {
        page[GDT + 8 * i..GDT + 8 * i + 8].copy_from_slice(&d.to_le_bytes());
    }
    // lgdt's 10-byte operand in long mode: limit, then 64-bit base.
    page[GDT_PTR..GDT_PTR + 2].copy_from_slice(&(GDT_ENTRIES.len() as u16 * 8 - 1).to_le_bytes());
    page[GDT_PTR + 2..GDT_PTR + 10].copy_from_slice(&(page_addr + GDT as u64).to_le_bytes());
    // All of these lie below 1 GiB (checked by the caller), so u32 holds them.
    let put = |page: &mut [u8], at: usize, v: u64| page[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
    put(page, ENTRY, entry.into());
    put(page, START_INFO, start_info);
    put(page, NSEG, segments.len() as u64);
    for (i, s) in segments.iter().enumerate() {
        let at = TABLE + i * TABLE_ENTRY;
        put(page, at, s.paddr);
        put(page, at + 4, kernel_buf + s.offset);
        put(page, at + 8, s.filesz);
        put(page, at + 12, s.memsz - s.filesz);
    }
}

fn code() -> &'static [u8] {
    // SAFETY: both symbols are labels of the global_asm above, in order, in
    // the same section; the bytes between them are the code.
    unsafe {
        let start = &raw const unikit_tramp_start;
        let end = &raw const unikit_tramp_end;
        let len = end as usize - start as usize;
        assert!(len <= GDT, "trampoline larger than its room");
        core::slice::from_raw_parts(start, len)
    }
}

/// `cli`: the firmware's interrupt handlers are not to run any more.
pub fn disable_interrupts() {
    // SAFETY: clearing IF touches no memory.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// Runs the prepared page. Boot services must have exited.
///
/// # Safety
/// `page_addr` must be a page filled by [`prepare`] whose segment table
/// and start info describe memory nothing else uses any more.
pub unsafe fn jump(page_addr: u64) -> ! {
    // SAFETY: the caller's contract; the page is identity-mapped code.
    unsafe { asm!("jmp {0}", in(reg) page_addr, in("rdi") page_addr, options(noreturn)) }
}
