//! Faults arrive as signals; they are reported exactly like CPU exceptions
//! on the VM platforms (same report, same exit code).
use crate::sys::{SYS_RT_SIGACTION, SYS_RT_SIGRETURN, SYS_SIGALTSTACK, syscall6};
use core::arch::global_asm;

const SIGILL: u64 = 4;
const SIGTRAP: u64 = 5;
const SIGBUS: u64 = 7;
const SIGFPE: u64 = 8;
const SIGSEGV: u64 = 11;
const SA_SIGINFO: u64 = 0x4;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SA_NODEFER: u64 = 0x4000_0000;

// Offsets into ucontext_t.uc_mcontext.gregs (x86_64).
const GREGS: usize = 40;
const REG_RBP: usize = 10;
const REG_RSP: usize = 15;
const REG_RIP: usize = 16;
const REG_ERR: usize = 19;
const REG_TRAPNO: usize = 20;
const REG_CR2: usize = 22;

#[repr(C)]
struct SigAction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

#[repr(C)]
struct StackT {
    sp: u64,
    flags: i32,
    size: u64,
}

const ALT_STACK_SIZE: usize = 64 * 1024;
#[repr(C, align(16))]
struct AltStack([u8; ALT_STACK_SIZE]);
static mut ALT_STACK: AltStack = AltStack([0; ALT_STACK_SIZE]);

global_asm!(
    ".section .text.unikit_sigreturn, \"ax\"",
    "unikit_sigreturn:",
    "mov eax, {nr}",
    "syscall",
    "ud2",
    ".text",
    nr = const SYS_RT_SIGRETURN,
);

unsafe extern "C" {
    fn unikit_sigreturn();
}

extern "C" fn on_fault(sig: i32, _info: *const u8, uctx: *const u8) {
    // SAFETY: the kernel passes a valid ucontext_t for SA_SIGINFO handlers.
    let greg = |i: usize| unsafe { *(uctx.add(GREGS + 8 * i) as *const u64) };
    let trapno = greg(REG_TRAPNO);
    let sig = sig as u64;
    let regs = arch::fault::Regs {
        vector: trapno,
        rip: greg(REG_RIP),
        rsp: greg(REG_RSP),
        rbp: greg(REG_RBP),
        error_code: greg(REG_ERR),
    };
    let mut fault =
        arch::fault::decode(regs, (trapno == arch::idt::PAGE_FAULT || sig == SIGSEGV).then(|| greg(REG_CR2)));
    if !(trapno < 32 && (trapno != 0 || sig == SIGFPE)) {
        fault.name = match sig {
            SIGSEGV => "segmentation fault",
            SIGBUS => "bus error",
            SIGILL => "illegal instruction",
            _ => "fatal signal",
        };
    }
    unikit_kernel::crash::exception(&fault)
}

pub fn install() {
    let ss = StackT { sp: &raw mut ALT_STACK as u64, flags: 0, size: ALT_STACK_SIZE as u64 };
    // SAFETY: the alternate stack is a static used only by these handlers.
    unsafe { syscall6(SYS_SIGALTSTACK, [&ss as *const _ as u64, 0, 0, 0, 0, 0]) };
    let act = SigAction {
        handler: on_fault as *const () as u64,
        // SA_NODEFER: a fault inside the report re-enters the handler (on
        // the alternate stack it is already on), so the kernel's crash
        // nesting ends it with the exception code. With the signal blocked
        // Linux would kill the process with SIGSEGV instead.
        flags: SA_SIGINFO | SA_ONSTACK | SA_RESTORER | SA_NODEFER,
        restorer: unikit_sigreturn as *const () as u64,
        mask: 0,
    };
    for sig in [SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV] {
        // SAFETY: `act` is a valid kernel sigaction; the handler never returns.
        unsafe { syscall6(SYS_RT_SIGACTION, [sig, &act as *const _ as u64, 0, 8, 0, 0]) };
    }
}
