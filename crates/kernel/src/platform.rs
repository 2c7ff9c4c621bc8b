//! The contract between the kernel core and a platform.
use core::sync::atomic::{AtomicUsize, Ordering};

/// What the kernel needs from the machine it runs on. One implementation per
/// platform; the kernel reaches it through [`platform()`].
pub trait Platform: Sync {
    /// Short platform name shown to the app ("kvm", "linuxu", ...).
    fn name(&self) -> &'static str;
    /// Writes raw bytes to the console.
    fn console_write(&self, bytes: &[u8]);
    /// Nanoseconds since the first instruction of the boot entry.
    fn monotonic_ns(&self) -> u64;
    /// A cheap raw timestamp (e.g. TSC ticks since boot) for measuring
    /// boot time without forcing clock calibration during boot.
    fn raw_timestamp(&self) -> u64 {
        self.monotonic_ns()
    }
    /// Converts a [`Platform::raw_timestamp`] to nanoseconds since boot.
    fn raw_to_ns(&self, raw: u64) -> u64 {
        raw
    }
    /// Nanoseconds since the Unix epoch.
    fn wall_clock_ns(&self) -> u64;
    /// Called with interrupts disabled when no thread can run: returns after
    /// an interrupt or once `deadline_ns` (monotonic) has passed.
    fn wait_for_event(&self, deadline_ns: Option<u64>);
    /// Disables interrupts (or their equivalent) and returns the old state.
    fn irq_save(&self) -> bool;
    fn irq_restore(&self, was_enabled: bool);
    /// Stops the machine; `code` reaches the host where the platform can.
    fn shutdown(&self, code: i32) -> !;
    /// Whether the host learns the exit code only from the console (VMs do;
    /// a Linux process has `exit_group`).
    fn needs_exit_marker(&self) -> bool {
        true
    }
    /// Makes the 4 KiB page at `addr` inaccessible (`guard`) or accessible
    /// again. Returns false when the platform cannot; stacks then have no
    /// guard page.
    fn set_guard_page(&self, _addr: u64, _guard: bool) -> bool {
        false
    }
    /// Makes the device registers at physical `[phys, phys + len)`
    /// accessible (identity-mapped, uncached). Returns false if it cannot.
    fn map_device(&self, _phys: u64, _len: u64) -> bool {
        false
    }
    /// Physical address behind a virtual one, if the platform has an MMU.
    fn virt_to_phys(&self, _vaddr: u64) -> Option<u64> {
        None
    }
    /// Extra facts for the boot log (clock source, interrupt controller).
    fn describe(&self, _out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        Ok(())
    }
}

struct Unset;
impl Platform for Unset {
    fn name(&self) -> &'static str {
        "none"
    }
    fn console_write(&self, _: &[u8]) {}
    fn monotonic_ns(&self) -> u64 {
        0
    }
    fn wall_clock_ns(&self) -> u64 {
        0
    }
    fn wait_for_event(&self, _: Option<u64>) {}
    fn irq_save(&self) -> bool {
        false
    }
    fn irq_restore(&self, _: bool) {}
    fn shutdown(&self, _: i32) -> ! {
        loop {
            core::hint::spin_loop();
        }
    }
}

static UNSET: Unset = Unset;
// A `&'static dyn Platform` is two words, so it is kept as a pointer to a
// `&'static dyn` that the platform owns.
static PLATFORM: AtomicUsize = AtomicUsize::new(0);

/// Installs the platform. Called once by the platform's entry code.
pub fn set_platform(p: &'static &'static dyn Platform) {
    PLATFORM.store(p as *const _ as usize, Ordering::Release);
}

#[allow(unsafe_code)]
pub fn platform() -> &'static dyn Platform {
    let p = PLATFORM.load(Ordering::Acquire);
    if p == 0 {
        return &UNSET;
    }
    // SAFETY: `set_platform` stored a pointer to a `&'static &'static dyn Platform`.
    unsafe { *(p as *const &'static dyn Platform) }
}

/// Interrupts off for as long as the guard lives.
pub struct IrqGuard(bool);

impl IrqGuard {
    pub fn new() -> Self {
        Self(platform().irq_save())
    }
}

impl Default for IrqGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        platform().irq_restore(self.0);
    }
}
