//! The kernel's device interface, as this crate uses it.
pub use unikit_kernel::dev::{BlockDevice, DevError, block_devices, check_block_request};
