//! Time Stamp Counter: frequency discovery from CPUID and tick/ns conversion.
use crate::cpu::cpuid;

/// TSC frequency in Hz from the hypervisor timing leaf (0x40000010, offered by
/// KVM with invtsc, VMware, QEMU `vmware-cpuid-freq`) or the architectural
/// leaf 0x15 (crystal ratio). `None` means the caller has to measure it.
pub fn freq_from_cpuid(hv_max_leaf: u32) -> Option<u64> {
    if hv_max_leaf >= 0x4000_0010 {
        let khz = cpuid(0x4000_0010, 0).eax;
        if khz != 0 {
            return Some(khz as u64 * 1000);
        }
    }
    if cpuid(0, 0).eax >= 0x15 {
        let r = cpuid(0x15, 0);
        if r.eax != 0 && r.ebx != 0 && r.ecx != 0 {
            return Some(r.ecx as u64 * r.ebx as u64 / r.eax as u64);
        }
    }
    None
}

/// Processor base frequency from leaf 0x16, in Hz. Nominal, not measured:
/// only good as a last resort.
pub fn base_freq_from_cpuid() -> Option<u64> {
    if cpuid(0, 0).eax >= 0x16 {
        let mhz = cpuid(0x16, 0).eax & 0xffff;
        if mhz != 0 {
            return Some(mhz as u64 * 1_000_000);
        }
    }
    None
}

/// Fixed-point conversion of ticks to nanoseconds: `ns = ticks * mult >> 32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub hz: u64,
    mult: u64,
}

impl Scale {
    pub const fn from_hz(hz: u64) -> Self {
        let hz = if hz == 0 { 1 } else { hz };
        Self { hz, mult: ((1_000_000_000u128 << 32) / hz as u128) as u64 }
    }

    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ((ticks as u128 * self.mult as u128) >> 32) as u64
    }

    #[inline]
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        (ns as u128 * self.hz as u128 / 1_000_000_000) as u64
    }
}
