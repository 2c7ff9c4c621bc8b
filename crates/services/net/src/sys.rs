//! What the stack takes from the kernel: a clock, wait queues, events,
//! locks, threads, the device registry and the command line. In the guest
//! (`target_os = "none"`) they are the kernel's; on the host (unit tests)
//! they are std stand-ins with the same contracts, so the socket code that
//! the tests run is the code the unikernel runs.

#[cfg(target_os = "none")]
mod imp {
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use unikit_kernel::sched;

    pub use unikit_kernel::event::Event;
    pub use unikit_kernel::sync::{Mutex as SleepLock, WaitQueue};

    /// A lock held only for short, non-blocking stretches (the scheduler is
    /// cooperative and single-CPU, so it never spins in practice).
    pub type Lock<T> = spin::Mutex<T>;

    pub fn now_ns() -> u64 {
        unikit_kernel::time::monotonic_ns()
    }

    pub fn yield_now() {
        sched::yield_now();
    }

    /// Sleeps until `ev` is signalled or `deadline_ns` passes.
    pub fn wait_event(ev: &Event, deadline_ns: Option<u64>) {
        ev.wait(deadline_ns);
    }

    pub fn spawn(name: &str, f: Box<dyn FnOnce() + Send>) -> bool {
        match sched::spawn(String::from(name), sched::DEFAULT_STACK_SIZE, f) {
            Ok(tid) => {
                sched::detach(tid);
                true
            }
            Err(_) => false,
        }
    }

    pub fn net_devices() -> Vec<Arc<dyn super::NetDevice>> {
        unikit_kernel::dev::net_devices()
    }

    /// Memory not yet handed out by the frame allocator: what the heap can
    /// still grow into and thread stacks are taken from.
    pub fn free_memory() -> Option<u64> {
        Some(unikit_kernel::mem::stats().free_bytes)
    }

    pub fn kernel_options() -> impl Iterator<Item = &'static str> {
        unikit_kernel::boot::command_line().options.iter().map(|s| s.as_str())
    }

    pub fn log(args: core::fmt::Arguments) {
        if !unikit_kernel::boot::is_quiet() {
            unikit_kernel::console::_print(args);
        }
    }
}

#[cfg(not(target_os = "none"))]
mod imp {
    use std::boxed::Box;
    use std::sync::{Arc, Condvar, OnceLock};
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    pub struct Lock<T>(std::sync::Mutex<T>);

    impl<T> Lock<T> {
        pub const fn new(v: T) -> Self {
            Self(std::sync::Mutex::new(v))
        }
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    pub type SleepLock<T> = Lock<T>;

    pub fn now_ns() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1_000_000
    }

    pub fn yield_now() {
        std::thread::yield_now();
    }

    fn sleep_until(cv: &Condvar, g: std::sync::MutexGuard<'_, u64>, deadline_ns: Option<u64>) {
        let wait = deadline_ns.map(|d| d.saturating_sub(now_ns())).unwrap_or(1_000_000_000);
        let _ = cv.wait_timeout(g, Duration::from_nanos(wait)).unwrap();
    }

    /// Same contract as the kernel's `WaitQueue`: the condition is checked
    /// again after every wake-up, and no notify is lost.
    pub struct WaitQueue {
        generation: std::sync::Mutex<u64>,
        cv: Condvar,
    }

    impl WaitQueue {
        pub const fn new() -> Self {
            Self { generation: std::sync::Mutex::new(0), cv: Condvar::new() }
        }

        pub fn wait_until_deadline(&self, mut cond: impl FnMut() -> bool, deadline_ns: Option<u64>) -> bool {
            loop {
                let seen = *self.generation.lock().unwrap();
                if cond() {
                    return true;
                }
                if deadline_ns.is_some_and(|d| now_ns() >= d) {
                    return false;
                }
                let g = self.generation.lock().unwrap();
                if *g == seen {
                    sleep_until(&self.cv, g, deadline_ns);
                }
            }
        }

        pub fn notify_all(&self) {
            *self.generation.lock().unwrap() += 1;
            self.cv.notify_all();
        }
    }

    /// The kernel's `Event`: a flag plus waiters; a signal nobody waits for
    /// is kept for the next wait.
    pub struct Event {
        pending: std::sync::Mutex<u64>,
        cv: Condvar,
    }

    impl Default for Event {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Event {
        pub const fn new() -> Self {
            Self { pending: std::sync::Mutex::new(0), cv: Condvar::new() }
        }
        pub fn signal(&self) {
            *self.pending.lock().unwrap() = 1;
            self.cv.notify_all();
        }
        pub fn wait(&self, deadline_ns: Option<u64>) -> bool {
            loop {
                let mut g = self.pending.lock().unwrap();
                if *g != 0 {
                    *g = 0;
                    return true;
                }
                if deadline_ns.is_some_and(|d| now_ns() >= d) {
                    return false;
                }
                sleep_until(&self.cv, g, deadline_ns);
            }
        }
    }

    pub fn wait_event(ev: &Event, deadline_ns: Option<u64>) {
        ev.wait(deadline_ns);
    }

    impl unikit_kernel::dev::Doorbell for Event {
        fn ring(&self) {
            self.signal();
        }
    }

    pub fn spawn(name: &str, f: Box<dyn FnOnce() + Send>) -> bool {
        std::thread::Builder::new().name(name.into()).spawn(f).is_ok()
    }

    /// No device registry on the host: the global stack finds no device.
    pub fn net_devices() -> Vec<Arc<dyn super::NetDevice>> {
        Vec::new()
    }

    /// The host's memory is not the stack's to budget.
    pub fn free_memory() -> Option<u64> {
        None
    }

    pub fn kernel_options() -> impl Iterator<Item = &'static str> {
        core::iter::empty()
    }

    pub fn log(_args: core::fmt::Arguments) {}
}

pub use imp::*;
pub use unikit_kernel::dev::{DevError, Doorbell, NetDevice};

/// The stack's own doorbell: what its devices ring and socket calls kick,
/// and what the net thread sleeps on. Leaked: devices keep a `'static`
/// reference (a stack lives as long as the program in practice).
pub fn new_doorbell() -> &'static Event {
    alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()))
}
