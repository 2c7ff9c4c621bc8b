//! Xen PV memory: the guest runs on Xen's page tables and changes them only
//! through hypercalls (`mmu_update`, `update_va_mapping`); table pages are
//! mapped read-only. Pseudo-physical frame N sits at virtual address
//! N * 4 KiB (the image's VIRT_BASE is 0), the same identity layout the
//! kernel has on the other platforms. Entries hold machine frames: the
//! p2m list (from start_info) and Xen's read-only m2p table translate.
use drivers::xen::abi::{self, MmuUpdate};
use drivers::xen::hypercall::hypercall;

pub const PAGE: u64 = 4096;
const P: u64 = 1;
const RW: u64 = 2;
const USER: u64 = 4;
const ACCESSED: u64 = 0x20;
const DIRTY: u64 = 0x40;
const HUGE: u64 = 0x80;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Leaf entry for ordinary RAM (Xen adds USER itself: the PV kernel is ring 3).
pub const RAM: u64 = P | RW | ACCESSED | DIRTY;
const TABLE: u64 = P | RW | USER | ACCESSED | DIRTY;
const INVALID_MFN: u64 = !0;

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in boot error lines
pub enum Error {
    Hypercall(&'static str, isize),
    NoFrame,
    Huge,
}

pub struct Mmu {
    /// pfn -> mfn, `nr_pages` entries (start_info.mfn_list).
    p2m: *const u64,
    nr_pages: u64,
    /// Virtual address of the top-level table.
    l4: u64,
}

// SAFETY: the tables are only changed with interrupts (events) masked, on
// the one vCPU.
unsafe impl Sync for Mmu {}
// SAFETY: as for Sync: one vCPU, and the tables are not tied to a thread.
unsafe impl Send for Mmu {}

fn m2p(mfn: u64) -> u64 {
    // SAFETY: Xen maps the machine-to-physical table read-only into every
    // PV guest; an mfn taken from our own tables is in range.
    unsafe { core::ptr::read_volatile((abi::MACH2PHYS_VIRT_START as *const u64).add(mfn as usize)) }
}

pub fn update_va_mapping(va: u64, pte: u64) -> Result<(), Error> {
    // SAFETY: Xen validates the new entry against our own frames.
    let rc = unsafe { hypercall(abi::HYPERVISOR_UPDATE_VA_MAPPING, va as usize, pte as usize, abi::UVMF_INVLPG, 0, 0) };
    if rc < 0 { Err(Error::Hypercall("update_va_mapping", rc)) } else { Ok(()) }
}

fn mmu_update(reqs: &[MmuUpdate]) -> Result<(), Error> {
    if reqs.is_empty() {
        return Ok(());
    }
    let mut done = 0u32;
    // SAFETY: `reqs` is a valid array; Xen checks every entry.
    let rc = unsafe {
        hypercall(
            abi::HYPERVISOR_MMU_UPDATE,
            reqs.as_ptr() as usize,
            reqs.len(),
            &raw mut done as usize,
            abi::DOMID_SELF as usize,
            0,
        )
    };
    if rc < 0 { Err(Error::Hypercall("mmu_update", rc)) } else { Ok(()) }
}

impl Mmu {
    /// # Safety
    /// `p2m` must be start_info's mfn list with `nr_pages` entries and `l4`
    /// the virtual address of the active top-level table (start_info.pt_base).
    pub const unsafe fn new(p2m: *const u64, nr_pages: u64, l4: u64) -> Self {
        Self { p2m, nr_pages, l4 }
    }

    pub fn mfn(&self, pfn: u64) -> Option<u64> {
        if pfn >= self.nr_pages {
            return None;
        }
        // SAFETY: in bounds of the p2m list.
        let m = unsafe { core::ptr::read_volatile(self.p2m.add(pfn as usize)) };
        (m != INVALID_MFN).then_some(m)
    }

    /// Pseudo-physical frame of a machine frame (m2p), if it is ours.
    pub fn pfn(&self, mfn: u64) -> Option<u64> {
        let pfn = m2p(mfn);
        (self.mfn(pfn) == Some(mfn)).then_some(pfn)
    }

    /// Machine address of the leaf entry mapping `va`, making missing
    /// tables from `alloc` (a pfn that is mapped and free). Also returns
    /// the entry's current value.
    fn leaf(&self, va: u64, alloc: &mut dyn FnMut() -> Option<u64>) -> Result<(u64, u64), Error> {
        let mut table = self.l4;
        let mut table_mfn = self.mfn(self.l4 / PAGE).ok_or(Error::NoFrame)?;
        for level in (1..4).rev() {
            let idx = (va >> (12 + 9 * level)) & 511;
            // SAFETY: `table` is a mapped (read-only) page-table page.
            let mut e = unsafe { core::ptr::read_volatile((table as *const u64).add(idx as usize)) };
            if e & P == 0 {
                let pfn = alloc().ok_or(Error::NoFrame)?;
                let mfn = self.mfn(pfn).ok_or(Error::NoFrame)?;
                // SAFETY: the allocator handed us a mapped, unused page.
                unsafe { core::ptr::write_bytes((pfn * PAGE) as *mut u8, 0, PAGE as usize) };
                // Xen only accepts a page as a table while no writable mapping of it exists.
                update_va_mapping(pfn * PAGE, (mfn << 12) | P | ACCESSED)?;
                e = (mfn << 12) | TABLE;
                mmu_update(&[MmuUpdate { ptr: ((table_mfn << 12) + idx * 8) | abi::MMU_NORMAL_PT_UPDATE, val: e }])?;
            }
            if e & HUGE != 0 {
                return Err(Error::Huge);
            }
            table_mfn = (e & ADDR) >> 12;
            table = self.pfn(table_mfn).ok_or(Error::NoFrame)? * PAGE;
        }
        let idx = (va >> 12) & 511;
        // SAFETY: as above, a leaf table page.
        let cur = unsafe { core::ptr::read_volatile((table as *const u64).add(idx as usize)) };
        Ok(((table_mfn << 12) + idx * 8, cur))
    }

    /// Whether `va` is mapped (without creating tables).
    pub fn is_mapped(&self, va: u64) -> bool {
        self.leaf(va, &mut || None).is_ok_and(|(_, e)| e & P != 0)
    }

    /// Maps every pseudo-physical page at its identity address (Xen maps
    /// only the boot region). New tables come from the pages at
    /// `*next_free` and up, which must already be mapped; on return
    /// `*next_free` is the first page not used for tables.
    pub fn map_all(&self, next_free: &mut u64) -> Result<(), Error> {
        let mut batch: [MmuUpdate; 64] = [const { MmuUpdate { ptr: 0, val: 0 } }; 64];
        let mut n = 0;
        for pfn in 1..self.nr_pages {
            let Some(mfn) = self.mfn(pfn) else { continue };
            let mut alloc = || {
                let p = *next_free;
                (p < self.nr_pages && self.is_mapped(p * PAGE)).then(|| {
                    *next_free += 1;
                    p
                })
            };
            let (ptr, cur) = match self.leaf(pfn * PAGE, &mut || None) {
                Ok(x) => x,
                Err(Error::NoFrame) => {
                    // A table is missing: queued entries first, so the page
                    // that becomes the table is mapped.
                    mmu_update(&batch[..n])?;
                    n = 0;
                    self.leaf(pfn * PAGE, &mut alloc)?
                }
                Err(e) => return Err(e),
            };
            if cur & P != 0 {
                continue;
            }
            batch[n] = MmuUpdate { ptr: ptr | abi::MMU_NORMAL_PT_UPDATE, val: (mfn << 12) | RAM };
            n += 1;
            if n == batch.len() {
                mmu_update(&batch)?;
                n = 0;
            }
        }
        mmu_update(&batch[..n])
    }

    /// Maps `va` to pseudo-physical page `pfn` (or unmaps it).
    pub fn set_present(&self, va: u64, present: bool) -> Result<(), Error> {
        let pte = if present { (self.mfn(va / PAGE).ok_or(Error::NoFrame)? << 12) | RAM } else { 0 };
        update_va_mapping(va, pte)
    }
}
