//! The front half of a Xen shared I/O ring (io/ring.h, `DEFINE_RING_TYPES`),
//! as netfront and blkfront use it.
//!
//! One page: `req_prod, req_event, rsp_prod, rsp_event` (u32 each), 48
//! bytes of padding, then the entries, each the size of the larger of the
//! request and response structures. The ring has the largest power of two
//! of entries that fits the page.
//!
//! The backend is not trusted: the front end keeps its own copies of the
//! indexes it owns (`req_prod_pvt`, `rsp_cons`) and never reads them back;
//! the backend's `rsp_prod` is checked against the requests actually
//! outstanding, and every response is copied out of the page before it is
//! looked at.
#![deny(unsafe_code)]
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering, fence};
use unikit_io::{DmaRegion, Pod};

pub const PAGE_SIZE: usize = 4096;
/// Bytes before the first entry.
const HEADER: usize = 64;
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;

/// Entries a one-page ring of `entry_size`-byte entries has (`__RING_SIZE`).
pub const fn ring_size(entry_size: usize) -> u32 {
    let n = ((PAGE_SIZE - HEADER) / entry_size) as u32;
    if n == 0 { 0 } else { 1 << (31 - n.leading_zeros()) }
}

/// The backend broke the ring protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingError(pub &'static str);

/// The request side is full (every entry is awaiting its response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

pub struct FrontRing<Req: Pod, Rsp: Pod> {
    page: DmaRegion,
    size: u32,
    entry: usize,
    req_prod_pvt: u32,
    rsp_cons: u32,
    _types: PhantomData<(Req, Rsp)>,
}

impl<Req: Pod, Rsp: Pod> FrontRing<Req, Rsp> {
    const ENTRY: usize = {
        let (a, b) = (core::mem::size_of::<Req>(), core::mem::size_of::<Rsp>());
        if a > b { a } else { b }
    };
    /// Entries of this ring type in one page.
    pub const SIZE: u32 = ring_size(Self::ENTRY);

    /// Initialises the shared ring in `page` (`SHARED_RING_INIT` +
    /// `FRONT_RING_INIT`) before it is granted to the backend. `None` if the
    /// region is not one page-aligned page.
    pub fn from_region(page: DmaRegion) -> Option<Self> {
        const {
            assert!(Self::ENTRY % core::mem::align_of::<Req>() == 0 && Self::ENTRY % core::mem::align_of::<Rsp>() == 0);
            assert!(core::mem::align_of::<Req>() <= HEADER && core::mem::align_of::<Rsp>() <= HEADER);
        };
        if page.len() < PAGE_SIZE || !page.virt_addr(0).is_multiple_of(PAGE_SIZE) {
            return None;
        }
        page.fill(0, PAGE_SIZE, 0);
        let r = Self { page, size: Self::SIZE, entry: Self::ENTRY, req_prod_pvt: 0, rsp_cons: 0, _types: PhantomData };
        r.set(REQ_EVENT, 1);
        r.set(RSP_EVENT, 1);
        Some(r)
    }

    /// As [`Self::from_region`] on the page at `page`. Transitional, for
    /// the drivers that still hand over a raw page; they move to
    /// `from_region` and this goes.
    ///
    /// # Safety
    /// `page` must be a page-aligned, writable 4 KiB page that stays valid
    /// (and is used through this ring only) for the life of the program.
    #[allow(unsafe_code)]
    pub unsafe fn new(page: *mut u8) -> Self {
        // SAFETY: the caller's contract is `DmaRegion::from_raw`'s.
        let region = unsafe { DmaRegion::from_raw(page, PAGE_SIZE) };
        region.and_then(Self::from_region).expect("ring page is null or misaligned")
    }

    /// One of the four header words; the backend writes them
    /// concurrently, hence atomic.
    fn index(&self, off: usize) -> &AtomicU32 {
        self.page.atomic_u32(off)
    }
    fn get(&self, off: usize) -> u32 {
        self.index(off).load(Ordering::Acquire)
    }
    fn set(&self, off: usize, v: u32) {
        self.index(off).store(v, Ordering::Release)
    }

    /// Offset of the entry for free-running index `idx`: inside the page
    /// (HEADER + size * entry <= PAGE_SIZE by `ring_size`) and aligned for
    /// both entry types (see `from_region`).
    fn slot(&self, idx: u32) -> usize {
        let i = (idx & (self.size - 1)) as usize;
        HEADER + i * self.entry
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Where the next request goes (free-running index).
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// Requests posted whose responses have not been consumed yet.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    pub fn free_requests(&self) -> u32 {
        self.size - self.outstanding()
    }

    /// Writes a request into the next slot (not yet visible to the
    /// backend: see [`Self::push_requests`]).
    pub fn put_request(&mut self, req: Req) -> Result<(), Full> {
        if self.free_requests() == 0 {
            return Err(Full);
        }
        // The slot is not in use by the backend (no outstanding request there).
        self.page.write::<Req>(self.slot(self.req_prod_pvt), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the requests written so far
    /// (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`); returns whether the backend
    /// asked to be notified about them.
    pub fn push_requests(&mut self) -> bool {
        let old = self.get(REQ_PROD);
        let new = self.req_prod_pvt;
        fence(Ordering::Release); // requests before the index
        self.set(REQ_PROD, new);
        fence(Ordering::SeqCst); // index before we read req_event
        let event = self.get(REQ_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Takes the next response, if the backend produced one.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        let prod = self.get(RSP_PROD);
        let available = prod.wrapping_sub(self.rsp_cons);
        if available == 0 {
            return Ok(None);
        }
        if available > self.outstanding() {
            return Err(RingError("backend produced more responses than there were requests"));
        }
        fence(Ordering::Acquire); // index before the entries
        // A volatile copy, so what the driver checks is what it uses.
        let rsp = self.page.read::<Rsp>(self.slot(self.rsp_cons));
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Index of the next response to consume (free-running); the slot it
    /// sits in is the one its request was put in for backends that keep
    /// responses in their requests' slots (netback does).
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// Asks for a notification at the next response and says whether one
    /// is already there (`RING_FINAL_CHECK_FOR_RESPONSES`): call before
    /// sleeping on the event channel.
    pub fn final_check_for_responses(&mut self) -> bool {
        if self.get(RSP_PROD) != self.rsp_cons {
            return true;
        }
        self.set(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        self.get(RSP_PROD) != self.rsp_cons
    }

    /// Virtual address of the ring page (to grant it).
    pub fn page(&self) -> *mut u8 {
        self.page.virt_addr(0) as *mut u8
    }

    /// The ring page, for a test's backend side.
    #[cfg(test)]
    pub(crate) fn region(&self) -> &DmaRegion {
        &self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(super) struct Req {
        id: u16,
        pad: u16,
        val: u32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(super) struct Rsp {
        id: u16,
        status: i16,
    }

    // SAFETY: `#[repr(C)]` integers without padding (8 and 4 bytes).
    #[allow(unsafe_code)]
    unsafe impl Pod for Req {}
    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe impl Pod for Rsp {}

    /// A fresh ring on a heap page filled with `fill`.
    pub(super) fn ring(fill: u8) -> FrontRing<Req, Rsp> {
        let page = DmaRegion::alloc(PAGE_SIZE, PAGE_SIZE).unwrap();
        page.fill(0, PAGE_SIZE, fill);
        FrontRing::from_region(page).unwrap()
    }

    fn rd(p: &DmaRegion, off: usize) -> u32 {
        p.read::<u32>(off)
    }
    fn wr(p: &DmaRegion, off: usize, v: u32) {
        p.write::<u32>(off, v)
    }

    /// The backend: answers every request it sees, in its slot.
    fn backend_answer(p: &DmaRegion, size: u32, cons: &mut u32, status: i16) {
        let prod = rd(p, REQ_PROD);
        let mut rsp_prod = rd(p, RSP_PROD);
        while *cons != prod {
            let off = HEADER + (*cons & (size - 1)) as usize * 8;
            let req = p.read::<Req>(off);
            p.write::<Rsp>(off, Rsp { id: req.id, status });
            *cons += 1;
            rsp_prod += 1;
        }
        wr(p, RSP_PROD, rsp_prod);
    }

    #[test]
    fn sizes_match_the_c_macros() {
        assert_eq!(ring_size(12), 256); // netif tx
        assert_eq!(ring_size(8), 256); // netif rx
        assert_eq!(ring_size(112), 32); // blkif
        assert_eq!(FrontRing::<Req, Rsp>::SIZE, 256);
    }

    #[test]
    fn requests_and_responses_round_trip_with_wrap() {
        let mut r = ring(0xaa);
        assert_eq!(rd(r.region(), REQ_EVENT), 1);
        assert_eq!(rd(r.region(), RSP_EVENT), 1);
        assert_eq!(rd(r.region(), 16), 0); // the padding and entries are zeroed
        let mut back_cons = 0;
        let mut next = 0u16;
        for round in 0..5 {
            for _ in 0..200 {
                r.put_request(Req { id: next, pad: 0, val: 7 }).unwrap();
                next = next.wrapping_add(1);
            }
            let notify = r.push_requests();
            // req_event stays 1: only the first batch crosses it.
            assert_eq!(notify, round == 0);
            backend_answer(r.region(), 256, &mut back_cons, 0);
            let mut got = 0;
            while let Some(rsp) = r.take_response().unwrap() {
                assert_eq!(rsp.status, 0);
                got += 1;
            }
            assert_eq!(got, 200);
            assert!(!r.final_check_for_responses());
            assert_eq!(rd(r.region(), RSP_EVENT), r.rsp_cons() + 1);
        }
    }

    #[test]
    fn full_ring_refuses_requests() {
        let mut r = ring(0);
        for i in 0..256 {
            r.put_request(Req { id: i, pad: 0, val: 0 }).unwrap();
        }
        assert_eq!(r.put_request(Req { id: 0, pad: 0, val: 0 }), Err(Full));
    }

    #[test]
    fn bogus_rsp_prod_is_an_error() {
        let mut r = ring(0);
        r.put_request(Req { id: 1, pad: 0, val: 0 }).unwrap();
        r.push_requests();
        wr(r.region(), RSP_PROD, 2); // two responses to one request
        assert!(r.take_response().is_err());
        wr(r.region(), RSP_PROD, 0xffff_0000); // far away
        assert!(r.take_response().is_err());
        wr(r.region(), RSP_PROD, 1);
        assert!(r.take_response().unwrap().is_some());
        assert!(r.take_response().unwrap().is_none());
    }

    #[test]
    fn notify_follows_req_event() {
        let mut r = ring(0);
        r.put_request(Req { id: 0, pad: 0, val: 0 }).unwrap();
        assert!(r.push_requests()); // crosses req_event = 1
        r.put_request(Req { id: 1, pad: 0, val: 0 }).unwrap();
        assert!(!r.push_requests()); // backend did not ask again
        wr(r.region(), REQ_EVENT, 3); // backend wants to hear about request #3
        r.put_request(Req { id: 2, pad: 0, val: 0 }).unwrap();
        assert!(r.push_requests());
    }
}
