//! Grant tables, version 1 (grant_table.h): how this domain lets a backend
//! map or copy one of its pages. Each 8-byte entry is `{u16 flags, u16
//! domid, u32 frame}`; the reference a backend is given is the entry's
//! index.
//!
//! The platform sets the table up (PV: [`setup_table`] gives the frames
//! to map; PVH: XENMEM_add_to_physmap) and hands the mapped table to
//! [`init`]. Refs 0..8 are Xen's (`GNTTAB_NR_RESERVED_ENTRIES`).
use super::abi::HYPERVISOR_GRANT_TABLE_OP;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering, fence};

pub type GrantRef = u32;

const GNTTABOP_SETUP_TABLE: usize = 2;
const NR_RESERVED: u32 = 8;
const ENTRY_SIZE: usize = 8;
pub const ENTRIES_PER_FRAME: u32 = 4096 / ENTRY_SIZE as u32;

const GTF_PERMIT_ACCESS: u16 = 1;
const GTF_READONLY: u16 = 1 << 2;
const GTF_READING: u16 = 1 << 3;
const GTF_WRITING: u16 = 1 << 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No table yet ([`init`] not called).
    NotReady,
    /// Every entry is in use.
    Exhausted,
    /// The frame number does not fit a v1 entry (32 bits).
    FrameTooLarge,
    /// Not a reference this table handed out (or already ended).
    BadRef,
    /// The backend still has the page mapped: do not reuse it.
    InUse,
    /// The hypercall failed (negative errno) ...
    Hypercall(isize),
    /// ... or Xen reported a GNTST_* status.
    Status(i16),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NotReady => f.write_str("grant table not set up"),
            Error::Exhausted => f.write_str("grant table full"),
            Error::FrameTooLarge => f.write_str("frame number too large for a grant entry"),
            Error::BadRef => f.write_str("bad grant reference"),
            Error::InUse => f.write_str("grant still in use by the remote domain"),
            Error::Hypercall(rc) => write!(f, "grant table hypercall failed ({rc})"),
            Error::Status(s) => write!(f, "grant table operation failed (status {s})"),
        }
    }
}

/// `GNTTABOP_setup_table` for this domain: returns the `nr_frames` frames
/// (MFNs for PV) holding the table, for the platform to map contiguously.
pub fn setup_table(nr_frames: u32) -> Result<Vec<u64>, Error> {
    #[repr(C)]
    struct SetupTable {
        dom: u16,
        nr_frames: u32,
        status: i16,
        frame_list: u64,
    }
    let mut frames = alloc::vec![0u64; nr_frames as usize];
    let mut op =
        SetupTable { dom: super::abi::DOMID_SELF, nr_frames, status: 0, frame_list: frames.as_mut_ptr() as u64 };
    // SAFETY: `op` is the structure Xen expects; `frame_list` has room
    // for `nr_frames` entries and both outlive the call.
    let rc = unsafe {
        super::hypercall::hypercall(HYPERVISOR_GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, &raw mut op as usize, 1, 0, 0)
    };
    if rc < 0 {
        return Err(Error::Hypercall(rc));
    }
    if op.status != 0 {
        return Err(Error::Status(op.status));
    }
    Ok(frames)
}

/// A mapped v1 grant table and its free list.
pub struct GrantTable {
    base: *mut u8,
    count: u32,
    free: Vec<GrantRef>,
    in_use: Vec<bool>,
}

// SAFETY: the table is plain shared memory; the owner serialises access
// (the global one sits behind an IRQ-safe lock).
unsafe impl Send for GrantTable {}

impl GrantTable {
    /// # Safety
    /// `base` must be the mapped table, `nr_frames` pages, read-write, for
    /// as long as the `GrantTable` lives; nobody else allocates entries.
    pub unsafe fn new(base: *mut u8, nr_frames: u32) -> Self {
        let count = nr_frames.saturating_mul(ENTRIES_PER_FRAME);
        let mut free: Vec<GrantRef> = (NR_RESERVED..count).collect();
        free.reverse(); // hand out low refs first
        Self { base, count, free, in_use: alloc::vec![false; count as usize] }
    }

    fn flags(&self, gref: GrantRef) -> &AtomicU16 {
        // SAFETY: callers check `gref < count`; the entry is inside the
        // mapped table and 8-aligned. Xen writes the flags concurrently.
        unsafe { AtomicU16::from_ptr(self.base.add(gref as usize * ENTRY_SIZE) as *mut u16) }
    }

    pub fn grant_access(&mut self, domid: u16, frame: u64, readonly: bool) -> Result<GrantRef, Error> {
        let frame = u32::try_from(frame).map_err(|_| Error::FrameTooLarge)?;
        let gref = self.free.pop().ok_or(Error::Exhausted)?;
        self.in_use[gref as usize] = true;
        let e = self.base.wrapping_add(gref as usize * ENTRY_SIZE);
        // SAFETY: `gref` < count (it came from the free list): the entry is
        // in the table, and unused (flags 0), so Xen does not look at it.
        unsafe {
            AtomicU16::from_ptr(e.add(2) as *mut u16).store(domid, Ordering::Relaxed);
            AtomicU32::from_ptr(e.add(4) as *mut u32).store(frame, Ordering::Relaxed);
        }
        // Frame and domid must be visible before the entry becomes valid.
        fence(Ordering::Release);
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.flags(gref).store(flags, Ordering::Release);
        Ok(gref)
    }

    /// Revokes `gref`. Fails with `InUse` while the remote domain has the
    /// page mapped: the caller must then not reuse the page (retry later,
    /// or leak it).
    pub fn end_access(&mut self, gref: GrantRef) -> Result<(), Error> {
        if gref >= self.count || !self.in_use[gref as usize] {
            return Err(Error::BadRef);
        }
        let flags = self.flags(gref);
        let mut cur = flags.load(Ordering::Acquire);
        loop {
            if cur & (GTF_READING | GTF_WRITING) != 0 {
                return Err(Error::InUse);
            }
            match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.in_use[gref as usize] = false;
        self.free.push(gref);
        Ok(())
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }
}

static TABLE: spin::Mutex<Option<GrantTable>> = spin::Mutex::new(None);

/// Runs `f` on the global table, with interrupts (event upcalls) off so a
/// handler can never find the lock taken by the code it interrupted.
fn with_table<R>(f: impl FnOnce(&mut GrantTable) -> Result<R, Error>) -> Result<R, Error> {
    #[cfg(target_os = "none")]
    let _irq = unikit_kernel::platform::IrqGuard::new();
    let mut t = TABLE.lock();
    f(t.as_mut().ok_or(Error::NotReady)?)
}

/// Starts handing out grants from the mapped table.
///
/// # Safety
/// As [`GrantTable::new`]: `table` is the mapped grant table of
/// `nr_frames` pages, valid for the life of the domain.
pub unsafe fn init(table: *mut u8, nr_frames: u32) {
    #[cfg(target_os = "none")]
    let _irq = unikit_kernel::platform::IrqGuard::new();
    // SAFETY: forwarded contract.
    *TABLE.lock() = Some(unsafe { GrantTable::new(table, nr_frames) });
}

pub fn ready() -> bool {
    TABLE.lock().is_some()
}

/// Lets `domid` access `frame` (a frame number as Xen knows it, see
/// [`super::frame_of`]); returns the reference to give it.
pub fn grant_access(domid: u16, frame: u64, readonly: bool) -> Result<GrantRef, Error> {
    with_table(|t| t.grant_access(domid, frame, readonly))
}

/// See [`GrantTable::end_access`].
pub fn end_access(gref: GrantRef) -> Result<(), Error> {
    with_table(|t| t.end_access(gref))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Frames([u8; 8192]);

    fn entry(f: &Frames, r: GrantRef) -> (u16, u16, u32) {
        let e = &f.0[r as usize * 8..];
        (
            u16::from_le_bytes([e[0], e[1]]),
            u16::from_le_bytes([e[2], e[3]]),
            u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
        )
    }

    #[test]
    fn grants_skip_reserved_entries_and_fill_the_entry() {
        let mut mem = Box::new(Frames([0; 8192]));
        let mut t = unsafe { GrantTable::new(mem.0.as_mut_ptr(), 2) };
        let r = t.grant_access(0, 0x1234, true).unwrap();
        assert_eq!(r, 8);
        assert_eq!(entry(&mem, r), (GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x1234));
        let w = t.grant_access(7, 0x99, false).unwrap();
        assert_eq!(entry(&mem, w), (GTF_PERMIT_ACCESS, 7, 0x99));
        t.end_access(r).unwrap();
        assert_eq!(entry(&mem, r).0, 0);
        assert_eq!(t.end_access(r), Err(Error::BadRef)); // twice
        assert_eq!(t.end_access(3), Err(Error::BadRef)); // reserved
        assert_eq!(t.end_access(5000), Err(Error::BadRef)); // outside
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut mem = Box::new(Frames([0; 8192]));
        let mut t = unsafe { GrantTable::new(mem.0.as_mut_ptr(), 1) };
        for _ in 0..(512 - 8) {
            t.grant_access(0, 1, false).unwrap();
        }
        assert_eq!(t.grant_access(0, 1, false), Err(Error::Exhausted));
        t.end_access(100).unwrap();
        assert_eq!(t.grant_access(0, 1, false), Ok(100));
    }

    #[test]
    fn entries_in_use_by_the_backend_are_not_ended() {
        let mut mem = Box::new(Frames([0; 8192]));
        let mut t = unsafe { GrantTable::new(mem.0.as_mut_ptr(), 1) };
        let r = t.grant_access(0, 1, false).unwrap();
        mem.0[r as usize * 8] |= GTF_WRITING as u8; // Xen: mapped for writing
        assert_eq!(t.end_access(r), Err(Error::InUse));
        mem.0[r as usize * 8] &= !(GTF_WRITING as u8);
        assert_eq!(t.end_access(r), Ok(()));
    }

    #[test]
    fn frames_beyond_32_bits_are_refused() {
        let mut mem = Box::new(Frames([0; 8192]));
        let mut t = unsafe { GrantTable::new(mem.0.as_mut_ptr(), 1) };
        assert_eq!(t.grant_access(0, 1 << 32, false), Err(Error::FrameTooLarge));
        assert_eq!(t.free_count(), 512 - 8);
    }
}
