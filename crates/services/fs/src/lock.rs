//! The lock the file systems use. In a guest it is the kernel's sleeping
//! mutex (file-system calls may block on a device while holding it); on
//! the host (unit tests) there is no scheduler and it is a spin lock.
#[cfg(target_os = "none")]
pub(crate) type Lock<T> = unikit_kernel::sync::Mutex<T>;
#[cfg(not(target_os = "none"))]
pub(crate) type Lock<T> = spin::Mutex<T>;
