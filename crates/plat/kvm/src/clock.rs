//! Time on the kvm platform: the TSC is the clock (zero at the entry stub's
//! first instruction), the local APIC timer wakes the idle CPU, and the CMOS
//! RTC gives the wall-clock time. Everything is set up on first use, so a
//! program that never sleeps never pays for calibration.
use crate::entry::boot_tsc;
use arch::apic::LocalApic;
use arch::cpu::{cpuid, rdtsc};
use arch::hypervisor::Hypervisor;
use arch::tsc::Scale;
use core::fmt::Write;
use spin::Once;

#[derive(Clone, Copy)]
struct TscClock {
    scale: Scale,
    source: &'static str,
}

static TSC: Once<TscClock> = Once::new();
static WALL_BASE: Once<(u64, u64)> = Once::new(); // (unix ns, monotonic ns) at the RTC read
static APIC: Once<(LocalApic, u64)> = Once::new(); // (apic, APIC ticks per TSC tick, 32.32)

fn tsc() -> TscClock {
    *TSC.call_once(|| {
        let (hv, max_leaf) = crate::hypervisor();
        if let Some(hz) = arch::tsc::freq_from_cpuid(max_leaf) {
            return TscClock { scale: Scale::from_hz(hz), source: "cpuid" };
        }
        if hv == Hypervisor::Kvm {
            if let Some(hz) = kvmclock_tsc_hz() {
                return TscClock { scale: Scale::from_hz(hz), source: "kvmclock" };
            }
        }
        if let Some(hz) = drivers::pc::i8254::measure_tsc_hz(10) {
            return TscClock { scale: Scale::from_hz(hz), source: "PIT calibration" };
        }
        let hz = arch::tsc::base_freq_from_cpuid().unwrap_or(1_000_000_000);
        TscClock { scale: Scale::from_hz(hz), source: "cpuid base frequency (approximate)" }
    })
}

/// The TSC frequency KVM's paravirtual clock uses (as Linux's kvm_get_tsc_khz).
fn kvmclock_tsc_hz() -> Option<u64> {
    const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
    const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
    if cpuid(0x4000_0001, 0).eax & KVM_FEATURE_CLOCKSOURCE2 == 0 {
        return None;
    }
    #[repr(C, align(64))]
    struct PvclockTimeInfo {
        version: u32,
        pad0: u32,
        tsc_timestamp: u64,
        system_time: u64,
        tsc_to_system_mul: u32,
        tsc_shift: i8,
        flags: u8,
        pad: [u8; 2],
    }
    static mut INFO: PvclockTimeInfo =
        PvclockTimeInfo { version: 0, pad0: 0, tsc_timestamp: 0, system_time: 0, tsc_to_system_mul: 0, tsc_shift: 0, flags: 0, pad: [0; 2] };
    let addr = &raw mut INFO as u64;
    // SAFETY: identity-mapped static; KVM writes the structure on enable and
    // stops when we write 0. We read the fields with volatile loads.
    let (mul, shift) = unsafe {
        arch::cpu::wrmsr(MSR_KVM_SYSTEM_TIME_NEW, addr | 1);
        let mul = core::ptr::read_volatile(&raw const INFO.tsc_to_system_mul);
        let shift = core::ptr::read_volatile(&raw const INFO.tsc_shift);
        arch::cpu::wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0);
        (mul, shift)
    };
    if mul == 0 {
        return None;
    }
    // ns = ((tsc << shift) * mul) >> 32  =>  hz = (10^9 << 32) / mul, shifted back.
    let mut hz = (1_000_000_000u128 << 32) / mul as u128;
    if shift < 0 {
        hz <<= -shift as u32;
    } else {
        hz >>= shift as u32;
    }
    Some(hz as u64)
}

pub fn ticks_to_ns(ticks: u64) -> u64 {
    tsc().scale.ticks_to_ns(ticks)
}

pub fn monotonic_ns() -> u64 {
    tsc().scale.ticks_to_ns(rdtsc().wrapping_sub(boot_tsc()))
}

pub fn wall_clock_ns() -> u64 {
    let (unix, mono) = *WALL_BASE.call_once(|| {
        let mono = monotonic_ns();
        (drivers::pc::rtc::read_datetime().unix_seconds() * 1_000_000_000, mono)
    });
    unix + monotonic_ns().saturating_sub(mono)
}

fn apic() -> (LocalApic, u64) {
    *APIC.call_once(|| {
        let (timer, spurious) = crate::timer_vectors();
        // SAFETY: the IDT gets a gate for the timer (the spurious vector has
        // one from boot); the xAPIC page is mapped.
        let apic = unsafe {
            arch::idt::enable_vector(timer);
            LocalApic::enable(timer, spurious)
        };
        let ratio = if apic.uses_tsc_deadline() {
            0
        } else {
            // ~100 us of TSC is enough to know the APIC timer rate to 0.1%.
            apic.measure_ratio(tsc().scale.hz / 10_000)
        };
        (apic, ratio)
    })
}

/// The local APIC, enabled on first use.
pub fn local_apic() -> LocalApic {
    apic().0
}

pub fn eoi() {
    if let Some((apic, _)) = APIC.get() {
        apic.eoi();
    }
}

/// Halts until an interrupt or the monotonic `deadline`. Interrupts are off.
pub fn wait(deadline: Option<u64>) {
    if let Some(d) = deadline {
        let now = monotonic_ns();
        if d <= now {
            return;
        }
        let (apic, ratio) = apic();
        let clock = tsc();
        let ticks = clock.scale.ns_to_ticks(d - now).max(1);
        if !apic.arm_tsc_deadline(rdtsc() + ticks) {
            let apic_ticks = ((ticks as u128 * ratio as u128) >> 32).clamp(1, u32::MAX as u128);
            apic.arm_oneshot(apic_ticks as u32);
        }
    }
    arch::cpu::wait_for_interrupt();
}

pub fn describe(out: &mut dyn Write) -> core::fmt::Result {
    let c = tsc();
    write!(out, ", TSC {}.{:02} GHz ({})", c.scale.hz / 1_000_000_000, c.scale.hz / 10_000_000 % 100, c.source)?;
    let deadline = cpuid(1, 0).ecx & (1 << 24) != 0;
    write!(out, ", {}{}", if LocalApic::has_x2apic() { "x2APIC" } else { "xAPIC" }, if deadline { " TSC-deadline" } else { "" })
}
