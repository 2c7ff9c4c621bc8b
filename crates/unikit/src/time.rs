//! Clocks and sleeping, shaped like `std::time`.
pub use core::time::Duration;
use unikit_kernel::time as ktime;

/// A point on the monotonic clock (which starts at boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The current time of the monotonic clock.
    pub fn now() -> Self {
        Self(ktime::monotonic_ns())
    }
    /// Time since `self`.
    pub fn elapsed(&self) -> Duration {
        Self::now().duration_since(*self)
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
    /// `self + d`, or `None` on overflow.
    pub fn checked_add(&self, d: Duration) -> Option<Instant> {
        u64::try_from(d.as_nanos()).ok().and_then(|n| self.0.checked_add(n)).map(Instant)
    }
    /// Time since boot (the first instruction of the kernel).
    pub fn since_boot(&self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.checked_add(d).expect("overflow when adding duration to instant")
    }
}

impl core::ops::Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, o: Instant) -> Duration {
        self.duration_since(o)
    }
}

/// Wall-clock time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemTime(u64);

/// 1970-01-01 00:00:00 UTC.
pub const UNIX_EPOCH: SystemTime = SystemTime(0);

/// `duration_since` was given a later time; holds how much later.
#[derive(Clone, Copy, Debug)]
pub struct SystemTimeError(pub Duration);

impl SystemTime {
    /// 1970-01-01 00:00:00 UTC, as std names it.
    pub const UNIX_EPOCH: SystemTime = UNIX_EPOCH;
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(ktime::wall_clock_ns())
    }
    /// Time from `earlier` to `self`, or an error if `earlier` is later.
    pub fn duration_since(&self, earlier: SystemTime) -> Result<Duration, SystemTimeError> {
        if self.0 >= earlier.0 {
            Ok(Duration::from_nanos(self.0 - earlier.0))
        } else {
            Err(SystemTimeError(Duration::from_nanos(earlier.0 - self.0)))
        }
    }
    /// Wall-clock time since `self`.
    pub fn elapsed(&self) -> Result<Duration, SystemTimeError> {
        Self::now().duration_since(*self)
    }
}

/// Puts the calling thread to sleep for at least `d`.
pub fn sleep(d: Duration) {
    ktime::sleep_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
}

/// Time from the first boot instruction to the app's `main`.
pub fn boot_time() -> Duration {
    Duration::from_nanos(unikit_kernel::boot::boot_time_ns())
}
