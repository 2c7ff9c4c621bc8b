//! An address window BARs are assigned from, avoiding ranges already taken
//! (BARs the firmware assigned, chipset registers).
#![deny(unsafe_code)]
use alloc::vec::Vec;

pub struct Window {
    start: u64,
    end: u64,
    used: Vec<(u64, u64)>,
}

impl Window {
    /// The window `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        Self { start, end, used: Vec::new() }
    }

    /// Marks `[start, start + len)` taken (anything may overlap the window).
    pub fn reserve(&mut self, start: u64, len: u64) {
        if len > 0 {
            self.used.push((start, start.saturating_add(len)));
        }
    }

    /// The lowest `size`-aligned free block of `size` bytes (`size` a power
    /// of two), now marked taken.
    pub fn alloc(&mut self, size: u64) -> Option<u64> {
        if !size.is_power_of_two() {
            return None;
        }
        let mut cand = self.start.checked_next_multiple_of(size)?;
        loop {
            let end = cand.checked_add(size)?;
            if end > self.end {
                return None;
            }
            match self.used.iter().filter(|&&(s, e)| s < end && cand < e).map(|&(_, e)| e).max() {
                Some(clash_end) => cand = clash_end.checked_next_multiple_of(size)?,
                None => {
                    self.used.push((cand, end));
                    return Some(cand);
                }
            }
        }
    }
}
