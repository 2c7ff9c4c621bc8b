//! 4-level page tables for an identity-mapped kernel. Physical memory is
//! identity mapped, so a table's physical address is also its pointer.

/// Size of a 4 KiB page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a 2 MiB page (one page-directory entry).
pub const HUGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// What a mapping allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// Writes allowed.
    pub writable: bool,
    /// Instruction fetches allowed (no NX bit).
    pub executable: bool,
    /// Uncached, for device registers.
    pub device: bool,
}

impl Flags {
    /// Ordinary memory: read, write, execute, cached.
    pub const RAM: Self = Self { writable: true, executable: true, device: false };
    /// Device registers: read, write, no execute, uncached.
    pub const DEVICE: Self = Self { writable: true, executable: false, device: true };

    fn bits(self) -> u64 {
        let mut b = PRESENT;
        if self.writable {
            b |= WRITABLE;
        }
        if !self.executable {
            b |= NO_EXECUTE;
        }
        if self.device {
            b |= PCD | PWT;
        }
        b
    }
}

/// Why a mapping could not be made or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame was left for a page table.
    OutOfFrames,
    /// An address or size is not page-aligned.
    Unaligned,
    /// The address has no mapping to change.
    NotMapped,
}

/// An address space under construction or in use.
pub struct AddressSpace {
    pml4: u64,
}

/// Source of zeroed, identity-mapped 4 KiB frames for page tables.
pub trait FrameSource {
    /// A zeroed 4 KiB frame for a new page table, or `None` when out of memory.
    fn alloc_zeroed_frame(&mut self) -> Option<u64>;
}

impl AddressSpace {
    /// A new, empty address space (one root table taken from `frames`).
    pub fn new(frames: &mut dyn FrameSource) -> Result<Self, MapError> {
        Ok(Self { pml4: frames.alloc_zeroed_frame().ok_or(MapError::OutOfFrames)? })
    }

    /// The address space currently loaded in CR3.
    pub fn current() -> Self {
        Self { pml4: crate::cpu::read_cr3() & ADDR_MASK }
    }

    /// Physical address of the root table, to load into CR3.
    pub fn root(&self) -> u64 {
        self.pml4
    }

    /// Identity-maps `[start, start + len)`, both 4 KiB aligned, using 2 MiB
    /// pages wherever alignment allows. Entries are written with the
    /// accessed and dirty bits already set, which spares shadow-paging
    /// hypervisors an assist on first use.
    ///
    /// # Safety
    /// The tables must be identity mapped and owned by this address space.
    pub unsafe fn identity_map(
        &mut self,
        start: u64,
        len: u64,
        flags: Flags,
        frames: &mut dyn FrameSource,
    ) -> Result<(), MapError> {
        if !start.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        let end = start + len;
        let bits = flags.bits() | ACCESSED | DIRTY;
        let mut addr = start;
        while addr < end {
            let huge = addr.is_multiple_of(HUGE_PAGE_SIZE) && end - addr >= HUGE_PAGE_SIZE;
            let (shift, size) = if huge { (21, HUGE_PAGE_SIZE) } else { (12, PAGE_SIZE) };
            // SAFETY: forwarded contract.
            let Some(table) = (unsafe { self.leaf_table(addr, huge, frames)? }) else {
                addr = (addr / HUGE_PAGE_SIZE + 1) * HUGE_PAGE_SIZE; // already a 2 MiB page
                continue;
            };
            // Fill this leaf table in one go.
            let mut idx = ((addr >> shift) & 0x1ff) as usize;
            while idx < 512 && addr < end {
                if huge != (addr.is_multiple_of(HUGE_PAGE_SIZE) && end - addr >= HUGE_PAGE_SIZE) {
                    break;
                }
                // SAFETY: `table` is an identity-mapped page-table frame we own.
                unsafe { *((table as *mut u64).add(idx)) = addr | bits | if huge { HUGE } else { 0 } };
                idx += 1;
                addr += size;
            }
        }
        Ok(())
    }

    /// The table holding the leaf entry for `addr` (a PD for 2 MiB pages, a
    /// PT for 4 KiB ones), creating intermediate tables; `None` when `addr`
    /// is already inside a 2 MiB page.
    unsafe fn leaf_table(
        &mut self,
        addr: u64,
        huge: bool,
        frames: &mut dyn FrameSource,
    ) -> Result<Option<u64>, MapError> {
        let mut table = self.pml4;
        let levels: &[u32] = if huge { &[39, 30] } else { &[39, 30, 21] };
        for &shift in levels {
            let idx = ((addr >> shift) & 0x1ff) as usize;
            // SAFETY: `table` is an identity-mapped page-table frame we own.
            let entry = unsafe { &mut *((table as *mut u64).add(idx)) };
            if *entry & PRESENT == 0 {
                let f = frames.alloc_zeroed_frame().ok_or(MapError::OutOfFrames)?;
                *entry = f | PRESENT | WRITABLE | ACCESSED; // leaf entries decide the real permissions
            } else if *entry & HUGE != 0 {
                return Ok(None);
            }
            table = *entry & ADDR_MASK;
        }
        Ok(Some(table))
    }

    /// Marks the 4 KiB page at `addr` present or not present, splitting a
    /// 2 MiB page into 4 KiB ones first if needed. `addr` must be mapped.
    ///
    /// # Safety
    /// The caller must not need the page while it is not present.
    pub unsafe fn set_page_present(
        &mut self,
        addr: u64,
        present: bool,
        frames: &mut dyn FrameSource,
    ) -> Result<(), MapError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        let mut table = self.pml4;
        for shift in [39u32, 30] {
            // SAFETY: identity-mapped page-table frames we own.
            let entry = unsafe { *((table as *const u64).add(((addr >> shift) & 0x1ff) as usize)) };
            if entry & PRESENT == 0 || entry & HUGE != 0 {
                return Err(MapError::NotMapped);
            }
            table = entry & ADDR_MASK;
        }
        // SAFETY: as above.
        let pde = unsafe { &mut *((table as *mut u64).add(((addr >> 21) & 0x1ff) as usize)) };
        if *pde & PRESENT == 0 {
            return Err(MapError::NotMapped);
        }
        if *pde & HUGE != 0 {
            let pt = frames.alloc_zeroed_frame().ok_or(MapError::OutOfFrames)?;
            let base = *pde & ADDR_MASK & !(HUGE_PAGE_SIZE - 1);
            let flags = *pde & (0x7f | NO_EXECUTE) & !HUGE;
            for i in 0..512u64 {
                // SAFETY: `pt` is a fresh frame we own.
                unsafe { *((pt as *mut u64).add(i as usize)) = (base + i * PAGE_SIZE) | flags };
            }
            *pde = pt | PRESENT | WRITABLE | ACCESSED;
        }
        let pt = *pde & ADDR_MASK;
        // SAFETY: as above.
        let pte = unsafe { &mut *((pt as *mut u64).add(((addr >> 12) & 0x1ff) as usize)) };
        if present {
            *pte |= PRESENT;
        } else {
            *pte &= !PRESENT;
        }
        crate::cpu::invlpg(addr);
        Ok(())
    }

    /// The 4 KiB page-table entry for `addr`: creates missing tables and
    /// splits a 2 MiB page into 4 KiB ones. With `user`, every table on
    /// the way gets the user bit (the leaf entries decide the real rights).
    ///
    /// # Safety
    /// The tables must be identity mapped and owned by this address space.
    unsafe fn pte(&mut self, addr: u64, user: bool, frames: &mut dyn FrameSource) -> Result<*mut u64, MapError> {
        let mut table = self.pml4;
        let table_bits = PRESENT | WRITABLE | ACCESSED | if user { USER } else { 0 };
        for shift in [39u32, 30, 21] {
            // SAFETY: identity-mapped page-table frames we own.
            let entry = unsafe { &mut *((table as *mut u64).add(((addr >> shift) & 0x1ff) as usize)) };
            if *entry & PRESENT == 0 {
                let f = frames.alloc_zeroed_frame().ok_or(MapError::OutOfFrames)?;
                *entry = f | table_bits;
            } else if *entry & HUGE != 0 {
                if shift != 21 {
                    return Err(MapError::NotMapped); // 1 GiB pages are never made here
                }
                let pt = frames.alloc_zeroed_frame().ok_or(MapError::OutOfFrames)?;
                let base = *entry & ADDR_MASK & !(HUGE_PAGE_SIZE - 1);
                let flags = *entry & (0x7f | NO_EXECUTE) & !HUGE;
                for i in 0..512u64 {
                    // SAFETY: `pt` is a fresh frame we own.
                    unsafe { *((pt as *mut u64).add(i as usize)) = (base + i * PAGE_SIZE) | flags };
                }
                *entry = pt | table_bits;
            } else {
                *entry |= table_bits & USER;
            }
            table = *entry & ADDR_MASK;
        }
        // SAFETY: as above.
        Ok(unsafe { (table as *mut u64).add(((addr >> 12) & 0x1ff) as usize) })
    }

    /// Maps the 4 KiB page `va` to the frame `pa`, for ring 3 when `user`,
    /// replacing any earlier mapping of `va`.
    ///
    /// # Safety
    /// The tables must be identity mapped and owned by this address space,
    /// and nothing may rely on the old mapping of `va`.
    pub unsafe fn map_page(
        &mut self,
        va: u64,
        pa: u64,
        flags: Flags,
        user: bool,
        frames: &mut dyn FrameSource,
    ) -> Result<(), MapError> {
        if !va.is_multiple_of(PAGE_SIZE) || !pa.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        // SAFETY: forwarded contract.
        let pte = unsafe { self.pte(va, user, frames)? };
        // SAFETY: `pte` points into a page table we own.
        unsafe { *pte = pa | flags.bits() | ACCESSED | DIRTY | if user { USER } else { 0 } };
        crate::cpu::invlpg(va);
        Ok(())
    }

    /// Removes the mapping of the 4 KiB page `va`; returns the frame it had.
    ///
    /// # Safety
    /// Nothing may use the page any more.
    pub unsafe fn unmap_page(&mut self, va: u64, frames: &mut dyn FrameSource) -> Option<u64> {
        self.translate(va)?;
        // SAFETY: forwarded contract; the walk only splits a 2 MiB page.
        let pte = unsafe { self.pte(va, false, frames) }.ok()?;
        // SAFETY: `pte` points into a page table we own.
        let old = unsafe { core::ptr::replace(pte, 0) };
        crate::cpu::invlpg(va);
        (old & PRESENT != 0).then_some(old & ADDR_MASK)
    }

    /// The frame behind the 4 KiB user page `va` and its rights, if `va`
    /// is mapped for ring 3 at every level.
    pub fn user_page(&self, va: u64) -> Option<(u64, Flags)> {
        let mut table = self.pml4;
        for shift in [39u32, 30, 21, 12] {
            // SAFETY: page tables are identity mapped; we only read.
            let entry = unsafe { *((table as *const u64).add(((va >> shift) & 0x1ff) as usize)) };
            if entry & (PRESENT | USER) != PRESENT | USER || (shift != 12 && entry & HUGE != 0) {
                return None;
            }
            if shift == 12 {
                let flags =
                    Flags { writable: entry & WRITABLE != 0, executable: entry & NO_EXECUTE == 0, device: false };
                return Some((entry & ADDR_MASK, flags));
            }
            table = entry & ADDR_MASK;
        }
        None
    }

    /// Physical address `vaddr` maps to, if mapped.
    pub fn translate(&self, vaddr: u64) -> Option<u64> {
        let mut table = self.pml4;
        for shift in [39u32, 30, 21, 12] {
            let idx = ((vaddr >> shift) & 0x1ff) as usize;
            // SAFETY: page tables are identity mapped; we only read.
            let entry = unsafe { *((table as *const u64).add(idx)) };
            if entry & PRESENT == 0 {
                return None;
            }
            if shift == 12 || entry & HUGE != 0 {
                let mask = (1u64 << shift) - 1;
                return Some((entry & ADDR_MASK & !mask) | (vaddr & mask));
            }
            table = entry & ADDR_MASK;
        }
        None
    }

    /// Switches the CPU to this address space.
    ///
    /// # Safety
    /// Everything the CPU is using (code, stacks, data) must be mapped.
    pub unsafe fn activate(&self) {
        // SAFETY: forwarded contract.
        unsafe { crate::cpu::write_cr3(self.pml4) }
    }
}
