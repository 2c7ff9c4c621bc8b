//! Blocking synchronisation built on the scheduler: wait queues and a
//! mutex whose waiters sleep instead of spinning.
use crate::platform::{platform, IrqGuard};
use crate::sched::{self, Tid};
use alloc::collections::VecDeque;
use core::ops::{Deref, DerefMut};

/// Threads waiting for a condition. The condition is checked under the
/// scheduler lock, so a notify between the check and the sleep is not lost.
pub struct WaitQueue {
    waiters: spin::Mutex<VecDeque<Tid>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub const fn new() -> Self {
        Self { waiters: spin::Mutex::new(VecDeque::new()) }
    }

    /// Sleeps until `cond()` is true. `cond` must not block or touch the
    /// scheduler (it runs with the scheduler lock held).
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        self.wait_until_deadline(&mut cond, None);
    }

    /// Like `wait_until` with a monotonic deadline; returns whether the
    /// condition became true (false: timed out).
    pub fn wait_until_deadline(&self, mut cond: impl FnMut() -> bool, deadline_ns: Option<u64>) -> bool {
        loop {
            let _irq = IrqGuard::new();
            let g = sched::lock_sched();
            if cond() {
                return true;
            }
            let me = sched::current_locked(&g);
            if let Some(d) = deadline_ns {
                if platform().monotonic_ns() >= d {
                    self.waiters.lock().retain(|&t| t != me);
                    return false;
                }
            }
            {
                let mut w = self.waiters.lock();
                if !w.contains(&me) {
                    w.push_back(me);
                }
            }
            sched::block_current_and_reschedule(g, deadline_ns);
        }
    }

    /// Wakes one waiter; returns whether there was one.
    pub fn notify_one(&self) -> bool {
        let _irq = IrqGuard::new();
        let mut g = sched::lock_sched();
        let next = self.waiters.lock().pop_front();
        match next {
            Some(t) => {
                sched::wake_locked(&mut g, t);
                true
            }
            None => false,
        }
    }

    pub fn notify_all(&self) {
        let _irq = IrqGuard::new();
        let mut g = sched::lock_sched();
        let all: VecDeque<Tid> = core::mem::take(&mut *self.waiters.lock());
        for t in all {
            sched::wake_locked(&mut g, t);
        }
    }
}

/// A mutex whose waiters sleep on a wait queue.
pub struct Mutex<T> {
    inner: spin::Mutex<T>,
    queue: WaitQueue,
}

pub struct MutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    queue: &'a WaitQueue,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value), queue: WaitQueue::new() }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        loop {
            if let Some(g) = self.inner.try_lock() {
                return MutexGuard { guard: Some(g), queue: &self.queue };
            }
            self.queue.wait_until(|| !self.inner.is_locked());
        }
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.inner.try_lock().map(|g| MutexGuard { guard: Some(g), queue: &self.queue })
    }

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
        self.queue.notify_one();
    }
}
