//! Time on the kvm platform: the TSC is the clock (zero at the entry stub's
//! first instruction), the local APIC timer wakes the idle CPU, and the CMOS
//! RTC gives the wall-clock time. Everything is set up on first use, so a
//! program that never sleeps never pays for calibration.
use crate::boot::boot_tsc;
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
        let (hv, max_leaf) = super::hypervisor();
        if let Some(hz) = arch::tsc::freq_from_cpuid(max_leaf) {
            return TscClock { scale: Scale::from_hz(hz), source: "cpuid" };
        }
        if hv == Hypervisor::HyperV
            && let Some(hz) = crate::hyperv::tsc_hz()
        {
            return TscClock { scale: Scale::from_hz(hz), source: "Hyper-V" };
        }
        if hv == Hypervisor::Kvm
            && let Some(hz) = kvmclock_tsc_hz()
        {
            return TscClock { scale: Scale::from_hz(hz), source: "kvmclock" };
        }
        if let Some(hz) = drivers::pc::i8254::measure_tsc_hz(10) {
            return TscClock { scale: Scale::from_hz(hz), source: "PIT calibration" };
        }
        let hz = arch::tsc::base_freq_from_cpuid().unwrap_or(1_000_000_000);
        TscClock { scale: Scale::from_hz(hz), source: "cpuid base frequency (approximate)" }
    })
}

const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
const MSR_KVM_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;

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

#[repr(C, align(16))]
struct PvclockWallClock {
    version: u32,
    sec: u32,
    nsec: u32,
}

/// One consistent reading of KVM's paravirtual clock, taken by enabling it,
/// reading it and disabling it again (unikit keeps time with the TSC).
struct KvmClock {
    tsc_timestamp: u64,
    system_time: u64,
    mul: u32,
    shift: i8,
}

fn has_kvmclock() -> bool {
    super::hypervisor().0 == Hypervisor::Kvm && cpuid(0x4000_0001, 0).eax & KVM_FEATURE_CLOCKSOURCE2 != 0
}

fn read_kvmclock() -> Option<KvmClock> {
    if !has_kvmclock() {
        return None;
    }
    static mut INFO: PvclockTimeInfo = PvclockTimeInfo {
        version: 0,
        pad0: 0,
        tsc_timestamp: 0,
        system_time: 0,
        tsc_to_system_mul: 0,
        tsc_shift: 0,
        flags: 0,
        pad: [0; 2],
    };
    let addr = &raw mut INFO as u64;
    // SAFETY: identity-mapped static; KVM writes the structure when enabled
    // and stops when we write 0. Fields are read with volatile loads, and
    // the version check (even, unchanged) guards against a torn read.
    unsafe {
        arch::cpu::wrmsr(MSR_KVM_SYSTEM_TIME_NEW, addr | 1);
        let c = loop {
            let v0 = core::ptr::read_volatile(&raw const INFO.version);
            let c = KvmClock {
                tsc_timestamp: core::ptr::read_volatile(&raw const INFO.tsc_timestamp),
                system_time: core::ptr::read_volatile(&raw const INFO.system_time),
                mul: core::ptr::read_volatile(&raw const INFO.tsc_to_system_mul),
                shift: core::ptr::read_volatile(&raw const INFO.tsc_shift),
            };
            if v0.is_multiple_of(2) && v0 == core::ptr::read_volatile(&raw const INFO.version) {
                break c;
            }
        };
        arch::cpu::wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0);
        (c.mul != 0).then_some(c)
    }
}

impl KvmClock {
    /// KVM's system time (ns since the VM started) at TSC value `tsc`.
    fn ns_at(&self, tsc: u64) -> u64 {
        let mut delta = tsc.wrapping_sub(self.tsc_timestamp);
        delta = if self.shift < 0 { delta >> -self.shift as u32 } else { delta << self.shift as u32 };
        self.system_time + ((delta as u128 * self.mul as u128) >> 32) as u64
    }

    /// The TSC frequency behind the conversion (as Linux's kvm_get_tsc_khz).
    fn tsc_hz(&self) -> u64 {
        let mut hz = (1_000_000_000u128 << 32) / self.mul as u128;
        if self.shift < 0 {
            hz <<= -self.shift as u32;
        } else {
            hz >>= self.shift as u32;
        }
        hz as u64
    }
}

fn kvmclock_tsc_hz() -> Option<u64> {
    read_kvmclock().map(|c| c.tsc_hz())
}

/// Unix time now from KVM's wall clock (the host's time when the VM's
/// system time was zero) plus the system time.
fn kvm_wall_clock_ns() -> Option<u64> {
    let clock = read_kvmclock()?;
    static mut WC: PvclockWallClock = PvclockWallClock { version: 0, sec: 0, nsec: 0 };
    // SAFETY: as for the system time: KVM writes the static once per MSR write.
    let (sec, nsec) = unsafe {
        arch::cpu::wrmsr(MSR_KVM_WALL_CLOCK_NEW, &raw mut WC as u64);
        (core::ptr::read_volatile(&raw const WC.sec), core::ptr::read_volatile(&raw const WC.nsec))
    };
    (sec != 0).then(|| sec as u64 * 1_000_000_000 + nsec as u64 + clock.ns_at(rdtsc()))
}

pub fn ticks_to_ns(ticks: u64) -> u64 {
    tsc().scale.ticks_to_ns(ticks)
}

pub fn monotonic_ns() -> u64 {
    tsc().scale.ticks_to_ns(rdtsc().wrapping_sub(boot_tsc()))
}

/// Wall-clock time: KVM's paravirtual wall clock where there is one
/// (Firecracker has no CMOS RTC), else the CMOS RTC; 0 (1970) if neither
/// gives a sane date.
pub fn wall_clock_ns() -> u64 {
    let (unix, mono) = *WALL_BASE.call_once(|| {
        let mono = monotonic_ns();
        let unix = kvm_wall_clock_ns()
            .or_else(|| drivers::pc::rtc::read_datetime().map(|d| d.unix_seconds() * 1_000_000_000))
            .unwrap_or(0);
        (unix, mono)
    });
    unix + monotonic_ns().saturating_sub(mono)
}

fn apic() -> (LocalApic, u64) {
    *APIC.call_once(|| {
        let (timer, spurious) = super::timer_vectors();
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
        if d <= monotonic_ns() {
            return;
        }
        arm(d);
    }
    arch::cpu::wait_for_interrupt();
}

/// Arms the local APIC timer for the monotonic `deadline` (one shot; a
/// later call replaces it).
pub fn arm(deadline: u64) {
    let now = monotonic_ns();
    let (apic, ratio) = apic();
    let clock = tsc();
    let ticks = clock.scale.ns_to_ticks(deadline.saturating_sub(now)).max(1);
    if !apic.arm_tsc_deadline(rdtsc() + ticks) {
        let apic_ticks = ((ticks as u128 * ratio as u128) >> 32).clamp(1, u32::MAX as u128);
        apic.arm_oneshot(apic_ticks as u32);
    }
}

pub fn describe(out: &mut dyn Write) -> core::fmt::Result {
    let c = tsc();
    write!(out, ", TSC {}.{:02} GHz ({})", c.scale.hz / 1_000_000_000, c.scale.hz / 10_000_000 % 100, c.source)?;
    let deadline = cpuid(1, 0).ecx & (1 << 24) != 0;
    write!(
        out,
        ", {}{}",
        if LocalApic::has_x2apic() { "x2APIC" } else { "xAPIC" },
        if deadline { " TSC-deadline" } else { "" }
    )
}
