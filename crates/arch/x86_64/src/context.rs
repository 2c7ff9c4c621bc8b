//! Thread context switch. Only callee-saved registers are switched: the
//! switch is an ordinary function call, so the compiler has already saved
//! the rest. Kernel code is built soft-float, so there is no FPU/SSE state.
use core::arch::global_asm;

global_asm!(
    ".section .text.unikit_switch, \"ax\"",
    ".global unikit_switch_context",
    "unikit_switch_context:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".global unikit_thread_trampoline",
    "unikit_thread_trampoline:",
    "mov rdi, r13",
    "xor ebp, ebp", // ends frame-pointer backtraces here
    "call r12",
    "ud2",
    ".text",
);

unsafe extern "C" {
    fn unikit_switch_context(save_sp: *mut u64, next_sp: u64);
    fn unikit_thread_trampoline();
}

/// Saves the current context's stack pointer into `*save_sp` and resumes
/// the context whose stack pointer is `next_sp`.
///
/// # Safety
/// `next_sp` must come from [`init_stack`] or from an earlier `switch` that
/// saved it, and that stack must still be alive.
#[inline]
pub unsafe fn switch(save_sp: *mut u64, next_sp: u64) {
    // SAFETY: upheld by the caller.
    unsafe { unikit_switch_context(save_sp, next_sp) }
}

/// Prepares a fresh stack so that switching to the returned stack pointer
/// calls `entry(arg)`. `entry` must never return.
///
/// # Safety
/// `stack_top` must be the (exclusive) end of a writable region of at least
/// 64 bytes that nobody else uses.
pub unsafe fn init_stack(stack_top: u64, entry: extern "C" fn(usize) -> !, arg: usize) -> u64 {
    let top = stack_top & !0xf;
    let frame: [u64; 8] = [
        0,                                            // r15
        0,                                            // r14
        arg as u64,                                   // r13: argument
        entry as *const () as u64,                    // r12: entry point
        0,                                            // rbx
        0,                                            // rbp
        unikit_thread_trampoline as *const () as u64, // return address
        0,                                            // padding keeps `top` 16-byte aligned
    ];
    let sp = top - (frame.len() as u64) * 8;
    // SAFETY: the caller gave us this memory; `sp` is 8-byte aligned.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), sp as *mut u64, frame.len()) };
    sp
}
