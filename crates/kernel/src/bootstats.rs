//! Boot-time figures (`unikit.bootstats`): raw timestamps at the entry's
//! first instruction and at `main`, printed when the machine stops. Below
//! both `boot` and `exit`, so neither imports the other.
use crate::console::emergency_print;
use crate::platform::hal;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static BOOTSTATS: AtomicBool = AtomicBool::new(false);
static BOOT_RAW: AtomicU64 = AtomicU64::new(0);
static MAIN_RAW: AtomicU64 = AtomicU64::new(0);

pub(crate) fn set_boot_timestamp(raw: u64) {
    BOOT_RAW.store(raw, Ordering::Relaxed);
}

pub(crate) fn enable(on: bool) {
    BOOTSTATS.store(on, Ordering::Relaxed);
}

/// Called by the app runtime just before the app's `main` runs.
pub fn mark_main_entered() {
    MAIN_RAW.store(hal().clock.raw_timestamp(), Ordering::Relaxed);
}

/// Nanoseconds from the first boot instruction to `main`.
pub fn boot_time_ns() -> u64 {
    hal().clock.raw_to_ns(MAIN_RAW.load(Ordering::Relaxed).wrapping_sub(BOOT_RAW.load(Ordering::Relaxed)))
}

pub(crate) fn print_exit_stats() {
    if BOOTSTATS.load(Ordering::Relaxed) {
        let now = hal().clock.monotonic_ns();
        let main = boot_time_ns();
        emergency_print(format_args!(
            "[unikit] bootstats: entry_to_main_ns={} main_to_exit_ns={}\n",
            main,
            now.saturating_sub(main)
        ));
    }
}
