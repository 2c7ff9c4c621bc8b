//! CPU instructions that the rest of the system needs by name.
use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdtsc};

/// The four registers a `cpuid` returns.
#[derive(Clone, Copy, Debug)]
pub struct CpuidResult {
    /// EAX output.
    pub eax: u32,
    /// EBX output.
    pub ebx: u32,
    /// ECX output.
    pub ecx: u32,
    /// EDX output.
    pub edx: u32,
}

/// Runs `cpuid` for `leaf` / `subleaf`.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = __cpuid_count(leaf, subleaf);
    CpuidResult { eax: r.eax, ebx: r.ebx, ecx: r.ecx, edx: r.edx }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged unless CR4.TSD is set, which we never set.
    unsafe { _rdtsc() }
}

/// # Safety
/// The MSR must exist; reading some MSRs is privileged.
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: caller guarantees the MSR exists and we run at CPL0.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    ((hi as u64) << 32) | lo as u64
}

/// # Safety
/// Writing an MSR changes CPU behaviour arbitrarily.
#[inline]
pub unsafe fn wrmsr(msr: u32, val: u64) {
    // SAFETY: caller guarantees the MSR write is meaningful.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32, options(nostack, preserves_flags))
    }
}

/// Disables interrupts and returns whether they were enabled before.
/// Privileged: only the hardware platforms call this.
#[inline]
pub fn irq_save() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS and clearing IF only affect interrupt delivery.
    unsafe { asm!("pushfq; pop {}; cli", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Re-enables interrupts if `enabled` (what `irq_save` returned), else leaves them off.
#[inline]
pub fn irq_restore(enabled: bool) {
    if enabled {
        // SAFETY: re-enables interrupts that were enabled before `irq_save`.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
}

/// Atomically enables interrupts and halts until the next one arrives, then
/// disables them again. `sti` delays interrupt delivery by one instruction,
/// so no wake-up can slip in between the check that led here and the `hlt`.
#[inline]
pub fn wait_for_interrupt() {
    // SAFETY: the caller runs with interrupts disabled and handlers installed.
    unsafe { asm!("sti; hlt; cli", options(nomem, nostack)) };
}

/// Resets the machine the hard way: with an empty IDT, any exception
/// escalates to a triple fault. Hypervisors turn that into a reset or a
/// shutdown (QEMU with -no-reboot exits, KVM reports a shutdown exit).
pub fn triple_fault() -> ! {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let empty = Pointer { limit: 0, base: 0 };
    // SAFETY: the point is to stop the machine.
    unsafe { asm!("lidt [{}]", "int3", in(reg) &empty, options(nostack)) };
    halt_forever()
}

/// Stops this CPU for good: interrupts off, `hlt` in a loop.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops the CPU; nothing follows.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// The faulting address of the last page fault.
#[inline]
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The physical address of the current page-table root.
#[inline]
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// # Safety
/// `pml4` must be the physical address of a valid top-level page table that
/// maps the currently executing code, stack and data at the same addresses.
#[inline]
pub unsafe fn write_cr3(pml4: u64) {
    // SAFETY: see the function contract.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) };
}

/// Drops the TLB entries for the page holding `addr`.
#[inline]
pub fn invlpg(addr: u64) {
    // SAFETY: invalidating a TLB entry only costs a later page walk.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// Flushes all non-global TLB entries (by reloading CR3).
#[inline]
pub fn flush_tlb() {
    // SAFETY: reloading the current CR3 changes no mapping.
    unsafe { write_cr3(read_cr3()) };
}

/// The caller's frame pointer (RBP), where a backtrace starts.
#[inline]
pub fn frame_pointer() -> u64 {
    let v: u64;
    // SAFETY: reading RBP has no side effects.
    unsafe { asm!("mov {}, rbp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
