//! Time: a monotonic clock that starts at the first instruction of the boot
//! entry, wall-clock time, and sleeping.
use crate::platform::hal;

/// Nanoseconds since boot.
pub fn monotonic_ns() -> u64 {
    hal().clock.monotonic_ns()
}

/// Nanoseconds since the Unix epoch, as far as the platform knows.
pub fn wall_clock_ns() -> u64 {
    hal().clock.wall_clock_ns()
}

/// Blocks the calling thread for at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    crate::sched::sleep_until(monotonic_ns().saturating_add(ns));
}
