//! Events: a flag plus a wait queue. Interrupt handlers (or the platform's
//! idle loop, on linuxu) signal them; threads wait on them. A signal that
//! arrives while nobody waits is remembered until the next wait.
use crate::dev::Doorbell;
use crate::sync::WaitQueue;
use core::sync::atomic::{AtomicBool, Ordering};

/// A sticky wakeup flag: `signal` (also from interrupt handlers) sets it,
/// `wait` blocks until it is set and clears it, so no signal is lost.
pub struct Event {
    pending: AtomicBool,
    wq: WaitQueue,
    /// Also rung on every signal: how a device's interrupt event reaches
    /// the doorbell of the service that uses the device.
    forward: spin::Once<&'static dyn Doorbell>,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// A cleared event with no forward.
    pub const fn new() -> Self {
        Self { pending: AtomicBool::new(false), wq: WaitQueue::new(), forward: spin::Once::new() }
    }

    /// Marks the event and wakes its waiters. Safe in interrupt handlers:
    /// every lock it takes is held elsewhere only with interrupts off.
    pub fn signal(&self) {
        self.pending.store(true, Ordering::Release);
        self.wq.notify_all();
        if let Some(d) = self.forward.get() {
            d.ring();
        }
    }

    /// Rings `doorbell` on every later signal (set once: a device has one
    /// user; later calls are ignored). A signal already pending is passed on.
    pub fn forward_to(&self, doorbell: &'static dyn Doorbell) {
        self.forward.call_once(|| doorbell);
        if self.pending.load(Ordering::Acquire) {
            doorbell.ring();
        }
    }

    /// Waits until signalled or until the monotonic `deadline_ns`; returns
    /// whether it was signalled, and clears the signal.
    pub fn wait(&self, deadline_ns: Option<u64>) -> bool {
        // Consume the signal in the same step that observes it: clearing it
        // afterwards would lose a signal that lands in between.
        self.wq.wait_until_deadline(|| self.pending.swap(false, Ordering::AcqRel), deadline_ns)
    }

    /// Clears and returns the signal without waiting.
    pub fn take(&self) -> bool {
        self.pending.swap(false, Ordering::AcqRel)
    }
}
