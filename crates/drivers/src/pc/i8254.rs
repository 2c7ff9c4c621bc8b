//! i8254 programmable interval timer, used only to measure the TSC when no
//! CPUID leaf or paravirtual clock gives its frequency.
use arch::cpu::rdtsc;
use arch::io::{inb, outb};

const PIT_HZ: u64 = 1_193_182;

/// Counts TSC ticks during `ms` milliseconds of PIT channel 2 and returns
/// the TSC frequency in Hz, or `None` if the PIT does not seem to count.
pub fn measure_tsc_hz(ms: u64) -> Option<u64> {
    let count = (PIT_HZ * ms / 1000).min(0xffff) as u16;
    // SAFETY: channel 2 is gated by port 0x61 and wired to nothing else we use.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01); // gate on, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lo/hi, mode 0
        outb(0x42, count as u8);
        outb(0x42, (count >> 8) as u8);
        let t0 = rdtsc();
        let mut spins: u64 = 0;
        while inb(0x61) & 0x20 == 0 {
            spins += 1;
            if spins > 100_000_000 {
                return None;
            }
        }
        let t1 = rdtsc();
        outb(0x61, gate);
        Some((t1 - t0) * PIT_HZ / count as u64)
    }
}
