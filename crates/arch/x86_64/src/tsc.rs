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
    /// Ticks per second.
    pub hz: u64,
    mult: u64,
}

impl Scale {
    /// A clock ticking `hz` times per second.
    pub const fn from_hz(hz: u64) -> Self {
        let hz = if hz == 0 { 1 } else { hz };
        Self { hz, mult: ((1_000_000_000u128 << 32) / hz as u128) as u64 }
    }

    /// Converts TSC ticks to nanoseconds.
    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ((ticks as u128 * self.mult as u128) >> 32) as u64
    }

    /// Converts nanoseconds to TSC ticks.
    #[inline]
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        (ns as u128 * self.hz as u128 / 1_000_000_000) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::Scale;

    #[test]
    fn converts_both_ways() {
        for hz in [1_000_000_000u64, 2_593_906_000, 3_000_000_000, 24_000_000] {
            let s = Scale::from_hz(hz);
            // one second of ticks is one second, within the fixed-point error
            let ns = s.ticks_to_ns(hz);
            assert!(ns.abs_diff(1_000_000_000) <= 1, "{hz} Hz: {ns} ns");
            assert!(s.ns_to_ticks(1_000_000_000).abs_diff(hz) <= 1);
        }
    }

    #[test]
    fn no_overflow_after_years() {
        let s = Scale::from_hz(3_000_000_000);
        let ten_years = 10 * 365 * 86_400 * 3_000_000_000u64;
        let ns = s.ticks_to_ns(ten_years);
        assert!(ns.abs_diff(10 * 365 * 86_400 * 1_000_000_000) < 1_000_000_000);
    }

    #[test]
    fn zero_hz_does_not_divide_by_zero() {
        let s = Scale::from_hz(0);
        assert_eq!(s.hz, 1);
    }
}
