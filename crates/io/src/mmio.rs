//! MMIO windows.
use crate::Pod;
use core::mem::{align_of, size_of};

/// A window `[base, base + len)` of device registers, mapped (uncached) in
/// the address space. Reads and writes are volatile, typed, and checked to
/// lie inside the window and be naturally aligned; accesses that do not are
/// refused (`None`/`false`), never performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoMem {
    base: usize,
    len: usize,
}

impl IoMem {
    /// The window at virtual address `base`, `len` bytes.
    ///
    /// # Safety
    /// `[base, base + len)` must be mapped device memory (or memory that is
    /// valid for volatile access) for as long as any copy of the handle
    /// lives, and must not alias memory Rust code owns.
    pub const unsafe fn new(base: usize, len: usize) -> Self {
        Self { base, len }
    }

    /// Virtual address of the window's first byte (for log lines).
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The part `[off, off + len)` of this window, if inside it.
    pub fn sub(&self, off: usize, len: usize) -> Option<IoMem> {
        let end = off.checked_add(len)?;
        (end <= self.len).then(|| IoMem { base: self.base + off, len })
    }

    fn check<T>(&self, off: usize) -> Option<usize> {
        let end = off.checked_add(size_of::<T>())?;
        let addr = self.base.checked_add(off)?;
        (end <= self.len && addr.is_multiple_of(align_of::<T>())).then_some(addr)
    }

    /// Reads the `T` at `off` (one volatile access), if inside and aligned.
    pub fn read<T: Pod>(&self, off: usize) -> Option<T> {
        let addr = self.check::<T>(off)?;
        // SAFETY: `addr..addr + size_of::<T>()` is inside the window (checked),
        // which `new`'s contract makes valid for volatile access; it is
        // aligned (checked), and any bit pattern is a valid `T` (`Pod`).
        Some(unsafe { core::ptr::read_volatile(addr as *const T) })
    }

    /// Writes `v` at `off` (one volatile access); `false` (and nothing
    /// written) if outside or misaligned.
    pub fn write<T: Pod>(&self, off: usize, v: T) -> bool {
        let Some(addr) = self.check::<T>(off) else { return false };
        // SAFETY: as in `read`: inside the window, aligned.
        unsafe { core::ptr::write_volatile(addr as *mut T, v) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bounds_and_alignment() {
        let mut mem = [0u64; 4];
        // SAFETY: `mem` outlives `w` and is only touched through it below.
        let w = unsafe { IoMem::new(mem.as_mut_ptr() as usize, 32) };
        assert!(w.write::<u32>(4, 0xdead_beef));
        assert_eq!(w.read::<u32>(4), Some(0xdead_beef));
        assert_eq!(w.read::<u64>(0), Some(0xdead_beef_0000_0000));
        assert_eq!(w.read::<u32>(30), None); // crosses the end
        assert_eq!(w.read::<u32>(2), None); // misaligned
        assert_eq!(w.read::<u8>(usize::MAX), None);
        assert!(!w.write::<u64>(32, 1));
        let s = w.sub(8, 8).unwrap();
        assert!(s.write::<u64>(0, 7));
        assert_eq!(s.read::<u64>(8), None);
        assert_eq!(w.sub(30, 4), None);
        assert_eq!(w.sub(usize::MAX, 2), None);
        assert_eq!(mem[1], 7);
    }
}
