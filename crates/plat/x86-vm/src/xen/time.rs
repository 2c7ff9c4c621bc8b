//! Time on Xen: the vCPU's pvclock in the shared info page gives Xen system
//! time (ns since the host booted the domain's clock), the shared wall
//! clock gives the epoch offset, and `set_timer_op` plus VIRQ_TIMER wake
//! the idle vCPU.
use core::sync::atomic::{AtomicU64, Ordering};
use drivers::xen::{abi, evtchn, hypercall};
use unikit_abi::pvclock::Pvclock;

/// Xen system time at the first instruction of the entry stub.
static BOOT_SYSTIME: AtomicU64 = AtomicU64::new(0);

/// The vCPU's time snapshot, and the TSC read under the same version: Xen
/// rewrites the snapshot when it moves the vCPU to another pCPU, whose TSC
/// may differ, so a TSC read outside the version check can pair one pCPU's
/// snapshot with another's counter.
fn pvclock_now() -> Option<(Pvclock, u64)> {
    let v = evtchn::vcpu()?;
    // SAFETY: the time info lives in the shared page; the version check
    // (even and unchanged) guards against a torn read while Xen updates it.
    unsafe {
        let t = &raw const (*v).time;
        loop {
            let ver = core::ptr::read_volatile(&raw const (*t).version);
            core::sync::atomic::fence(Ordering::Acquire);
            let c = Pvclock {
                tsc_timestamp: core::ptr::read_volatile(&raw const (*t).tsc_timestamp),
                system_time: core::ptr::read_volatile(&raw const (*t).system_time),
                mul: core::ptr::read_volatile(&raw const (*t).tsc_to_system_mul),
                shift: core::ptr::read_volatile(&raw const (*t).tsc_shift),
            };
            let tsc = arch::cpu::rdtsc();
            core::sync::atomic::fence(Ordering::Acquire);
            if ver % 2 == 0 && ver == core::ptr::read_volatile(&raw const (*t).version) {
                return Some((c, tsc));
            }
        }
    }
}

/// The latest system time handed out: pCPUs' TSCs need not agree, and
/// the kernel's timers assume time never runs backwards.
static LAST_SYSTIME: AtomicU64 = AtomicU64::new(0);

/// Xen system time now, never less than a value returned before.
pub fn systime_ns() -> u64 {
    let Some((c, tsc)) = pvclock_now() else { return 0 };
    let now = c.ns_at(tsc);
    now.max(LAST_SYSTIME.fetch_max(now, Ordering::Relaxed))
}

/// Fixes boot time zero at the TSC the entry stub recorded.
pub fn init(boot_tsc: u64) {
    if let Some((c, _)) = pvclock_now() {
        BOOT_SYSTIME.store(c.ns_at(boot_tsc), Ordering::Relaxed);
    }
}

pub fn monotonic_ns() -> u64 {
    systime_ns().saturating_sub(BOOT_SYSTIME.load(Ordering::Relaxed))
}

/// TSC ticks to nanoseconds at the current pvclock scale.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    pvclock_now().map_or(0, |(c, _)| c.scale(ticks))
}

pub fn wall_clock_ns() -> u64 {
    let Some(s) = evtchn::shared_info() else { return 0 };
    // SAFETY: wall clock fields of the shared page, read under Xen's
    // version protocol like the pvclock.
    let boot_wall = unsafe {
        loop {
            let ver = core::ptr::read_volatile(&raw const (*s).wc_version);
            core::sync::atomic::fence(Ordering::Acquire);
            let sec = core::ptr::read_volatile(&raw const (*s).wc_sec) as u64
                | (core::ptr::read_volatile(&raw const (*s).wc_sec_hi) as u64) << 32;
            let nsec = core::ptr::read_volatile(&raw const (*s).wc_nsec) as u64;
            core::sync::atomic::fence(Ordering::Acquire);
            if ver % 2 == 0 && ver == core::ptr::read_volatile(&raw const (*s).wc_version) {
                break sec * 1_000_000_000 + nsec;
            }
        }
    };
    boot_wall + systime_ns()
}

fn on_timer(_port: u32) {}

/// Routes VIRQ_TIMER to an (empty) handler: its only job is to end
/// `SCHEDOP_block`.
pub fn bind_timer() -> Result<u32, evtchn::Error> {
    let port = evtchn::bind_virq(abi::VIRQ_TIMER)?;
    evtchn::set_handler(port, Some(on_timer));
    Ok(port)
}

/// PV idle: called with events masked. `SCHEDOP_block` unmasks them
/// atomically and returns once one is pending (the upcall runs on the way
/// back); events are masked again before returning.
pub fn wait_pv(deadline_ns: Option<u64>) {
    arm(deadline_ns);
    // SAFETY: SCHEDOP_block takes no argument.
    unsafe { hypercall::sched_op(abi::SCHEDOP_BLOCK, 0) };
    evtchn::mask_upcalls();
}

/// Asks for a timer event at monotonic time `deadline_ns`.
pub fn arm(deadline_ns: Option<u64>) {
    if let Some(d) = deadline_ns {
        hypercall::set_timer(BOOT_SYSTIME.load(Ordering::Relaxed).saturating_add(d).max(1));
    }
}
