//! The 64-bit GDT and TSS. The TSS provides the interrupt stacks (IST) that
//! report a double fault or a fault on a blown stack, and `rsp0`, the
//! kernel stack an interrupt from a user program (ring 3) lands on.
//!
//! The user segments sit in the order `syscall`/`sysret` need (Intel SDM
//! vol. 2B, SYSRET): user data at `STAR[63:48] + 8`, 64-bit user code at
//! `STAR[63:48] + 16`.
use core::arch::asm;
use core::mem::size_of;
use core::ptr::addr_of;

/// Selector of the 64-bit kernel code segment.
pub const KERNEL_CS: u16 = 0x08;
/// Selector of the kernel data segment.
pub const KERNEL_DS: u16 = 0x10;
/// Base of the user selectors in `STAR[63:48]` (a 32-bit code slot, unused).
pub const USER_BASE: u16 = 0x18;
/// Selector of the user data segment, RPL 3.
pub const USER_DS: u16 = 0x20 | 3;
/// Selector of the 64-bit user code segment, RPL 3.
pub const USER_CS: u16 = 0x28 | 3;
const TSS_SEL: u16 = 0x30;

/// IST index (1-based, as the IDT wants it) of the emergency stack.
pub const IST_EMERGENCY: u8 = 1;
const IST_SIZE: usize = 16 * 1024;

#[repr(C, packed)]
struct Tss {
    _r0: u32,
    rsp: [u64; 3],
    _r1: u64,
    ist: [u64; 7],
    _r2: u64,
    _r3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct Stack([u8; IST_SIZE]);

static mut TSS: Tss =
    Tss { _r0: 0, rsp: [0; 3], _r1: 0, ist: [0; 7], _r2: 0, _r3: 0, iomap_base: size_of::<Tss>() as u16 };
static mut IST_STACK: Stack = Stack([0; IST_SIZE]);
static mut GDT: [u64; 8] = [
    0,
    0x00af_9a00_0000_ffff, // 0x08: 64-bit code, DPL0
    0x00cf_9200_0000_ffff, // 0x10: data, DPL0
    0,                     // 0x18: 32-bit user code: none (compat mode is not offered)
    0x00cf_f200_0000_ffff, // 0x20: data, DPL3
    0x00af_fa00_0000_ffff, // 0x28: 64-bit code, DPL3
    0,                     // 0x30: TSS (low), filled in at init
    0,                     // 0x38: TSS (high)
];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT and TSS and reloads every segment register.
///
/// # Safety
/// Call once, on the boot CPU, before interrupts are enabled.
pub unsafe fn init() {
    // SAFETY: single-threaded early boot; nothing else touches these statics.
    unsafe {
        let ist_top = (addr_of!(IST_STACK) as u64) + IST_SIZE as u64;
        TSS.ist[(IST_EMERGENCY - 1) as usize] = ist_top;
        let base = &raw const TSS as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        GDT[6] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        GDT[7] = base >> 32;
        let ptr = Pointer { limit: (size_of::<[u64; 8]>() - 1) as u16, base: &raw const GDT as u64 };
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {ds:e}",
            "mov es, {ds:e}",
            "mov ss, {ds:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            cs = in(reg) KERNEL_CS as u64,
            ds = in(reg) KERNEL_DS as u32,
            tss = in(reg) TSS_SEL,
            tmp = out(reg) _,
        );
    }
}

/// Sets the stack an interrupt or exception from ring 3 switches to: the
/// top of the kernel stack of the thread about to run user code.
pub fn set_kernel_stack(top: u64) {
    // SAFETY: one aligned 8-byte store into the TSS, which the CPU reads
    // only on a privilege change; single CPU, so no other writer.
    unsafe { (&raw mut TSS.rsp).cast::<u64>().write_unaligned(top) };
}

/// Bounds of the emergency stack, for backtraces taken on it.
pub fn emergency_stack() -> (u64, u64) {
    let lo = addr_of!(IST_STACK) as u64;
    (lo, lo + IST_SIZE as u64)
}
