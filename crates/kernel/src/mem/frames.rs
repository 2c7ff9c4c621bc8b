//! Physical frame allocator: one bit per 4 KiB frame (set = in use), with a
//! next-fit search for contiguous runs. 4 GiB of RAM costs 128 KiB of bitmap.

/// Size of a physical frame.
pub const FRAME_SIZE: u64 = 4096;

/// Physical frame allocator: one bit per frame of usable RAM.
pub struct FrameAllocator<'a> {
    bitmap: &'a mut [u64],
    base: u64,
    nframes: usize,
    free: usize,
    next: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Covers `nframes` frames from physical address `base`, all marked used.
    pub fn new(bitmap: &'a mut [u64], base: u64, nframes: usize) -> Self {
        assert!(bitmap.len() * 64 >= nframes);
        bitmap.fill(u64::MAX);
        Self { bitmap, base, nframes, free: 0, next: 0 }
    }

    /// Words of bitmap needed for `nframes` frames.
    pub const fn bitmap_words(nframes: usize) -> usize {
        nframes.div_ceil(64)
    }

    fn is_used(&self, i: usize) -> bool {
        self.bitmap[i / 64] & (1 << (i % 64)) != 0
    }

    /// Frame indexes fully inside `[start, end)` (`inner`) or touching it.
    fn frames(&self, start: u64, end: u64, inner: bool) -> core::ops::Range<usize> {
        let (s, e) = if inner {
            (start.div_ceil(FRAME_SIZE) * FRAME_SIZE, end / FRAME_SIZE * FRAME_SIZE)
        } else {
            (start / FRAME_SIZE * FRAME_SIZE, end.div_ceil(FRAME_SIZE) * FRAME_SIZE)
        };
        let lo = (s.max(self.base) - self.base) / FRAME_SIZE;
        let hi = (e.max(self.base) - self.base) / FRAME_SIZE;
        (lo as usize).min(self.nframes)..(hi as usize).min(self.nframes)
    }

    /// Marks frames `range` used or free, a bitmap word at a time (boot
    /// code is short on instructions: on some hypervisors it is emulated).
    fn set_range(&mut self, range: core::ops::Range<usize>, used: bool) {
        let mut i = range.start;
        while i < range.end {
            let (w, b) = (i / 64, i % 64);
            let n = (64 - b).min(range.end - i);
            let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << b };
            let old = self.bitmap[w];
            let new = if used { old | mask } else { old & !mask };
            let changed = (old ^ new).count_ones() as usize;
            if used {
                self.free -= changed;
            } else {
                self.free += changed;
            }
            self.bitmap[w] = new;
            i += n;
        }
    }

    /// Marks whole frames inside `[start, end)` free.
    pub fn add_free(&mut self, start: u64, end: u64) {
        self.set_range(self.frames(start, end, true), false);
    }

    /// Marks every frame touching `[start, end)` used.
    pub fn reserve(&mut self, start: u64, end: u64) {
        self.set_range(self.frames(start, end, false), true);
    }

    /// Allocates `n` contiguous frames whose first frame is aligned to
    /// `align` frames; returns the physical address.
    pub fn alloc(&mut self, n: usize, align: usize) -> Option<u64> {
        if n == 0 || n > self.free {
            return None;
        }
        let start = self.next.min(self.nframes);
        let i = self
            .find(start, self.nframes, n, align)
            .or_else(|| self.find(0, (start + n - 1).min(self.nframes), n, align))?;
        self.set_range(i..i + n, true);
        self.next = i + n;
        Some(self.base + i as u64 * FRAME_SIZE)
    }

    /// First free run of `n` aligned frames lying inside `[from, to)`.
    fn find(&self, from: usize, to: usize, n: usize, align: usize) -> Option<usize> {
        let align = align.max(1);
        let base_idx = (self.base / FRAME_SIZE) as usize;
        let mut i = from;
        while i + n <= to {
            let mis = (base_idx + i) % align;
            if mis != 0 {
                i += align - mis;
                continue;
            }
            match (i..i + n).rev().find(|&j| self.is_used(j)) {
                Some(used) => i = used + 1,
                None => return Some(i),
            }
        }
        None
    }

    /// Whether `addr` lies in the range this allocator covers.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && (addr - self.base) / FRAME_SIZE < self.nframes as u64
    }

    /// Allocates the highest free run of `n` frames.
    pub fn alloc_top(&mut self, n: usize) -> Option<u64> {
        if n == 0 || n > self.free || n > self.nframes {
            return None;
        }
        let mut end = self.nframes; // candidate run: [end - n, end)
        while end >= n {
            match (end - n..end).rev().find(|&j| self.is_used(j)) {
                Some(used) => end = used,
                None => {
                    self.set_range(end - n..end, true);
                    return Some(self.base + (end - n) as u64 * FRAME_SIZE);
                }
            }
        }
        None
    }

    /// Makes the next searches start at `addr` (they wrap around).
    pub fn start_search_at(&mut self, addr: u64) {
        self.next = (addr.saturating_sub(self.base) / FRAME_SIZE).min(self.nframes as u64) as usize;
    }

    /// Takes the `n` frames at `addr` exactly, if they are all free.
    pub fn claim(&mut self, addr: u64, n: usize) -> bool {
        if !addr.is_multiple_of(FRAME_SIZE) || addr < self.base {
            return false;
        }
        let i = ((addr - self.base) / FRAME_SIZE) as usize;
        if n == 0 || i.checked_add(n).is_none_or(|e| e > self.nframes) || (i..i + n).any(|j| self.is_used(j)) {
            return false;
        }
        self.set_range(i..i + n, true);
        true
    }

    /// Returns `n` frames starting at `addr`.
    pub fn dealloc(&mut self, addr: u64, n: usize) {
        let range = self.frames(addr, addr + n as u64 * FRAME_SIZE, true);
        debug_assert!(range.clone().all(|i| self.is_used(i)), "double free of frames at {addr:#x}");
        self.set_range(range, false);
    }

    /// Number of frames not handed out.
    pub fn free_frames(&self) -> usize {
        self.free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_top_takes_the_highest_free_run() {
        with_alloc(16, |fa| {
            fa.add_free(0x10_0000, 0x10_0000 + 16 * FRAME_SIZE);
            fa.reserve(0x10_e000, 0x10_f000); // frame 14 used
            assert_eq!(fa.alloc_top(2), Some(0x10_c000)); // 15 alone is too short
            assert_eq!(fa.alloc_top(1), Some(0x10_f000));
            assert_eq!(fa.alloc_top(13), None);
            assert_eq!(fa.alloc_top(12), Some(0x10_0000));
        });
    }

    #[test]
    fn claim_takes_exact_free_frames_only() {
        with_alloc(16, |fa| {
            fa.add_free(0x10_0000, 0x10_0000 + 16 * FRAME_SIZE);
            assert!(fa.claim(0x10_4000, 2));
            assert!(!fa.claim(0x10_5000, 1), "already claimed");
            assert!(!fa.claim(0x10_f000, 2), "runs past the end");
            assert!(!fa.claim(0x0f_f000, 1), "below the base");
            assert!(!fa.claim(0x10_0800, 1), "unaligned");
            assert_eq!(fa.free_frames(), 14);
            assert!(fa.contains(0x10_f000) && !fa.contains(0x11_0000));
        });
    }

    fn with_alloc(nframes: usize, f: impl FnOnce(&mut FrameAllocator)) {
        let mut bm = vec![0u64; FrameAllocator::bitmap_words(nframes)];
        let mut fa = FrameAllocator::new(&mut bm, 0x10_0000, nframes);
        f(&mut fa);
    }

    #[test]
    fn starts_full_and_frees_whole_frames_only() {
        with_alloc(100, |fa| {
            assert_eq!(fa.free_frames(), 0);
            assert_eq!(fa.alloc(1, 1), None);
            fa.add_free(0x10_0800, 0x10_5800); // partial frames at both ends are not free
            assert_eq!(fa.free_frames(), 4);
            assert_eq!(fa.alloc(1, 1), Some(0x10_1000));
        });
    }

    #[test]
    fn reserve_carves_out_and_contiguous_runs_skip_holes() {
        with_alloc(64, |fa| {
            fa.add_free(0x10_0000, 0x10_0000 + 64 * FRAME_SIZE);
            fa.reserve(0x10_2fff, 0x10_3001); // touches frames 2 and 3
            assert_eq!(fa.free_frames(), 62);
            assert_eq!(fa.alloc(2, 1), Some(0x10_0000));
            assert_eq!(fa.alloc(3, 1), Some(0x10_4000));
            fa.dealloc(0x10_0000, 2);
            // next-fit continues after the last allocation, then wraps around
            assert_eq!(fa.alloc(1, 1), Some(0x10_7000));
            assert_eq!(fa.alloc(57, 1), None);
            assert_eq!(fa.alloc(56, 1), Some(0x10_8000));
            assert_eq!(fa.alloc(2, 1), Some(0x10_0000));
        });
    }

    #[test]
    fn wraps_around_to_freed_frames() {
        with_alloc(8, |fa| {
            fa.add_free(0x10_0000, 0x10_8000);
            assert_eq!(fa.alloc(8, 1), Some(0x10_0000));
            assert_eq!(fa.alloc(1, 1), None);
            fa.dealloc(0x10_2000, 2);
            assert_eq!(fa.alloc(2, 1), Some(0x10_2000));
        });
    }

    #[test]
    fn alignment_is_in_physical_terms() {
        with_alloc(1024, |fa| {
            fa.add_free(0x10_0000, 0x10_0000 + 1024 * FRAME_SIZE);
            assert_eq!(fa.alloc(1, 1), Some(0x10_0000));
            assert_eq!(fa.alloc(512, 512), Some(0x20_0000));
        });
    }

    #[test]
    fn word_boundaries_and_counts() {
        with_alloc(200, |fa| {
            fa.add_free(0x10_0000 + 3 * FRAME_SIZE, 0x10_0000 + 190 * FRAME_SIZE);
            assert_eq!(fa.free_frames(), 187);
            fa.reserve(0x10_0000 + 60 * FRAME_SIZE, 0x10_0000 + 130 * FRAME_SIZE);
            assert_eq!(fa.free_frames(), 117);
            fa.reserve(0x10_0000 + 60 * FRAME_SIZE, 0x10_0000 + 130 * FRAME_SIZE);
            assert_eq!(fa.free_frames(), 117, "reserving twice must not count twice");
            assert_eq!(fa.alloc(70, 1), None);
            assert_eq!(fa.alloc(60, 1), Some(0x10_0000 + 130 * FRAME_SIZE));
            assert_eq!(fa.alloc(57, 1), Some(0x10_0000 + 3 * FRAME_SIZE));
            assert_eq!(fa.free_frames(), 0);
        });
    }

    #[test]
    fn ranges_outside_are_ignored() {
        with_alloc(4, |fa| {
            fa.add_free(0, 0x1_0000_0000);
            assert_eq!(fa.free_frames(), 4);
            fa.reserve(0, 0x1000);
            assert_eq!(fa.free_frames(), 4);
            assert_eq!(fa.alloc(0, 1), None);
            assert_eq!(fa.alloc(5, 1), None);
        });
    }
}
