//! Memory shared with a device or a hypervisor.
//!
//! Device addresses: the x86 VM platform identity-maps RAM, so by default a
//! device address is the virtual address. A platform whose mapping differs
//! (or which puts an IOMMU in front) calls [`set_dma_translate`] once at
//! boot, before any driver allocates, with its virtual-to-device function;
//! nothing here knows the platform.
use crate::Pod;
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

static TRANSLATE: spin::Once<fn(usize) -> u64> = spin::Once::new();

/// Installs the platform's virtual-to-device address translation (first
/// call wins). Without it the device address is the virtual address.
pub fn set_dma_translate(f: fn(usize) -> u64) {
    TRANSLATE.call_once(|| f);
}

/// Device address of the memory at virtual address `va`.
pub fn dma_addr_of(va: usize) -> u64 {
    match TRANSLATE.get() {
        Some(f) => f(va),
        None => va as u64,
    }
}

/// A block of memory a device or hypervisor reads and writes at any time:
/// either owned (zeroed heap memory with a fixed address, freed on drop)
/// or a page the platform handed over (a Xen ring, the grant table).
///
/// The device is not trusted and not synchronised with: every access is a
/// volatile access (or an atomic) of a [`Pod`] type inside the region, so
/// whatever the device writes, reading it is sound; offsets are checked and
/// a bad one panics (offsets are the driver's own arithmetic: a bad one is a
/// driver bug; values read from the device must be range-checked before
/// they become offsets).
pub struct DmaRegion {
    ptr: NonNull<u8>,
    len: usize,
    /// `Some` when the memory is ours to free.
    owned: Option<Layout>,
}

// SAFETY: the region is raw memory accessed only through volatile accesses
// and atomics, never through references to non-atomic data; moving the
// handle to another thread is sound.
unsafe impl Send for DmaRegion {}
// SAFETY: as above: shared access is what the region is for (the device
// shares it too); `&self` methods only do volatile/atomic accesses.
unsafe impl Sync for DmaRegion {}

impl DmaRegion {
    /// `len` zeroed bytes aligned to `align` (a power of two). `None` if out
    /// of memory or the layout is invalid.
    pub fn alloc(len: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(len.max(1), align).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(Self { ptr, len, owned: Some(layout) })
    }

    /// The `len` bytes at `ptr`, which the platform mapped and shares with
    /// a device or hypervisor for the rest of the run (never freed); `None`
    /// if `ptr` is null.
    ///
    /// # Safety
    /// `[ptr, ptr + len)` must be valid for reads and writes for the rest
    /// of the program, and no Rust reference may point into it.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> Option<Self> {
        Some(Self { ptr: NonNull::new(ptr)?, len, owned: None })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Virtual address of byte `off` (for a hypercall that takes one, or a
    /// frame lookup); not a way in.
    pub fn virt_addr(&self, off: usize) -> usize {
        self.ptr.as_ptr() as usize + off
    }

    /// Device address of byte `off` (see [`set_dma_translate`]).
    pub fn dma_addr(&self, off: usize) -> u64 {
        dma_addr_of(self.virt_addr(off))
    }

    /// Pointer to `[off, off + size)` after checking it lies inside and is
    /// aligned to `align`.
    fn at(&self, off: usize, size: usize, align: usize) -> *mut u8 {
        // Constant messages: formatting them would pull `core::fmt` code
        // into every image for a driver bug that should never happen.
        let ok = off.checked_add(size).is_some_and(|e| e <= self.len);
        assert!(ok, "DMA access outside its region");
        let p = self.ptr.as_ptr().wrapping_add(off);
        assert!((p as usize).is_multiple_of(align), "misaligned DMA access");
        p
    }

    /// Reads the `T` at `off` (one volatile access).
    pub fn read<T: Pod>(&self, off: usize) -> T {
        let p = self.at(off, size_of::<T>(), align_of::<T>());
        // SAFETY: inside the region and aligned (checked by `at`); the
        // region is valid memory (`alloc`/`from_raw`); any bits are a `T`.
        unsafe { core::ptr::read_volatile(p as *const T) }
    }

    /// Writes `v` at `off` (one volatile access).
    pub fn write<T: Pod>(&self, off: usize, v: T) {
        let p = self.at(off, size_of::<T>(), align_of::<T>());
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(p as *mut T, v) }
    }

    /// Copies bytes `[off, off + out.len())` out.
    pub fn read_bytes(&self, off: usize, out: &mut [u8]) {
        let p = self.at(off, out.len(), 1);
        // SAFETY: the source range is inside the region (checked) and the
        // destination is a distinct `&mut` slice; bytes have no invalid
        // values, so a concurrent device write only changes what is copied.
        unsafe { core::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) }
    }

    /// Copies `data` in at `off`.
    pub fn write_bytes(&self, off: usize, data: &[u8]) {
        let p = self.at(off, data.len(), 1);
        // SAFETY: as in `read_bytes`, the other way round.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) }
    }

    /// Bytes `[off, off + len)` lent as a slice, for zero-copy hand-off of
    /// a buffer the device has given back (bounds checked).
    ///
    /// # Safety
    /// For as long as the slice lives, the device must not access the range
    /// (it is not posted to it) and nothing may write it through this region.
    pub unsafe fn lend(&self, off: usize, len: usize) -> &[u8] {
        let p = self.at(off, len, 1);
        // SAFETY: inside the region (checked); no writer meanwhile (caller).
        unsafe { core::slice::from_raw_parts(p, len) }
    }

    /// Bytes `[off, off + len)` lent as a mutable slice, to fill a buffer in
    /// place before it is posted to the device (bounds checked).
    ///
    /// # Safety
    /// For as long as the slice lives, the device must not access the range
    /// and nothing else may read or write it.
    #[allow(clippy::mut_from_ref)] // the exclusivity is the caller's contract
    pub unsafe fn lend_mut(&self, off: usize, len: usize) -> &mut [u8] {
        let p = self.at(off, len, 1);
        // SAFETY: inside the region (checked); exclusive for the slice's
        // lifetime (caller).
        unsafe { core::slice::from_raw_parts_mut(p, len) }
    }

    /// Sets bytes `[off, off + len)` to `byte`.
    pub fn fill(&self, off: usize, len: usize, byte: u8) {
        let p = self.at(off, len, 1);
        // SAFETY: inside the region (checked).
        unsafe { core::ptr::write_bytes(p, byte, len) }
    }
}

macro_rules! atomic_at {
    ($name:ident, $t:ty, $prim:ty) => {
        impl DmaRegion {
            #[doc = concat!("The `", stringify!($t), "` at `off` (shared with the other side, e.g. a ring index).")]
            pub fn $name(&self, off: usize) -> &$t {
                let p = self.at(off, size_of::<$prim>(), align_of::<$t>());
                // SAFETY: inside the region and aligned for the atomic
                // (checked); the memory lives as long as `self`; all access
                // from this side to shared words goes through atomics or
                // volatile accesses, never through plain references.
                unsafe { <$t>::from_ptr(p as *mut $prim) }
            }
        }
    };
}
atomic_at!(atomic_u8, AtomicU8, u8);
atomic_at!(atomic_u16, AtomicU16, u16);
atomic_at!(atomic_u32, AtomicU32, u32);
atomic_at!(atomic_u64, AtomicU64, u64);

impl Drop for DmaRegion {
    fn drop(&mut self) {
        if let Some(layout) = self.owned {
            // SAFETY: allocated in `alloc` with this layout. Drivers reset
            // the device before dropping memory they gave it.
            unsafe { dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;

    #[test]
    fn typed_access_and_bounds() {
        let r = DmaRegion::alloc(64, 4096).unwrap();
        assert_eq!(r.virt_addr(0) % 4096, 0);
        assert_eq!(r.read::<u64>(56), 0);
        r.write::<u32>(8, 0x1234_5678);
        assert_eq!(r.read::<u16>(8), 0x5678);
        r.write_bytes(60, &[1, 2, 3, 4]);
        let mut out = [0u8; 4];
        r.read_bytes(60, &mut out);
        assert_eq!(out, [1, 2, 3, 4]);
        r.atomic_u32(8).fetch_add(1, Ordering::Relaxed);
        assert_eq!(r.read::<u32>(8), 0x1234_5679);
        r.fill(0, 64, 0xff);
        assert_eq!(r.read::<u64>(0), u64::MAX);
        assert_eq!(r.dma_addr(16), r.virt_addr(16) as u64);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_range_panics_instead_of_touching_memory() {
        let r = DmaRegion::alloc(16, 8).unwrap();
        r.read::<u64>(12);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_panics() {
        let r = DmaRegion::alloc(16, 8).unwrap();
        r.read::<u32>(2);
    }
}
