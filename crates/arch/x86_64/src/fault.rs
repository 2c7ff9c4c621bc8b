//! Decoding CPU exceptions into the kernel's arch-neutral [`Fault`], and
//! the [`hal::Cpu`] implementation (context switch, stack walking).
use crate::idt::{EXCEPTION_NAMES, PAGE_FAULT, TrapFrame};
use hal::{Fault, FaultAddress};

/// The registers an exception report needs.
#[derive(Clone, Copy, Debug)]
pub struct Regs {
    /// Exception vector.
    pub vector: u64,
    /// `rip`, `rsp`, `rbp`.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Frame pointer.
    pub rbp: u64,
    /// Error code pushed by the CPU (0 if none).
    pub error_code: u64,
}

/// Name of exception `vector`.
pub fn exception_name(vector: u64) -> &'static str {
    EXCEPTION_NAMES.get(vector as usize).copied().unwrap_or("unknown exception")
}

/// Decodes an exception; `fault_addr` is CR2 (or the copy a hypervisor or
/// the host kernel gives) for memory faults.
pub fn decode(r: Regs, fault_addr: Option<u64>) -> Fault {
    Fault {
        vector: r.vector,
        name: exception_name(r.vector),
        pc: r.rip,
        sp: r.rsp,
        fp: r.rbp,
        register_names: &["rip", "rsp", "rbp"],
        error_code: r.error_code,
        address: fault_addr.map(|addr| FaultAddress {
            addr,
            source: "cr2",
            // Page-fault error code bits (Intel SDM vol. 3, 4.7): P, W/R, I/D.
            cause: if r.error_code & 1 == 0 { "page not present" } else { "protection violation" },
            access: if r.error_code & 0x10 != 0 {
                "instruction fetch"
            } else if r.error_code & 2 != 0 {
                "write"
            } else {
                "read"
            },
        }),
    }
}

impl TrapFrame {
    /// The registers of this frame.
    pub fn regs(&self) -> Regs {
        Regs { vector: self.vector, rip: self.rip, rsp: self.rsp, rbp: self.rbp, error_code: self.error_code }
    }

    /// Decodes this frame, reading CR2 for a page fault (ring 0 only).
    pub fn decode(&self) -> Fault {
        decode(self.regs(), (self.vector == PAGE_FAULT).then(crate::cpu::read_cr2))
    }
}

/// The x86_64 CPU as the kernel's [`hal::Cpu`].
pub struct X86Cpu;

/// The one instance platforms bind.
pub static CPU: X86Cpu = X86Cpu;

// SAFETY: `switch` and `init_stack` are the context-switch primitives of
// `crate::context`, which follow the trait's contract.
unsafe impl hal::Cpu for X86Cpu {
    unsafe fn switch(&self, save_sp: *mut u64, next_sp: u64) {
        // SAFETY: forwarded contract.
        unsafe { crate::context::switch(save_sp, next_sp) }
    }

    unsafe fn init_stack(&self, stack_top: u64, entry: extern "C" fn(usize) -> !, arg: usize) -> u64 {
        // SAFETY: forwarded contract.
        unsafe { crate::context::init_stack(stack_top, entry, arg) }
    }

    #[inline(never)]
    fn caller_frame(&self) -> u64 {
        // Our own frame (frame pointers are forced on) holds the caller's
        // saved rbp at [rbp].
        let fp = crate::cpu::frame_pointer();
        if fp == 0 || !fp.is_multiple_of(8) {
            return 0;
        }
        // SAFETY: rbp points at this function's frame, on the current stack.
        unsafe { core::ptr::read_volatile(fp as *const u64) }
    }

    fn walk_stack(&self, frame: u64, lo: u64, hi: u64, out: &mut [u64]) -> usize {
        let mut n = 0;
        crate::backtrace::walk(
            frame,
            |a, b| lo != hi && a >= lo && b <= hi,
            |_, ret| {
                if let Some(slot) = out.get_mut(n) {
                    *slot = ret;
                    n += 1;
                }
            },
        );
        n
    }
}
