//! Memory: the physical frame allocator and the kernel heap.
//!
//! This module may use `unsafe`: it turns physical memory described by the
//! platform into Rust memory (the frame bitmap, heap arenas, stacks).
#![allow(unsafe_code)]

pub mod frames;
pub mod heap;

use frames::{FRAME_SIZE, FrameAllocator};
use spin::Mutex;

pub use hal::Region;

static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);
#[cfg(feature = "user")]
/// Where the frame allocator's first search started: below it, RAM is
/// kept free as long as possible (see `init`).
static LOW_END: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static TOTAL_BYTES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Why memory could not be set up.
#[derive(Debug)]
pub enum InitError {
    /// No usable region is large enough for the frame bitmap.
    NoRoomForBitmap,
}

/// Sets up the frame allocator over `usable` RAM minus `reserved`.
///
/// # Safety
/// `usable` must be RAM that is identity mapped (or, on linuxu, mapped at
/// those addresses) and that nobody else uses, except the `reserved` ranges.
pub(crate) unsafe fn init(usable: &[Region], reserved: &[Region]) -> Result<(), InitError> {
    let lo = usable.iter().map(|r| r.start).min().unwrap_or(0) / FRAME_SIZE * FRAME_SIZE;
    let hi = usable.iter().map(|r| r.end).max().unwrap_or(0);
    let nframes = ((hi.saturating_sub(lo)) / FRAME_SIZE) as usize;
    let bytes = (FrameAllocator::bitmap_words(nframes) * 8) as u64;
    let bytes = bytes.div_ceil(FRAME_SIZE) * FRAME_SIZE;
    // The bitmap goes in the first usable, unreserved hole big enough for it.
    let mut spot = None;
    'regions: for r in usable {
        let mut start = (r.start.div_ceil(FRAME_SIZE) * FRAME_SIZE).max(FRAME_SIZE); // page 0 stays unmapped
        while start + bytes <= r.end {
            let cand = Region::new(start, start + bytes);
            if let Some(clash) = reserved.iter().filter(|x| x.overlaps(&cand)).map(|x| x.end).max() {
                start = clash.div_ceil(FRAME_SIZE) * FRAME_SIZE;
                continue;
            }
            spot = Some(cand);
            break 'regions;
        }
    }
    let spot = spot.ok_or(InitError::NoRoomForBitmap)?;
    // SAFETY: `spot` is usable RAM outside every reserved range (caller's
    // contract), and from here on it belongs to the bitmap alone.
    let bitmap = unsafe { core::slice::from_raw_parts_mut(spot.start as *mut u64, (spot.len() / 8) as usize) };
    let mut fa = FrameAllocator::new(bitmap, lo, nframes);
    for r in usable {
        fa.add_free(r.start, r.end);
    }
    for r in reserved {
        fa.reserve(r.start, r.end);
    }
    fa.reserve(spot.start, spot.end);
    fa.reserve(0, FRAME_SIZE); // never hand out page 0: null must stay invalid
    // Allocate from the middle of RAM first: low RAM stays free longest for
    // a Linux program linked at a fixed low address (0x400000), whose pages
    // must be those very frames (`claim_frames`). At most 256 MiB up: a
    // boot entry may map only the first GiB until the platform's bring-up.
    #[cfg(feature = "user")]
    {
        let low_end = half_of_ram(usable).min(lo + (256 << 20));
        fa.start_search_at(low_end);
        LOW_END.store(low_end, core::sync::atomic::Ordering::Relaxed);
    }
    TOTAL_BYTES.store(usable.iter().map(|r| r.len()).sum(), core::sync::atomic::Ordering::Relaxed);
    *FRAMES.lock() = Some(fa);
    Ok(())
}

#[cfg(feature = "user")]
/// The address below which half of the usable RAM lies.
fn half_of_ram(usable: &[Region]) -> u64 {
    let total: u64 = usable.iter().map(|r| r.len()).sum();
    let mut rest = total / 2;
    // No heap yet: walk the regions in address order without sorting a copy.
    let mut at = 0;
    loop {
        let Some(r) = usable.iter().filter(|r| r.start >= at && !r.is_empty()).min_by_key(|r| r.start) else {
            return at;
        };
        if r.len() >= rest {
            return r.start + rest;
        }
        rest -= r.len();
        at = r.end;
    }
}

/// Allocates `n` contiguous frames aligned to `align` frames.
pub fn alloc_frames(n: usize, align: usize) -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc(n, align)
}

#[cfg(feature = "user")]
/// Takes the `n` frames at `addr` exactly (a program linked at fixed
/// addresses inside the kernel's identity map); false if one is in use or
/// is not RAM.
pub fn claim_frames(addr: u64, n: usize) -> bool {
    FRAMES.lock().as_mut().is_some_and(|f| f.claim(addr, n))
}

#[cfg(feature = "user")]
/// Whether `addr` lies in the RAM the frame allocator manages.
pub fn is_ram(addr: u64) -> bool {
    FRAMES.lock().as_ref().is_some_and(|f| f.contains(addr))
}

#[cfg(feature = "user")]
/// Moves an initrd that a loader put in low RAM (Xen's PVH builder puts it
/// right after the kernel) to frames further up, and frees its old frames:
/// low RAM is where a Linux program linked at 0x400000 must go. Returns
/// the initrd's new place (the old one when it stays).
pub fn relocate_low(data: &'static [u8]) -> &'static [u8] {
    let start = data.as_ptr() as u64;
    let end = start + data.len() as u64;
    if data.is_empty() || start >= LOW_END.load(core::sync::atomic::Ordering::Relaxed) {
        return data;
    }
    let n = (data.len() as u64).div_ceil(FRAME_SIZE) as usize;
    let Some(new) = FRAMES.lock().as_mut().and_then(|f| f.alloc_top(n)) else { return data };
    // SAFETY: `new` is `n` fresh, identity-mapped frames, ours alone; the
    // source is the initrd the boot entry handed over (readable, and
    // never written); the two do not overlap (the new frames were free).
    let moved = unsafe {
        core::ptr::copy_nonoverlapping(data.as_ptr(), new as *mut u8, data.len());
        core::slice::from_raw_parts(new as *const u8, data.len())
    };
    // The old copy's frames are freed with the boot data (`reclaim`).
    OLD_INITRD.call_once(|| Region::new(start, end));
    moved
}

#[cfg(feature = "user")]
/// Where the initrd was before `relocate_low` moved it.
static OLD_INITRD: spin::Once<Region> = spin::Once::new();

#[cfg(feature = "user")]
/// The boot's reclaimable and reserved ranges, kept for `reclaim_boot_data`.
static BOOT_RANGES: Mutex<([Region; 4], [Region; 8])> = Mutex::new(([Region::new(0, 0); 4], [Region::new(0, 0); 8]));

#[cfg(feature = "user")]
/// Remembers the boot data that may be freed later (no heap yet: copies
/// into fixed arrays; ranges beyond them are simply never freed).
pub(crate) fn keep_boot_data(reclaimable: &[Region], reserved: &[Region]) {
    let mut b = BOOT_RANGES.lock();
    for (d, s) in b.0.iter_mut().zip(reclaimable) {
        *d = *s;
    }
    for (d, s) in b.1.iter_mut().zip(reserved) {
        *d = *s;
    }
    if reserved.len() > b.1.len() {
        b.0 = [Region::new(0, 0); 4]; // cannot tell what is shared: free nothing
    }
}

#[cfg(feature = "user")]
/// Frees the whole frames of the boot data the platform no longer needs
/// (and of an initrd `relocate_low` moved), where no range still in use
/// touches them.
pub(crate) fn reclaim_boot_data() {
    let (regions, reserved) = *BOOT_RANGES.lock();
    let old = OLD_INITRD.get().copied();
    let gone = |x: &Region| x.is_empty() || regions.contains(x) || Some(*x) == old;
    for r in regions.iter().chain(old.iter()).filter(|r| !r.is_empty()) {
        // Frames touching the range: a frame shared with another range that
        // is gone too is free; one shared with a range still in use is not.
        let mut f = r.start / FRAME_SIZE * FRAME_SIZE;
        while f < r.end {
            let frame = Region::new(f, f + FRAME_SIZE);
            let in_use = reserved.iter().filter(|x| !gone(x)).any(|x| x.overlaps(&frame));
            let done = regions.iter().chain(old.iter()).take_while(|x| *x != r).any(|x| x.overlaps(&frame));
            if !in_use && !done && f != 0 && is_ram(f) {
                free_frames(f, 1);
            }
            f += FRAME_SIZE;
        }
    }
}

/// Allocates one zeroed frame.
pub fn alloc_zeroed_frame() -> Option<u64> {
    let f = alloc_frames(1, 1)?;
    // SAFETY: the frame was just handed to us and is mapped (init contract).
    unsafe { core::ptr::write_bytes(f as *mut u8, 0, FRAME_SIZE as usize) };
    Some(f)
}

/// Returns `n` frames starting at `addr` to the frame allocator.
pub fn free_frames(addr: u64, n: usize) {
    if let Some(fa) = FRAMES.lock().as_mut() {
        fa.dealloc(addr, n);
    }
}

/// Memory figures for the boot log and the app.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// RAM the platform reported as usable.
    pub total_bytes: u64,
    /// Frames not yet handed out (heap arenas count as used).
    pub free_bytes: u64,
    /// Bytes the heap has claimed from the frame allocator.
    pub heap_bytes: u64,
}

/// Current memory figures.
pub fn stats() -> Stats {
    let free = FRAMES.lock().as_ref().map(|f| f.free_frames()).unwrap_or(0) as u64 * FRAME_SIZE;
    Stats {
        total_bytes: TOTAL_BYTES.load(core::sync::atomic::Ordering::Relaxed),
        free_bytes: free,
        heap_bytes: heap::claimed_bytes(),
    }
}

/// Physical address behind `vaddr`, from the platform's MMU if it has one.
pub fn virt_to_phys(vaddr: u64) -> Option<u64> {
    crate::hal().memory.virt_to_phys(vaddr)
}
