//! Local APIC: x2APIC through MSRs when the CPU has it, xAPIC through MMIO
//! otherwise. Only what a one-shot timer needs: enable, arm, EOI.
use crate::cpu::{cpuid, rdmsr, rdtsc, wrmsr};

const IA32_APIC_BASE: u32 = 0x1b;
const IA32_TSC_DEADLINE: u32 = 0x6e0;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INIT: u32 = 0x380;
const REG_TIMER_CUR: u32 = 0x390;
const REG_TIMER_DIV: u32 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 2 << 17;

/// Where the local APIC's MMIO registers sit unless firmware moved them.
pub const XAPIC_DEFAULT_BASE: u64 = 0xfee0_0000;

/// The boot CPU's local APIC, in x2APIC (MSR) or xAPIC (MMIO) mode.
#[derive(Clone, Copy, Debug)]
pub struct LocalApic {
    x2apic: bool,
    mmio: u64,
    tsc_deadline: bool,
    vector: u8,
}

impl LocalApic {
    /// Physical base of the xAPIC MMIO page (must be mapped uncached before
    /// `enable` when the CPU has no x2APIC).
    pub fn mmio_base() -> u64 {
        // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (all x86_64).
        unsafe { rdmsr(IA32_APIC_BASE) & 0x000f_ffff_ffff_f000 }
    }

    /// Whether the CPU supports x2APIC mode (MSR access, no MMIO mapping needed).
    pub fn has_x2apic() -> bool {
        cpuid(1, 0).ecx & (1 << 21) != 0
    }

    /// Enables the APIC with `timer_vector` for the timer and `spurious` for
    /// spurious interrupts.
    ///
    /// # Safety
    /// An IDT entry must handle both vectors; the xAPIC page must be mapped.
    pub unsafe fn enable(timer_vector: u8, spurious: u8) -> Self {
        let feat = cpuid(1, 0).ecx;
        let x2apic = feat & (1 << 21) != 0;
        let mut apic =
            Self { x2apic, mmio: Self::mmio_base(), tsc_deadline: feat & (1 << 24) != 0, vector: timer_vector };
        // SAFETY: enabling the APIC (and x2APIC mode when present) is the point.
        unsafe {
            let base = rdmsr(IA32_APIC_BASE);
            let mode = if x2apic { (1 << 11) | (1 << 10) } else { 1 << 11 };
            wrmsr(IA32_APIC_BASE, base | mode);
            apic.write(REG_SVR, 0x100 | spurious as u32);
            apic.write(REG_TIMER_DIV, 0b1011); // divide by 1
            let lvt = timer_vector as u32 | if apic.tsc_deadline { LVT_TSC_DEADLINE } else { 0 };
            apic.write(REG_LVT_TIMER, lvt);
        }
        apic.vector = timer_vector;
        apic
    }

    /// Whether the timer runs in TSC-deadline mode rather than one-shot count-down.
    pub fn uses_tsc_deadline(&self) -> bool {
        self.tsc_deadline
    }

    /// Whether the APIC is driven through MSRs (x2APIC) rather than MMIO.
    pub fn is_x2apic(&self) -> bool {
        self.x2apic
    }

    unsafe fn write(&self, reg: u32, val: u32) {
        // SAFETY: callers pass architectural register offsets.
        unsafe {
            if self.x2apic {
                wrmsr(0x800 + (reg >> 4), val as u64);
            } else {
                core::ptr::write_volatile((self.mmio + reg as u64) as *mut u32, val);
            }
        }
    }

    unsafe fn read(&self, reg: u32) -> u32 {
        // SAFETY: callers pass architectural register offsets.
        unsafe {
            if self.x2apic {
                rdmsr(0x800 + (reg >> 4)) as u32
            } else {
                core::ptr::read_volatile((self.mmio + reg as u64) as *const u32)
            }
        }
    }

    /// This CPU's APIC id (the destination for MSIs and I/O APIC routes).
    pub fn id(&self) -> u32 {
        // SAFETY: reading the ID register has no side effects.
        let raw = unsafe { self.read(0x20) };
        if self.x2apic { raw } else { raw >> 24 }
    }

    /// Signals end of interrupt, so the APIC delivers the next one.
    pub fn eoi(&self) {
        // SAFETY: writing 0 to EOI acknowledges the in-service interrupt.
        unsafe { self.write(REG_EOI, 0) }
    }

    /// Arms the timer to fire once at TSC value `deadline` (TSC-deadline
    /// mode). Returns false if this APIC lacks TSC-deadline mode.
    pub fn arm_tsc_deadline(&self, deadline: u64) -> bool {
        if !self.tsc_deadline {
            return false;
        }
        // SAFETY: the LVT is in TSC-deadline mode; a past deadline fires at once.
        unsafe { wrmsr(IA32_TSC_DEADLINE, deadline.max(1)) };
        true
    }

    /// Arms the timer in one-shot count mode for `ticks` APIC timer ticks.
    pub fn arm_oneshot(&self, ticks: u32) {
        // SAFETY: one-shot mode, unmasked; a count of 0 would disarm, so use 1.
        unsafe {
            self.write(REG_LVT_TIMER, self.vector as u32);
            self.write(REG_TIMER_INIT, ticks.max(1));
        }
    }

    /// Measures APIC timer ticks per TSC tick (as a 32.32 fixed-point ratio)
    /// by counting down while `tsc_ticks` TSC ticks pass.
    pub fn measure_ratio(&self, tsc_ticks: u64) -> u64 {
        // SAFETY: masked one-shot run of the timer; restored afterwards.
        unsafe {
            self.write(REG_LVT_TIMER, LVT_MASKED | self.vector as u32);
            self.write(REG_TIMER_INIT, u32::MAX);
            let t0 = rdtsc();
            while rdtsc() - t0 < tsc_ticks {
                core::hint::spin_loop();
            }
            let elapsed = u32::MAX - self.read(REG_TIMER_CUR);
            self.write(REG_TIMER_INIT, 0);
            ((elapsed as u64) << 32) / tsc_ticks.max(1)
        }
    }
}
