//! i8254 programmable interval timer, used only to measure the TSC when no
//! CPUID leaf or paravirtual clock gives its frequency. Channel 0 is read
//! back through latch commands, which works on every PIT (QEMU microvm has
//! no port 0x61 gate for channel 2).
#![deny(unsafe_code)]
use arch::cpu::rdtsc;
use unikit_io::pc::PIT;

const PIT_HZ: u64 = 1_193_182;

fn read_count() -> u16 {
    // Latch channel 0, then read its count low byte, high byte.
    PIT.write::<u8>(3, 0x00);
    let lo = PIT.read::<u8>(0) as u16;
    let hi = PIT.read::<u8>(0) as u16;
    (hi << 8) | lo
}

/// Counts TSC ticks during `ms` milliseconds of PIT time and returns the
/// TSC frequency in Hz, or `None` if there is no counting PIT.
pub fn measure_tsc_hz(ms: u64) -> Option<u64> {
    let target = PIT_HZ * ms / 1000;
    // Channel 0, lo/hi access, mode 2 (rate generator), reload 0
    // (= 65536). Its IRQ 0 is masked at the PIC and the I/O APIC.
    PIT.write::<u8>(3, 0x34);
    PIT.write::<u8>(0, 0);
    PIT.write::<u8>(0, 0);
    let mut last = read_count();
    let t0 = rdtsc();
    let mut elapsed = 0u64;
    let mut reads = 0u32;
    while elapsed < target {
        let now = read_count();
        elapsed += last.wrapping_sub(now) as u64; // counts down, wraps at 65536
        last = now;
        reads += 1;
        if reads > 2_000_000 {
            return None; // not counting (no PIT behind the ports)
        }
    }
    let t1 = rdtsc();
    let hz = (t1 - t0) as u128 * PIT_HZ as u128 / elapsed as u128;
    // Anything outside 100 MHz..20 GHz is not a TSC we believe in.
    (100_000_000..20_000_000_000).contains(&(hz as u64)).then_some(hz as u64)
}
