//! Blocking synchronisation built on the scheduler: wait queues and a
//! mutex whose waiters sleep instead of spinning.
use crate::platform::{IrqGuard, hal};
use crate::sched::{self, Tid};
use alloc::collections::VecDeque;
use core::ops::{Deref, DerefMut};

/// Threads waiting for a condition. The condition is re-checked after the
/// waiter is registered and marked blocked, so a notify that races with the
/// check is never lost; conditions run with no scheduler lock held.
pub struct WaitQueue {
    waiters: spin::Mutex<VecDeque<Tid>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty wait queue.
    pub const fn new() -> Self {
        Self { waiters: spin::Mutex::new(VecDeque::new()) }
    }

    /// Sleeps until `cond()` is true.
    pub fn wait_until(&self, cond: impl FnMut() -> bool) {
        self.wait_until_deadline(cond, None);
    }

    /// Like `wait_until` with a monotonic deadline; returns whether the
    /// condition became true (false: timed out).
    pub fn wait_until_deadline(&self, mut cond: impl FnMut() -> bool, deadline_ns: Option<u64>) -> bool {
        let me = sched::current();
        loop {
            if cond() {
                return true;
            }
            if deadline_ns.is_some_and(|d| hal().clock.monotonic_ns() >= d) {
                return false;
            }
            self.enqueue(me);
            sched::prepare_block(deadline_ns);
            if cond() {
                sched::cancel_block();
                self.remove(me);
                return true;
            }
            sched::commit_block();
            self.remove(me); // woken by a timeout rather than a notify
        }
    }

    fn enqueue(&self, tid: Tid) {
        let _irq = IrqGuard::new();
        let mut w = self.waiters.lock();
        if !w.contains(&tid) {
            w.push_back(tid);
        }
    }

    fn remove(&self, tid: Tid) {
        let _irq = IrqGuard::new();
        self.waiters.lock().retain(|&t| t != tid);
    }

    /// Wakes one waiter; returns whether there was one.
    pub fn notify_one(&self) -> bool {
        let next = {
            let _irq = IrqGuard::new();
            self.waiters.lock().pop_front()
        };
        match next {
            Some(t) => {
                sched::wake(t);
                true
            }
            None => false,
        }
    }

    /// Wakes every waiting thread.
    pub fn notify_all(&self) {
        let all = {
            let _irq = IrqGuard::new();
            core::mem::take(&mut *self.waiters.lock())
        };
        for t in all {
            sched::wake(t);
        }
    }

    /// Whether any thread waits.
    pub fn has_waiters(&self) -> bool {
        let _irq = IrqGuard::new(); // notify takes this lock in interrupt handlers
        !self.waiters.lock().is_empty()
    }
}

/// A mutex whose waiters sleep on a wait queue.
pub struct Mutex<T> {
    inner: spin::Mutex<T>,
    queue: WaitQueue,
}

/// Holds the lock of a [`Mutex`]; unlocks when dropped.
pub struct MutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    queue: &'a WaitQueue,
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value), queue: WaitQueue::new() }
    }

    /// Blocks (sleeping, not spinning) until the lock is free, then takes it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            if let Some(g) = self.inner.try_lock() {
                return MutexGuard { guard: Some(g), queue: &self.queue };
            }
            self.queue.wait_until(|| !self.inner.is_locked());
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.inner.try_lock().map(|g| MutexGuard { guard: Some(g), queue: &self.queue })
    }

    /// The value, giving up the mutex.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().unwrap()
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().unwrap()
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.guard.take();
        if self.queue.has_waiters() {
            self.queue.notify_one();
        }
    }
}
