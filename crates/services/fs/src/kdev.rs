//! The kernel's device interface. In a guest (`target_os = "none"`) it is
//! `unikit_kernel::dev`; on the host (unit tests) the kernel is not linked,
//! because its global allocator would take over the test binary's heap,
//! and this module carries the same definitions (the pattern
//! `unikit-drivers` uses). Keep them in step with `kernel/src/dev.rs`.
#[cfg(target_os = "none")]
pub use unikit_kernel::dev::{BlockDevice, DevError, block_devices, check_block_request};

#[cfg(not(target_os = "none"))]
pub use host::*;

#[cfg(not(target_os = "none"))]
mod host {
    use alloc::sync::Arc;
    use alloc::vec::Vec;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum DevError {
        WouldBlock,
        BadLength,
        OutOfRange,
        Io,
        Broken(&'static str),
        ReadOnly,
    }

    pub trait BlockDevice: Send + Sync {
        fn name(&self) -> &str;
        fn block_size(&self) -> usize;
        fn num_blocks(&self) -> u64;
        fn read_only(&self) -> bool;
        fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError>;
        fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError>;
        fn flush(&self) -> Result<(), DevError>;
    }

    static BLOCK: spin::Mutex<Vec<Arc<dyn BlockDevice>>> = spin::Mutex::new(Vec::new());

    /// Host stand-in for the kernel's registry (tests register here).
    pub fn register_block(dev: Arc<dyn BlockDevice>) {
        BLOCK.lock().push(dev);
    }

    pub fn block_devices() -> Vec<Arc<dyn BlockDevice>> {
        BLOCK.lock().clone()
    }

    pub fn check_block_request(
        dev: &dyn BlockDevice,
        block: u64,
        len: usize,
    ) -> Result<(), DevError> {
        let bs = dev.block_size();
        if len == 0 || !len.is_multiple_of(bs) {
            return Err(DevError::BadLength);
        }
        let n = (len / bs) as u64;
        match block.checked_add(n) {
            Some(end) if end <= dev.num_blocks() => Ok(()),
            _ => Err(DevError::OutOfRange),
        }
    }
}
