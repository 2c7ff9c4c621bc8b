//! User mode: Linux programs run in ring 3 on the kernel's page tables
//! (their pages carry the user bit, the kernel's do not). They enter the
//! kernel through `syscall` and through interrupts and exceptions, which
//! land on the running thread's kernel stack (`TSS.rsp0`).
//!
//! Single CPU: the stub keeps the user stack pointer and the kernel stack
//! top in two statics. SMP turns them into per-CPU fields behind `swapgs`.
use crate::gdt::{self, KERNEL_CS, USER_BASE, USER_CS, USER_DS};
use crate::idt::TrapFrame;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};
use hal::{Fault, UserCpuState, UserRegs};

const EFER: u32 = 0xc000_0080;
const STAR: u32 = 0xc000_0081;
const LSTAR: u32 = 0xc000_0082;
const FMASK: u32 = 0xc000_0084;
const FS_BASE: u32 = 0xc000_0100;
const EFER_SCE: u64 = 1;
/// RFLAGS bits `syscall` clears: IF (no interrupt before the stack
/// switch), DF (the ABI wants it clear in the kernel), TF, AC, NT.
const SYSCALL_MASK: u64 = (1 << 9) | (1 << 10) | (1 << 8) | (1 << 18) | (1 << 14);
/// RFLAGS a program starts with: IF and the reserved bit 1.
const USER_RFLAGS: u64 = 0x202;

/// The user stack pointer, between `syscall` and the stack switch.
#[unsafe(no_mangle)]
static unikit_user_rsp: AtomicU64 = AtomicU64::new(0);
/// The running thread's kernel stack top.
#[unsafe(no_mangle)]
static unikit_kernel_rsp: AtomicU64 = AtomicU64::new(0);

static SYSCALL: spin::Once<fn(&mut UserRegs) -> bool> = spin::Once::new();
static FAULT: spin::Once<fn(&mut UserRegs, &Fault)> = spin::Once::new();
static ON_RETURN: spin::Once<fn(&mut UserRegs)> = spin::Once::new();

// `syscall` leaves the user's rip in rcx and rflags in r11, and masks
// interrupts (FMASK) until the switch to the kernel stack is done. The
// frame is a `UserRegs`; `sysretq` returns with rcx/r11 as Linux does.
// The handler checks that rip is canonical first: `sysretq` to a
// non-canonical rip would fault in ring 0 on the user's stack.
global_asm!(
    ".section .text.unikit_syscall, \"ax\"",
    ".global unikit_syscall_entry",
    "unikit_syscall_entry:",
    "mov [rip + unikit_user_rsp], rsp",
    "mov rsp, [rip + unikit_kernel_rsp]",
    "push qword ptr [rip + unikit_user_rsp]",
    "push r11",
    "push rcx",
    "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
    "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
    "mov rdi, rsp",
    "call {dispatch}",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
    "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
    "pop rcx",
    "pop r11",
    "pop rsp",
    "sysretq",
    // unikit_user_iret(regs: *const UserRegs): loads every register from
    // `regs` (a copy on the kernel stack) and irets to ring 3.
    ".global unikit_user_iret",
    "unikit_user_iret:",
    "mov rsp, rdi",
    "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
    "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
    "iretq",
    // unikit_syscall_reenter(regs: *const UserRegs): copies `regs` to the
    // top of the kernel stack and serves the call there.
    ".global unikit_syscall_reenter",
    "unikit_syscall_reenter:",
    "mov rsi, rdi",
    "mov rsp, [rip + unikit_kernel_rsp]",
    "sub rsp, 18 * 8",
    "mov rdi, rsp",
    "mov ecx, 18",
    "cld",
    "rep movsq",
    "mov rdi, rsp",
    "call {trapped}",
    "ud2",
    ".text",
    dispatch = sym syscall_dispatch,
    trapped = sym syscall_trapped,
);

unsafe extern "C" {
    fn unikit_syscall_entry();
    fn unikit_user_iret(frame: *const u64) -> !;
    fn unikit_syscall_reenter(regs: *const UserRegs) -> !;
}

extern "C" fn syscall_dispatch(regs: &mut UserRegs) {
    crate::cpu::irq_restore(true);
    let full = match SYSCALL.get() {
        Some(f) => f(regs),
        None => {
            regs.rax = (-38i64) as u64; // ENOSYS
            false
        }
    };
    crate::cpu::irq_save();
    regs.rflags = user_flags(regs.rflags);
    if !is_canonical(regs.rip) {
        // Only a handler that changed rip can get here; report it as a
        // fault of the program rather than fault in ring 0.
        let fault = crate::fault::decode(
            crate::fault::Regs { vector: 13, rip: regs.rip, rsp: regs.rsp, rbp: regs.rbp, error_code: 0 },
            None,
        );
        deliver_fault(regs, &fault);
    }
    if full {
        // `sysretq` would clobber rcx and r11 (sigreturn restores them).
        // SAFETY: as in `enter`: a complete ring-3 frame.
        unsafe { unikit_user_iret(iret_frame(regs).as_ptr()) }
    }
}

/// A system call that arrived as a trap (see `user_exception`), now on
/// the kernel stack: served like any other, then an iret back.
extern "C" fn syscall_trapped(regs: &mut UserRegs) -> ! {
    syscall_dispatch(regs);
    // SAFETY: as in `enter`: a complete ring-3 frame.
    unsafe { unikit_user_iret(iret_frame(regs).as_ptr()) }
}

/// `regs` as `unikit_user_iret` pops them.
fn iret_frame(regs: &UserRegs) -> [u64; 20] {
    [
        regs.r15,
        regs.r14,
        regs.r13,
        regs.r12,
        regs.r11,
        regs.r10,
        regs.r9,
        regs.r8,
        regs.rbp,
        regs.rdi,
        regs.rsi,
        regs.rdx,
        regs.rcx,
        regs.rbx,
        regs.rax,
        regs.rip,
        USER_CS as u64,
        user_flags(regs.rflags),
        regs.rsp,
        USER_DS as u64,
    ]
}

fn is_canonical(a: u64) -> bool {
    (a as i64) >> 47 == 0 || (a as i64) >> 47 == -1
}

fn deliver_fault(regs: &mut UserRegs, fault: &Fault) {
    match FAULT.get() {
        Some(f) => f(regs, fault),
        None => crate::cpu::halt_forever(),
    }
}

fn regs_of(frame: &TrapFrame) -> UserRegs {
    UserRegs {
        r15: frame.r15,
        r14: frame.r14,
        r13: frame.r13,
        r12: frame.r12,
        r11: frame.r11,
        r10: frame.r10,
        r9: frame.r9,
        r8: frame.r8,
        rbp: frame.rbp,
        rdi: frame.rdi,
        rsi: frame.rsi,
        rdx: frame.rdx,
        rcx: frame.rcx,
        rbx: frame.rbx,
        rax: frame.rax,
        rip: frame.rip,
        rflags: frame.rflags,
        rsp: frame.rsp,
    }
}

fn store(frame: &mut TrapFrame, regs: &UserRegs) {
    let UserRegs { r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax, rip, rflags, rsp } = *regs;
    *frame = TrapFrame {
        r15,
        r14,
        r13,
        r12,
        r11,
        r10,
        r9,
        r8,
        rbp,
        rdi,
        rsi,
        rdx,
        rcx,
        rbx,
        rax,
        vector: frame.vector,
        error_code: frame.error_code,
        rip,
        cs: USER_CS as u64,
        rflags: user_flags(rflags),
        rsp,
        ss: USER_DS as u64,
    };
}

/// A trap from ring 3: hands a CPU exception to the kernel's fault handler
/// (with the registers as the program saw them, written back afterwards).
/// Returns false for traps from ring 0, which are the platform's business.
pub fn user_exception(frame: &mut TrapFrame) -> bool {
    if frame.cs & 3 != 3 || frame.vector >= 32 {
        return false;
    }
    let mut regs = regs_of(frame);
    if frame.vector == crate::idt::PAGE_FAULT && frame.rip == unikit_syscall_entry as *const () as u64 {
        // A `syscall` that jumped to LSTAR but stayed in ring 3: the
        // nested, page-table-based KVM (kvm_pvm) some hosts run does this
        // to guests that do not speak its paravirtual protocol. rcx and
        // r11 hold the return rip and rflags as `syscall` left them.
        // The trap runs on the emergency stack (IST), which a blocking call
        // must not keep: move to the thread's kernel stack for good.
        regs.rip = frame.rcx;
        regs.rflags = frame.r11;
        // SAFETY: interrupts are off (interrupt gate); the kernel stack top
        // is the running thread's and holds nothing live (it is in user
        // mode); the routine copies `regs` there before leaving this stack.
        unsafe { unikit_syscall_reenter(&regs) }
    }
    let fault = frame.decode();
    deliver_fault(&mut regs, &fault);
    store(frame, &regs);
    true
}

/// After an interrupt that arrived in ring 3: lets the kernel switch
/// threads or deliver a signal before the program resumes.
pub fn user_interrupt_return(frame: &mut TrapFrame) {
    if frame.cs & 3 != 3 {
        return;
    }
    if let Some(f) = ON_RETURN.get() {
        let mut regs = regs_of(frame);
        f(&mut regs);
        store(frame, &regs);
    }
}

/// The flags a program may set for itself (arithmetic flags, DF, TF, AC,
/// RF); IF is always on.
fn user_flags(f: u64) -> u64 {
    (f & 0x5_0dd5) | USER_RFLAGS
}

/// The x86_64 user mode, for [`hal::Hal::user`].
pub struct X86User;

/// The one instance the VM platforms bind.
pub static USER: X86User = X86User;

impl hal::UserMode for X86User {
    fn bind(&self, syscall: fn(&mut UserRegs) -> bool, fault: fn(&mut UserRegs, &Fault), on_return: fn(&mut UserRegs)) {
        SYSCALL.call_once(|| syscall);
        FAULT.call_once(|| fault);
        ON_RETURN.call_once(|| on_return);
        // SAFETY: ring 0 on the boot CPU. EFER.SCE enables `syscall`; STAR
        // holds the selectors of gdt.rs; CR0/CR4 let ring 3 use SSE (the
        // kernel itself is soft-float and never touches those registers).
        unsafe {
            let efer = crate::cpu::rdmsr(EFER);
            crate::cpu::wrmsr(EFER, efer | EFER_SCE);
            crate::cpu::wrmsr(STAR, ((USER_BASE as u64) << 48) | ((KERNEL_CS as u64) << 32));
            crate::cpu::wrmsr(LSTAR, unikit_syscall_entry as *const () as u64);
            crate::cpu::wrmsr(FMASK, SYSCALL_MASK);
            asm!(
                "mov {t}, cr0",
                "and {t}, ~((1 << 2) | (1 << 3))", // EM, TS off
                "or {t}, 1 << 1",                  // MP
                "mov cr0, {t}",
                "mov {t}, cr4",
                "or {t}, (1 << 9) | (1 << 10)",    // OSFXSR, OSXMMEXCPT
                "mov cr4, {t}",
                t = out(reg) _,
                options(nostack),
            );
        }
    }

    fn enter(&self, regs: &UserRegs, kernel_stack_top: u64) -> ! {
        crate::cpu::irq_save();
        set_kernel_stack(kernel_stack_top);
        let frame = iret_frame(regs);
        // SAFETY: the frame is a complete iret frame for ring 3 with the
        // user selectors; the kernel stack was set for the traps to come.
        unsafe { unikit_user_iret(frame.as_ptr()) }
    }

    fn load(&self, state: &UserCpuState, kernel_stack_top: u64) {
        set_kernel_stack(kernel_stack_top);
        // SAFETY: the area is 16-byte aligned (UserCpuState's alignment) and
        // 512 bytes long; fxrstor64 only loads FPU/SSE state, which the
        // kernel does not use. FS_BASE only matters to user code.
        unsafe {
            asm!("fxrstor64 [{}]", in(reg) state.fpu.as_ptr(), options(nostack, readonly, preserves_flags));
            crate::cpu::wrmsr(FS_BASE, state.tls);
        }
    }

    fn save(&self, state: &mut UserCpuState) {
        // SAFETY: as in `load`; fxsave64 writes the 512-byte area.
        unsafe { asm!("fxsave64 [{}]", in(reg) state.fpu.as_mut_ptr(), options(nostack, preserves_flags)) };
    }

    fn set_tls(&self, base: u64) {
        // SAFETY: FS_BASE is the user's TLS base; the kernel does not use FS.
        unsafe { crate::cpu::wrmsr(FS_BASE, base) };
    }
}

fn set_kernel_stack(top: u64) {
    unikit_kernel_rsp.store(top, Ordering::Relaxed);
    gdt::set_kernel_stack(top);
}
