//! Memory the device reads and writes. The one place that knows how a
//! driver pointer becomes a device (bus) address: the kvm platform
//! identity-maps RAM (heap included), so it is the pointer's value. A
//! platform with a different mapping (or an IOMMU) changes [`dma_addr`].
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::ptr::NonNull;

/// Device address of driver memory at `ptr`.
#[inline]
pub fn dma_addr(ptr: *const u8) -> u64 {
    ptr as u64
}

/// A zeroed heap block with a fixed address, shared with a device. Access
/// goes through raw pointers only (the device may write it at any time).
pub struct DmaBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: DmaBuf is a raw block of memory; users synchronise access.
unsafe impl Send for DmaBuf {}
// SAFETY: as above.
unsafe impl Sync for DmaBuf {}

impl DmaBuf {
    pub fn new(len: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(len.max(1), align).ok()?;
        // SAFETY: layout has non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(Self { ptr, layout })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn is_empty(&self) -> bool {
        false // never: `new` allocates at least one byte
    }

    pub fn addr(&self, off: usize) -> u64 {
        dma_addr(self.as_ptr().wrapping_add(off))
    }

    /// Copies `out.len()` bytes from offset `off` (panics if out of range:
    /// callers pass lengths they have checked).
    pub fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off.checked_add(out.len()).is_some_and(|e| e <= self.len()));
        // SAFETY: the range is inside the allocation (checked above); the
        // bytes may be written by the device concurrently only if it breaks
        // the protocol, which cannot make this copy unsound for `u8`s.
        unsafe { core::ptr::copy_nonoverlapping(self.as_ptr().add(off), out.as_mut_ptr(), out.len()) }
    }

    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off.checked_add(data.len()).is_some_and(|e| e <= self.len()));
        // SAFETY: the range is inside the allocation (checked above).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(off), data.len()) }
    }

    pub fn fill(&self, off: usize, len: usize, byte: u8) {
        assert!(off.checked_add(len).is_some_and(|e| e <= self.len()));
        // SAFETY: the range is inside the allocation (checked above).
        unsafe { core::ptr::write_bytes(self.as_ptr().add(off), byte, len) }
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. Drivers reset the
        // device before dropping memory it was given.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
