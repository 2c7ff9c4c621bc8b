//! The pvclock formula shared by Xen's `vcpu_time_info` and KVM's
//! kvmclock: a snapshot (TSC, system time) plus a fixed-point scale turns
//! any later TSC reading into nanoseconds of system time.

/// One consistent snapshot of a vCPU's time info (the fields read under
/// the hypervisor's version check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pvclock {
    /// TSC at the snapshot.
    pub tsc_timestamp: u64,
    /// System time (ns) at the snapshot.
    pub system_time: u64,
    /// Scale: ns = ((ticks << shift) * mul) >> 32.
    pub mul: u32,
    /// Binary shift applied before `mul` (negative: right shift).
    pub shift: i8,
}

impl Pvclock {
    /// `ticks` TSC ticks in nanoseconds.
    pub fn scale(&self, ticks: u64) -> u64 {
        let d = if self.shift < 0 { ticks >> self.shift.unsigned_abs() } else { ticks << self.shift };
        ((d as u128 * self.mul as u128) >> 32) as u64
    }

    /// System time at `tsc`, before or after the snapshot: a TSC taken
    /// earlier (the boot TSC, when the hypervisor refreshed the snapshot
    /// since) lies before it, and subtracting it unsigned would wrap to a
    /// jump of centuries.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        match tsc.checked_sub(self.tsc_timestamp) {
            Some(ahead) => self.system_time.wrapping_add(self.scale(ahead)),
            None => self.system_time.saturating_sub(self.scale(self.tsc_timestamp - tsc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pvclock;

    /// 1 GHz TSC: mul 2^31 with shift 1 is 1 ns per tick.
    const CLOCK: Pvclock = Pvclock { tsc_timestamp: 1_000_000, system_time: 5_000, mul: 1 << 31, shift: 1 };

    #[test]
    fn scales_ticks_past_the_snapshot() {
        assert_eq!(CLOCK.ns_at(1_000_000), 5_000);
        assert_eq!(CLOCK.ns_at(1_000_250), 5_250);
        let slow = Pvclock { shift: -1, ..CLOCK };
        assert_eq!(slow.ns_at(1_001_000), 5_250);
    }

    #[test]
    fn a_tsc_before_the_snapshot_is_earlier_not_centuries_later() {
        // Subtracting with wrap-around (as before) gave about 2^64 ticks.
        assert_eq!(CLOCK.ns_at(999_000), 4_000);
        assert_eq!(CLOCK.ns_at(0), 0);
    }
}
