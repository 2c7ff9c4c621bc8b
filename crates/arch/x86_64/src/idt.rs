//! Interrupt descriptor table and the common trap entry. Every vector has a
//! stub that pushes a uniform [`TrapFrame`] and calls the one handler the
//! platform registered; policy (report, EOI, wake threads) lives there.
use crate::gdt::{IST_EMERGENCY, KERNEL_CS};
use core::arch::{asm, global_asm};

/// Registers saved on every trap, in stack order.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    /// Saved `r15`.
    pub r15: u64,
    /// Saved `r14`.
    pub r14: u64,
    /// Saved `r13`.
    pub r13: u64,
    /// Saved `r12`.
    pub r12: u64,
    /// Saved `r11`.
    pub r11: u64,
    /// Saved `r10`.
    pub r10: u64,
    /// Saved `r9`.
    pub r9: u64,
    /// Saved `r8`.
    pub r8: u64,
    /// Saved `rbp`.
    pub rbp: u64,
    /// Saved `rdi`.
    pub rdi: u64,
    /// Saved `rsi`.
    pub rsi: u64,
    /// Saved `rdx`.
    pub rdx: u64,
    /// Saved `rcx`.
    pub rcx: u64,
    /// Saved `rbx`.
    pub rbx: u64,
    /// Saved `rax`.
    pub rax: u64,
    /// Exception vector (0-31), or the IRQ vector.
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors that push none.
    pub error_code: u64,
    /// Interrupted instruction pointer (pushed by the CPU).
    pub rip: u64,
    /// Interrupted code segment (pushed by the CPU).
    pub cs: u64,
    /// Interrupted RFLAGS (pushed by the CPU).
    pub rflags: u64,
    /// Interrupted stack pointer (pushed by the CPU).
    pub rsp: u64,
    /// Interrupted stack segment (pushed by the CPU).
    pub ss: u64,
}

/// Names of the 32 CPU exceptions, indexed by vector (SDM vol. 3, 6.15).
pub const EXCEPTION_NAMES: [&str; 32] = [
    "divide error (#DE)",
    "debug (#DB)",
    "non-maskable interrupt (NMI)",
    "breakpoint (#BP)",
    "overflow (#OF)",
    "bound range exceeded (#BR)",
    "invalid opcode (#UD)",
    "device not available (#NM)",
    "double fault (#DF)",
    "coprocessor segment overrun",
    "invalid TSS (#TS)",
    "segment not present (#NP)",
    "stack-segment fault (#SS)",
    "general protection fault (#GP)",
    "page fault (#PF)",
    "reserved (15)",
    "x87 floating-point exception (#MF)",
    "alignment check (#AC)",
    "machine check (#MC)",
    "SIMD floating-point exception (#XM)",
    "virtualization exception (#VE)",
    "control protection exception (#CP)",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "hypervisor injection exception (#HV)",
    "VMM communication exception (#VC)",
    "security exception (#SX)",
    "reserved (31)",
];

/// Vector of the page fault (#PF), whose CR2 is worth reporting.
pub const PAGE_FAULT: u64 = 14;

// One 16-byte stub per vector. Vectors where the CPU pushes an error code
// (8, 10-14, 17, 21, 29, 30) skip the dummy push so the frame is uniform.
global_asm!(
    ".section .text.unikit_isr, \"ax\"",
    ".balign 16",
    ".global unikit_isr_stubs",
    "unikit_isr_stubs:",
    ".set vec, 0",
    ".rept 256",
    ".balign 16",
    ".if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)",
    "push vec",
    ".else",
    "push 0",
    "push vec",
    ".endif",
    "jmp unikit_isr_common",
    ".set vec, vec + 1",
    ".endr",
    "unikit_isr_common:",
    "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
    "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
    "mov rdi, rsp",
    "cld",
    "call {dispatch}",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
    "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
    "add rsp, 16",
    "iretq",
    ".text",
    dispatch = sym trap_dispatch,
);

unsafe extern "C" {
    static unikit_isr_stubs: u8;
}

/// The platform's trap handler, set once at boot.
static HANDLER: spin::Once<fn(&mut TrapFrame)> = spin::Once::new();

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    match HANDLER.get() {
        Some(h) => h(frame),
        None => crate::cpu::halt_forever(),
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    off_lo: u16,
    sel: u16,
    ist: u8,
    attr: u8,
    off_mid: u16,
    off_hi: u32,
    _r: u32,
}

static mut IDT: [Gate; 256] = [Gate { off_lo: 0, sel: 0, ist: 0, attr: 0, off_mid: 0, off_hi: 0, _r: 0 }; 256];

/// Loads the IDT with gates for the 32 CPU exceptions and the spurious
/// vector (0xff); every trap goes to `handler`. Other vectors get a gate
/// when a driver asks for one ([`enable_vector`]): fewer instructions at
/// boot, and a stray interrupt on an unused vector faults visibly (#GP).
///
/// # Safety
/// Call on the boot CPU after [`crate::gdt::init`], before enabling interrupts.
pub unsafe fn init(handler: fn(&mut TrapFrame)) {
    set_handler(handler);
    for v in (0..32).chain([0xff]) {
        // SAFETY: forwarded contract.
        unsafe { enable_vector(v) };
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer { limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16, base: &raw const IDT as u64 };
    // SAFETY: the IDT is a static that lives forever.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack, preserves_flags)) };
}

/// Sets the handler every stub calls, without loading an IDT: for Xen PV,
/// where the hypervisor's trap table points at stubs that end up in
/// [`stub_address`]'s stubs.
/// The first handler set stays: a platform sets it once.
pub fn set_handler(handler: fn(&mut TrapFrame)) {
    HANDLER.call_once(|| handler);
}

/// Address of the entry stub of `vector` (16 bytes each).
pub fn stub_address(vector: u8) -> u64 {
    &raw const unikit_isr_stubs as u64 + 16 * vector as u64
}

/// Installs the gate for `vector` (all vectors share the one handler).
///
/// # Safety
/// Single CPU, and the handler must be ready for this vector.
pub unsafe fn enable_vector(vector: u8) {
    let v = vector as usize;
    // SAFETY: the stubs symbol is defined above; the caller serialises writers.
    unsafe {
        let addr = &raw const unikit_isr_stubs as u64 + 16 * v as u64;
        // Faults that may arrive on a broken stack run on the emergency stack.
        let ist = match v {
            2 | 8 | 14 | 18 => IST_EMERGENCY,
            _ => 0,
        };
        IDT[v] = Gate {
            off_lo: addr as u16,
            sel: KERNEL_CS,
            ist,
            attr: 0x8e, // present, DPL0, 64-bit interrupt gate
            off_mid: (addr >> 16) as u16,
            off_hi: (addr >> 32) as u32,
            _r: 0,
        };
    }
}
