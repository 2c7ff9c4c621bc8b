//! Threads, shaped like `std::thread`.
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::time::Duration;
use unikit_kernel::sched::{self, Tid};

pub use unikit_kernel::sched::Error;

/// An owned permission to join a thread and get its result.
pub struct JoinHandle<T> {
    tid: Option<Tid>,
    result: Arc<spin::Mutex<Option<T>>>,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread to finish and returns what it returned.
    pub fn join(mut self) -> Result<T, Error> {
        let tid = self.tid.take().ok_or(Error::NoSuchThread)?;
        sched::join(tid)?;
        self.result.lock().take().ok_or(Error::NoSuchThread)
    }

    /// Whether the thread has returned (so `join` will not block).
    pub fn is_finished(&self) -> bool {
        self.result.lock().is_some()
    }

    /// The thread's identifier.
    pub fn id(&self) -> u64 {
        self.tid.unwrap_or(0)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(tid) = self.tid.take() {
            sched::detach(tid);
        }
    }
}

/// Thread factory, to set a name or a stack size.
#[derive(Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the default name and stack size.
    pub fn new() -> Self {
        Self::default()
    }
    /// Names the thread (shown in panics and exceptions).
    pub fn name(mut self, name: String) -> Self {
        self.name = Some(name);
        self
    }
    /// Sets the stack size in bytes (default 64 KiB).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }
    /// Starts the thread, failing if there is no memory for it.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let result = Arc::new(spin::Mutex::new(None));
        let slot = result.clone();
        let tid = sched::spawn(
            self.name.unwrap_or_else(|| String::from("thread")),
            self.stack_size.unwrap_or(sched::DEFAULT_STACK_SIZE),
            Box::new(move || {
                let v = f();
                *slot.lock() = Some(v);
            }),
        )?;
        Ok(JoinHandle { tid: Some(tid), result })
    }
}

/// Spawns a thread. Panics if there is no memory for its stack.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn thread")
}

/// Blocks the calling thread for at least `d`.
pub fn sleep(d: Duration) {
    crate::time::sleep(d);
}

/// Lets other ready threads run first.
pub fn yield_now() {
    sched::yield_now();
}

/// Identifier of the calling thread (the main thread is 1).
pub fn current_id() -> u64 {
    sched::current()
}

/// Name of the calling thread.
pub fn current_name() -> String {
    sched::current_name()
}
