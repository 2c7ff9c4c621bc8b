//! blkfront: the Xen paravirtual block frontend (io/blkif.h, x86_64 ABI).
//!
//! One request at a time, through 11 bounce pages granted once (one
//! request's worth of segments, 44 KiB): the backend only ever sees driver
//! memory, callers' buffers may have any alignment, and a backend that
//! writes late or too much cannot touch them.
//!
//! blkback is not trusted: a response must be the one for the request in
//! flight (id and operation), with a known status; anything else, or no
//! answer in 30 s, breaks the device.
use super::ring::{FrontRing, PAGE_SIZE, RingError};
use alloc::vec::Vec;

pub const BLKIF_OP_READ: u8 = 0;
pub const BLKIF_OP_WRITE: u8 = 1;
/// With no segments, an empty barrier: earlier writes are on stable
/// storage when it completes (io/blkif.h; "feature-barrier"). Backends
/// older than "feature-flush-cache" offer only this.
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
pub const BLKIF_RSP_OKAY: i16 = 0;
pub const BLKIF_RSP_ERROR: i16 = -1;
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
pub const VDISK_READONLY: u32 = 4;
/// Segments in one request (BLKIF_MAX_SEGMENTS_PER_REQUEST).
pub const MAX_SEGMENTS: usize = 11;
/// Ring requests count sectors of 512 bytes, whatever the disk's.
const SECTOR: usize = 512;
/// Largest transfer per request.
pub const CHUNK: usize = MAX_SEGMENTS * PAGE_SIZE;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Segment {
    pub gref: u32,
    /// First and last 512-byte sector of the page to transfer, inclusive.
    pub first_sect: u8,
    pub last_sect: u8,
    pub pad: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlkRequest {
    pub operation: u8,
    pub nr_segments: u8,
    pub handle: u16,
    pub pad: u32,
    pub id: u64,
    pub sector_number: u64,
    pub seg: [Segment; MAX_SEGMENTS],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlkResponse {
    pub id: u64,
    pub operation: u8,
    pub pad: u8,
    pub status: i16,
    pub pad2: u32,
}

const _: () = {
    assert!(core::mem::size_of::<BlkRequest>() == 112);
    assert!(core::mem::offset_of!(BlkRequest, id) == 8);
    assert!(core::mem::offset_of!(BlkRequest, seg) == 24);
    assert!(core::mem::size_of::<BlkResponse>() == 16);
    assert!(core::mem::offset_of!(BlkResponse, status) == 10);
};

pub type BlkRing = FrontRing<BlkRequest, BlkResponse>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The backend failed the request (BLKIF_RSP_ERROR / EOPNOTSUPP).
    Io,
    Broken(&'static str),
}

impl From<RingError> for BlkError {
    fn from(e: RingError) -> Self {
        BlkError::Broken(e.0)
    }
}

/// A granted bounce page.
#[derive(Clone, Copy)]
pub struct Buf {
    pub page: *mut u8,
    pub gref: u32,
}

/// The request ring and bounce pages, without the bus: host-testable.
pub struct BlkQueue {
    ring: BlkRing,
    pages: Vec<Buf>,
    handle: u16,
    next_id: u64,
    /// The request in flight: id and operation.
    inflight: Option<(u64, u8)>,
}

// SAFETY: driver memory shared with the backend only; the owner
// serialises access (the device keeps it behind a lock).
unsafe impl Send for BlkQueue {}

impl BlkQueue {
    /// `pages`: MAX_SEGMENTS bounce pages granted to the backend; `handle`
    /// the virtual device number (the N of device/vbd/N).
    ///
    /// # Safety
    /// `ring` as [`FrontRing::new`]; every `Buf::page` a 4 KiB page valid
    /// for the life of the queue and used by nobody else.
    pub unsafe fn new(ring: *mut u8, pages: Vec<Buf>, handle: u16) -> Self {
        assert!(pages.len() == MAX_SEGMENTS);
        // SAFETY: forwarded contract.
        Self { ring: unsafe { BlkRing::new(ring) }, pages, handle, next_id: 1, inflight: None }
    }

    /// Copies `data` (at most CHUNK bytes) into the bounce pages.
    pub fn copy_in(&mut self, data: &[u8]) {
        assert!(self.inflight.is_none() && data.len() <= CHUNK);
        for (i, part) in data.chunks(PAGE_SIZE).enumerate() {
            // SAFETY: `part` fits the page; no request is in flight.
            unsafe { core::ptr::copy_nonoverlapping(part.as_ptr(), self.pages[i].page, part.len()) };
        }
    }

    /// Copies the bounce pages out into `out` (at most CHUNK bytes).
    pub fn copy_out(&self, out: &mut [u8]) {
        assert!(self.inflight.is_none() && out.len() <= CHUNK);
        for (i, part) in out.chunks_mut(PAGE_SIZE).enumerate() {
            // SAFETY: as in `copy_in`.
            unsafe { core::ptr::copy_nonoverlapping(self.pages[i].page, part.as_mut_ptr(), part.len()) };
        }
    }

    /// Puts one request on the ring: `len` bytes (a multiple of 512, at
    /// most CHUNK; 0 for a flush) at 512-byte `sector`, through the bounce
    /// pages. Returns whether to notify the backend.
    pub fn submit(&mut self, operation: u8, sector: u64, len: usize) -> Result<bool, BlkError> {
        if self.inflight.is_some() || len > CHUNK || !len.is_multiple_of(SECTOR) {
            return Err(BlkError::Broken("bad block request"));
        }
        let mut req = BlkRequest {
            operation,
            handle: self.handle,
            id: self.next_id,
            sector_number: sector,
            ..Default::default()
        };
        let mut n = 0;
        for (i, start) in (0..len).step_by(PAGE_SIZE).enumerate() {
            let bytes = (len - start).min(PAGE_SIZE);
            req.seg[i] =
                Segment { gref: self.pages[i].gref, first_sect: 0, last_sect: (bytes / SECTOR - 1) as u8, pad: 0 };
            n += 1;
        }
        req.nr_segments = n;
        self.ring.put_request(req).map_err(|_| BlkError::Broken("request ring full"))?;
        self.inflight = Some((self.next_id, operation));
        self.next_id = self.next_id.wrapping_add(1);
        Ok(self.ring.push_requests())
    }

    /// The result of the request in flight, once the backend answered.
    pub fn poll(&mut self) -> Result<Option<Result<(), BlkError>>, BlkError> {
        let Some((id, op)) = self.inflight else { return Err(BlkError::Broken("no request in flight")) };
        let rsp = match self.ring.take_response()? {
            Some(r) => r,
            None if self.ring.final_check_for_responses() => return self.poll(),
            None => return Ok(None),
        };
        if rsp.id != id || rsp.operation != op {
            return Err(BlkError::Broken("response for a request not in flight"));
        }
        self.inflight = None;
        Ok(Some(match rsp.status {
            BLKIF_RSP_OKAY => Ok(()),
            BLKIF_RSP_ERROR | BLKIF_RSP_EOPNOTSUPP => Err(BlkError::Io),
            _ => return Err(BlkError::Broken("unknown response status")),
        }))
    }
}

/// The disk geometry from the backend's `sectors` (512-byte units) and
/// `sector-size`: (block size, number of blocks).
pub fn geometry(sectors: u64, sector_size: u32) -> Result<(usize, u64), &'static str> {
    let ss = sector_size as usize;
    if !(SECTOR..=PAGE_SIZE).contains(&ss) || !ss.is_power_of_two() {
        return Err("unsupported sector size");
    }
    let per = (ss / SECTOR) as u64;
    if sectors > u64::MAX / SECTOR as u64 || !sectors.is_multiple_of(per) {
        return Err("disk size is not a whole number of sectors");
    }
    Ok((ss, sectors / per))
}

#[cfg(target_os = "none")]
pub use guest::BlkFront;

#[cfg(target_os = "none")]
mod guest {
    use super::*;
    use crate::xen::evtchn;
    use crate::xen::xenbus::{self, Frontend};
    use alloc::format;
    use alloc::string::String;
    use unikit_kernel::dev::{BlockDevice, DevError, check_block_request};
    use unikit_kernel::event::Event;
    use unikit_kernel::sync::Mutex;

    /// A request the backend has not answered after this long breaks it.
    const TIMEOUT_NS: u64 = 30_000_000_000;
    /// Waits re-check the ring at least this often.
    const POLL_NS: u64 = 10_000_000;

    pub struct BlkFront {
        name: String,
        node: String,
        backend: String,
        block_size: usize,
        blocks: u64,
        read_only: bool,
        /// How to make writes durable: FLUSH_DISKCACHE, an empty
        /// WRITE_BARRIER, or nothing when the backend offers neither.
        flush: Option<u8>,
        queue: Mutex<BlkQueue>,
        port: u32,
        event: &'static Event,
        broken: spin::Once<&'static str>,
    }

    impl BlkFront {
        /// Connects to the backend of `node` ("device/vbd/768").
        pub fn new(name: String, node: String) -> Result<Self, String> {
            let handle = node.rsplit('/').next().and_then(|n| n.parse::<u16>().ok()).unwrap_or(0);
            let fe = Frontend::new(node)?;
            let deadline = unikit_kernel::time::monotonic_ns().saturating_add(xenbus::HANDSHAKE_TIMEOUT_NS);
            fe.wait_backend(
                "InitWait",
                |s| (xenbus::STATE_INIT_WAIT..=xenbus::STATE_CONNECTED).contains(&s),
                deadline,
            )?;

            let dom = fe.backend_id;
            let ring = xenbus::shared_page(dom, false)?;
            let mut pages = Vec::with_capacity(MAX_SEGMENTS);
            for _ in 0..MAX_SEGMENTS {
                let p = xenbus::shared_page(dom, false)?;
                pages.push(Buf { page: p.page, gref: p.gref });
            }
            // SAFETY: fresh zeroed pages, ours alone (shared with the backend
            // through their grants only), never freed.
            let queue = unsafe { BlkQueue::new(ring.page, pages, handle) };
            let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
            let port = xenbus::bind_event(dom, event)?;

            let connect = || -> Result<(usize, u64, bool, Option<u8>), String> {
                fe.write("ring-ref", &format!("{}", ring.gref))?;
                fe.write("event-channel", &format!("{port}"))?;
                fe.write("protocol", "x86_64-abi")?;
                fe.switch_state(xenbus::STATE_INITIALISED)?;
                fe.wait_backend("Connected", |s| s == xenbus::STATE_CONNECTED, deadline)?;
                let sectors: u64 = fe.backend_int("sectors", None)?;
                let sector_size: u32 = fe.backend_int("sector-size", Some(SECTOR as u32))?;
                let info: u32 = fe.backend_int("info", Some(0))?;
                let flush = if fe.backend_int::<u32>("feature-flush-cache", Some(0))? == 1 {
                    Some(BLKIF_OP_FLUSH_DISKCACHE)
                } else if fe.backend_int::<u32>("feature-barrier", Some(0))? == 1 {
                    Some(BLKIF_OP_WRITE_BARRIER)
                } else {
                    None
                };
                let (bs, blocks) = geometry(sectors, sector_size).map_err(String::from)?;
                fe.switch_state(xenbus::STATE_CONNECTED)?;
                Ok((bs, blocks, info & VDISK_READONLY != 0, flush))
            };
            let (block_size, blocks, read_only, flush) = match connect() {
                Ok(v) => v,
                Err(e) => {
                    // Tell the backend to let go; our pages and grants are
                    // leaked rather than reused while it might still map them.
                    evtchn::close(port);
                    let _ = fe.switch_state(xenbus::STATE_CLOSED);
                    return Err(e);
                }
            };
            Ok(Self {
                name,
                node: fe.node,
                backend: fe.backend,
                block_size,
                blocks,
                read_only,
                flush,
                queue: Mutex::new(queue),
                port,
                event,
                broken: spin::Once::new(),
            })
        }

        pub fn node(&self) -> &str {
            &self.node
        }

        pub fn backend(&self) -> &str {
            &self.backend
        }

        fn check(&self) -> Result<(), DevError> {
            self.broken.get().map_or(Ok(()), |why| Err(DevError::Broken(why)))
        }

        fn fail(&self, why: &'static str) -> DevError {
            let first = self.broken.get().is_none();
            let why = *self.broken.call_once(|| why);
            if first {
                evtchn::mask(self.port);
                crate::dlog!("{}: {why}; device no longer used", self.name);
            }
            DevError::Broken(why)
        }

        fn err(&self, e: BlkError) -> DevError {
            match e {
                BlkError::Io => DevError::Io,
                BlkError::Broken(why) => self.fail(why),
            }
        }

        /// One request, waiting for its answer.
        fn request(&self, q: &mut BlkQueue, op: u8, sector: u64, len: usize) -> Result<(), DevError> {
            self.check()?;
            if q.submit(op, sector, len).map_err(|e| self.err(e))? {
                evtchn::notify(self.port);
            }
            let now = unikit_kernel::time::monotonic_ns;
            let deadline = now().saturating_add(TIMEOUT_NS);
            loop {
                if let Some(r) = q.poll().map_err(|e| self.err(e))? {
                    return r.map_err(|e| self.err(e));
                }
                if now() > deadline {
                    // The backend may still write the bounce pages: they
                    // are not used again.
                    return Err(self.fail("request timed out"));
                }
                self.event.wait(Some(deadline.min(now().saturating_add(POLL_NS))));
            }
        }

        fn sector(&self, block: u64, offset: usize) -> u64 {
            block * (self.block_size / SECTOR) as u64 + (offset / SECTOR) as u64
        }
    }

    impl BlockDevice for BlkFront {
        fn name(&self) -> &str {
            &self.name
        }
        fn block_size(&self) -> usize {
            self.block_size
        }
        fn num_blocks(&self) -> u64 {
            self.blocks
        }
        fn read_only(&self) -> bool {
            self.read_only
        }

        fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
            self.check()?;
            check_block_request(self, block, buf.len())?;
            let mut q = self.queue.lock();
            for (i, part) in buf.chunks_mut(CHUNK).enumerate() {
                self.request(&mut q, BLKIF_OP_READ, self.sector(block, i * CHUNK), part.len())?;
                q.copy_out(part);
            }
            Ok(())
        }

        fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError> {
            self.check()?;
            if self.read_only {
                return Err(DevError::ReadOnly);
            }
            check_block_request(self, block, buf.len())?;
            let mut q = self.queue.lock();
            for (i, part) in buf.chunks(CHUNK).enumerate() {
                q.copy_in(part);
                self.request(&mut q, BLKIF_OP_WRITE, self.sector(block, i * CHUNK), part.len())?;
            }
            Ok(())
        }

        fn flush(&self) -> Result<(), DevError> {
            self.check()?;
            let Some(op) = self.flush.filter(|_| !self.read_only) else {
                return Ok(());
            };
            let mut q = self.queue.lock();
            self.request(&mut q, op, 0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn page() -> *mut u8 {
        Box::leak(Box::new(Page([0; 4096]))).0.as_mut_ptr()
    }
    fn wr32(p: *mut u8, off: usize, v: u32) {
        unsafe { core::ptr::write_volatile(p.add(off) as *mut u32, v) }
    }
    fn slot(ring: *mut u8, i: u32) -> *mut u8 {
        unsafe { ring.add(64 + (i % 32) as usize * 112) }
    }

    fn setup() -> (BlkQueue, *mut u8, Vec<Buf>) {
        let ring = page();
        let pages: Vec<Buf> = (0..MAX_SEGMENTS as u32).map(|i| Buf { page: page(), gref: 100 + i }).collect();
        (unsafe { BlkQueue::new(ring, pages.clone(), 768) }, ring, pages)
    }

    /// The backend: takes request `i`, answers with `rsp(request)`.
    fn answer(ring: *mut u8, i: u32, rsp: impl FnOnce(&BlkRequest) -> BlkResponse) -> BlkRequest {
        let req = unsafe { core::ptr::read(slot(ring, i) as *const BlkRequest) };
        unsafe { core::ptr::write(slot(ring, i) as *mut BlkResponse, rsp(&req)) };
        wr32(ring, 8, i + 1);
        req
    }

    fn ok(q: &BlkRequest) -> BlkResponse {
        BlkResponse { id: q.id, operation: q.operation, status: BLKIF_RSP_OKAY, ..Default::default() }
    }

    #[test]
    fn requests_describe_their_segments() {
        let (mut q, ring, pages) = setup();
        let data: Vec<u8> = (0..CHUNK).map(|i| i as u8).collect();
        q.copy_in(&data[..4096 * 2 + 1024]);
        assert!(q.submit(BLKIF_OP_WRITE, 40, 4096 * 2 + 1024).unwrap());
        assert_eq!(q.poll(), Ok(None));
        let req = answer(ring, 0, ok);
        assert_eq!((req.operation, req.nr_segments, req.handle, req.sector_number), (BLKIF_OP_WRITE, 3, 768, 40));
        let segs: Vec<(u32, u8, u8)> = req.seg[..3].iter().map(|s| (s.gref, s.first_sect, s.last_sect)).collect();
        assert_eq!(segs, [(100, 0, 7), (101, 0, 7), (102, 0, 1)]);
        assert_eq!(unsafe { *pages[2].page.add(1023) }, data[4096 * 2 + 1023]);
        assert_eq!(q.poll(), Ok(Some(Ok(()))));

        // A full chunk, read back.
        q.submit(BLKIF_OP_READ, 0, CHUNK).unwrap();
        let req = answer(ring, 1, |r| {
            for (i, p) in pages.iter().enumerate() {
                unsafe { core::ptr::write_bytes(p.page, i as u8, 4096) };
            }
            ok(r)
        });
        assert_eq!(req.nr_segments, 11);
        assert_eq!(q.poll(), Ok(Some(Ok(()))));
        let mut out = vec![0; CHUNK];
        q.copy_out(&mut out);
        assert!(out.chunks(4096).enumerate().all(|(i, c)| c.iter().all(|&b| b == i as u8)));

        // Flush: no segments; the same for an empty barrier.
        q.submit(BLKIF_OP_FLUSH_DISKCACHE, 0, 0).unwrap();
        assert_eq!(answer(ring, 2, ok).nr_segments, 0);
        assert_eq!(q.poll(), Ok(Some(Ok(()))));
        q.submit(BLKIF_OP_WRITE_BARRIER, 0, 0).unwrap();
        let req = answer(ring, 3, ok);
        assert_eq!((req.operation, req.nr_segments), (BLKIF_OP_WRITE_BARRIER, 0));
        assert_eq!(q.poll(), Ok(Some(Ok(()))));
    }

    #[test]
    fn statuses() {
        let (mut q, ring, _) = setup();
        for (i, (status, want)) in
            [(BLKIF_RSP_ERROR, Some(Err(BlkError::Io))), (BLKIF_RSP_EOPNOTSUPP, Some(Err(BlkError::Io)))]
                .into_iter()
                .enumerate()
        {
            q.submit(BLKIF_OP_READ, 0, 512).unwrap();
            answer(ring, i as u32, |r| BlkResponse { status, ..ok(r) });
            assert_eq!(q.poll(), Ok(want));
        }
        q.submit(BLKIF_OP_READ, 0, 512).unwrap();
        answer(ring, 2, |r| BlkResponse { status: 7, ..ok(r) });
        assert!(matches!(q.poll(), Err(BlkError::Broken(_))));
    }

    #[test]
    fn foreign_responses_break() {
        let (mut q, ring, _) = setup();
        q.submit(BLKIF_OP_READ, 0, 512).unwrap();
        answer(ring, 0, |r| BlkResponse { id: r.id + 1, ..ok(r) });
        assert!(matches!(q.poll(), Err(BlkError::Broken(_))));

        let (mut q, ring, _) = setup();
        q.submit(BLKIF_OP_READ, 0, 512).unwrap();
        answer(ring, 0, |r| BlkResponse { operation: BLKIF_OP_WRITE, ..ok(r) });
        assert!(matches!(q.poll(), Err(BlkError::Broken(_))));

        let (mut q, ring, _) = setup();
        q.submit(BLKIF_OP_READ, 0, 512).unwrap();
        answer(ring, 0, ok);
        wr32(ring, 8, 2); // two responses to one request
        assert!(matches!(q.poll(), Err(BlkError::Broken(_))));
    }

    #[test]
    fn bad_requests_are_refused() {
        let (mut q, _, _) = setup();
        assert!(q.submit(BLKIF_OP_READ, 0, 100).is_err());
        assert!(q.submit(BLKIF_OP_READ, 0, CHUNK + 512).is_err());
        q.submit(BLKIF_OP_READ, 0, 512).unwrap();
        assert!(q.submit(BLKIF_OP_READ, 0, 512).is_err()); // one at a time
    }

    #[test]
    fn geometries() {
        assert_eq!(geometry(2048, 512), Ok((512, 2048)));
        assert_eq!(geometry(2048, 4096), Ok((4096, 256)));
        assert!(geometry(2047, 4096).is_err());
        assert!(geometry(2048, 256).is_err());
        assert!(geometry(2048, 1536).is_err());
        assert!(geometry(2048, 8192).is_err());
        assert!(geometry(u64::MAX, 512).is_err());
    }
}
