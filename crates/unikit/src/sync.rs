//! Synchronisation: a sleeping mutex, wait queues and atomics.
pub use alloc::sync::{Arc, Weak};
pub use core::sync::atomic;
pub use unikit_kernel::sync::{Mutex, MutexGuard, WaitQueue};
