//! netfront: the Xen paravirtual network frontend (io/netif.h).
//!
//! Two one-page rings shared with netback: transmit requests carry a grant
//! reference, an offset and a size; receive requests hand the backend a
//! granted page to copy a frame into (`request-rx-copy`). We negotiate no
//! offloads (`feature-no-csum-offload`, no scatter-gather, no GSO), so
//! every frame is whole, checksummed and fits one page.
//!
//! Buffers: 64 receive pages, each posted with a fixed id and granted once
//! for the device's life; 32 transmit slots of 2 KiB, two per granted page.
//! Frames are copied in and out, so the backend only ever sees these pages.
//!
//! Notifications follow the rings' event indexes in both directions
//! (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`, `RING_FINAL_CHECK_FOR_RESPONSES`):
//! the backend is kicked when it asked to be, and we ask for an event
//! before reporting `WouldBlock`.
//!
//! netback is not trusted: responses are checked (ids, slot, status,
//! offset + size within the page); a violation breaks the device.
use super::ring::{FrontRing, PAGE_SIZE, RingError};
use alloc::vec::Vec;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TxResponse {
    pub id: u16,
    pub status: i16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RxRequest {
    pub id: u16,
    pub pad: u16,
    pub gref: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    /// Negative: NETIF_RSP_*; otherwise the frame's size.
    pub status: i16,
}

const _: () = {
    assert!(core::mem::size_of::<TxRequest>() == 12);
    assert!(core::mem::size_of::<TxResponse>() == 4);
    assert!(core::mem::size_of::<RxRequest>() == 8);
    assert!(core::mem::size_of::<RxResponse>() == 8);
};

pub const NETRXF_MORE_DATA: u16 = 1 << 2;
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
pub const NETIF_RSP_NULL: i16 = 1;

pub type TxRing = FrontRing<TxRequest, TxResponse>;
pub type RxRing = FrontRing<RxRequest, RxResponse>;

/// Receive pages posted.
pub const RX_BUFFERS: usize = 64;
/// Transmit slots, two per page.
pub const TX_SLOTS: usize = 32;
const TX_SLOT: usize = 2048;
const ETH_HEADER: usize = 14;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    WouldBlock,
    BadLength,
    Broken(&'static str),
}

impl From<RingError> for NetError {
    fn from(e: RingError) -> Self {
        NetError::Broken(e.0)
    }
}

/// A page the backend may access, and its grant reference.
#[derive(Clone, Copy)]
pub struct Buf {
    pub page: *mut u8,
    pub gref: u32,
}

/// The receive ring and its buffers, without the bus: host-testable.
pub struct NetRx {
    ring: RxRing,
    bufs: Vec<Buf>,
    /// By ring slot: the buffer id posted there. netback answers in the
    /// request's slot, so a response's id must match.
    slot: Vec<u16>,
    /// Inside a multi-slot frame we did not ask for: dropping until its end.
    dropping: bool,
}

/// The transmit ring and its slots, without the bus: host-testable.
pub struct NetTx {
    ring: TxRing,
    pages: Vec<Buf>,
    free: Vec<u16>,
    busy: Vec<bool>,
}

// SAFETY: the pages are driver memory shared with the backend only; the
// owner serialises access (the device keeps each direction behind a lock).
unsafe impl Send for NetRx {}
// SAFETY: as above.
unsafe impl Send for NetTx {}

impl NetRx {
    /// `bufs`: RX_BUFFERS pages granted (writable) to the backend.
    ///
    /// # Safety
    /// `ring` as [`FrontRing::new`]; every `Buf::page` a 4 KiB page valid
    /// for the life of the ring and used by nobody else.
    pub unsafe fn new(ring: *mut u8, bufs: Vec<Buf>) -> Self {
        assert!(bufs.len() == RX_BUFFERS);
        // SAFETY: forwarded contract.
        let ring = unsafe { RxRing::new(ring) };
        Self { slot: alloc::vec![0; ring.size() as usize], ring, bufs, dropping: false }
    }

    fn post(&mut self, id: u16) -> Result<(), NetError> {
        let slot = (self.ring.req_prod_pvt() & (self.ring.size() - 1)) as usize;
        let req = RxRequest { id, pad: 0, gref: self.bufs[id as usize].gref };
        self.ring.put_request(req).map_err(|_| NetError::Broken("rx ring full"))?;
        self.slot[slot] = id;
        Ok(())
    }

    /// Posts every buffer; returns whether to notify the backend.
    pub fn post_all(&mut self) -> Result<bool, NetError> {
        for id in 0..RX_BUFFERS as u16 {
            self.post(id)?;
        }
        Ok(self.ring.push_requests())
    }

    /// Copies the next received frame into `out`. The bool says whether
    /// the backend must be notified (buffers were re-posted), whatever the
    /// result.
    pub fn receive(&mut self, out: &mut [u8]) -> (Result<usize, NetError>, bool) {
        let mut reposted = false;
        let r = self.receive_inner(out, &mut reposted);
        let notify = reposted && self.ring.push_requests();
        (r, notify)
    }

    fn receive_inner(&mut self, out: &mut [u8], reposted: &mut bool) -> Result<usize, NetError> {
        loop {
            let slot = (self.ring.rsp_cons() & (self.ring.size() - 1)) as usize;
            let Some(rsp) = self.ring.take_response()? else {
                if self.ring.final_check_for_responses() {
                    continue;
                }
                return Err(NetError::WouldBlock);
            };
            if rsp.flags & NETRXF_EXTRA_INFO != 0 {
                return Err(NetError::Broken("rx extra info, which was not negotiated"));
            }
            let id = self.slot[slot];
            if rsp.id != id {
                return Err(NetError::Broken("rx response id does not match its slot"));
            }
            let buf = self.bufs[id as usize];
            // Every response frees its buffer: back on the ring it goes.
            let result = self.frame(&rsp, buf, out);
            self.post(id)?;
            *reposted = true;
            if let Some(r) = result {
                return r;
            } // else dropped (error status, runt, fragment): next one
        }
    }

    fn frame(&mut self, rsp: &RxResponse, buf: Buf, out: &mut [u8]) -> Option<Result<usize, NetError>> {
        let more = rsp.flags & NETRXF_MORE_DATA != 0;
        if self.dropping || more {
            // A frame in several pieces (we offered no scatter-gather):
            // drop the pieces, report the frame as too large at its end.
            self.dropping = more;
            return (!more).then_some(Err(NetError::BadLength));
        }
        if rsp.status < ETH_HEADER as i16 {
            return None; // NETIF_RSP_ERROR/DROPPED, or a runt
        }
        let (off, size) = (rsp.offset as usize, rsp.status as usize);
        if off + size > PAGE_SIZE {
            return Some(Err(NetError::Broken("rx frame beyond its page")));
        }
        if size > out.len() {
            return Some(Err(NetError::BadLength));
        }
        // SAFETY: `off + size` <= PAGE_SIZE: inside our page. The backend
        // is done with it (it answered), and a late write cannot make a
        // byte copy unsound.
        unsafe { core::ptr::copy_nonoverlapping(buf.page.add(off), out.as_mut_ptr(), size) };
        Some(Ok(size))
    }
}

impl NetTx {
    /// `pages`: TX_SLOTS / 2 pages granted (read-only) to the backend.
    ///
    /// # Safety
    /// As [`NetRx::new`].
    pub unsafe fn new(ring: *mut u8, pages: Vec<Buf>) -> Self {
        assert!(pages.len() * 2 == TX_SLOTS);
        // SAFETY: forwarded contract.
        let ring = unsafe { TxRing::new(ring) };
        Self { ring, pages, free: (0..TX_SLOTS as u16).rev().collect(), busy: alloc::vec![false; TX_SLOTS] }
    }

    /// Takes transmit completions back.
    fn reclaim(&mut self) -> Result<(), NetError> {
        while let Some(rsp) = self.ring.take_response()? {
            if rsp.status == NETIF_RSP_NULL {
                continue; // the slot of an extra-info request (we send none)
            }
            let id = rsp.id as usize;
            if id >= TX_SLOTS || !self.busy[id] {
                return Err(NetError::Broken("tx response for a slot not in flight"));
            }
            // A status < 0 means the backend dropped the frame: like a
            // lost packet, nothing to do.
            self.busy[id] = false;
            self.free.push(id as u16);
        }
        Ok(())
    }

    /// Queues `frame`; returns whether to notify the backend.
    pub fn transmit(&mut self, frame: &[u8]) -> Result<bool, NetError> {
        self.transmit_with(frame.len(), &mut |b| b.copy_from_slice(frame))
    }

    /// Lends a slot of `len` bytes in a granted page to `f`, which writes
    /// the frame there, and queues it; returns whether to notify the
    /// backend. `WouldBlock` without calling `f` when no slot is free.
    pub fn transmit_with(&mut self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<bool, NetError> {
        if !(ETH_HEADER..=TX_SLOT).contains(&len) {
            return Err(NetError::BadLength);
        }
        self.reclaim()?;
        // Out of slots: ask for an event when the backend frees one.
        if self.free.is_empty() && self.ring.final_check_for_responses() {
            self.reclaim()?;
        }
        let Some(id) = self.free.pop() else { return Err(NetError::WouldBlock) };
        let page = self.pages[id as usize / 2];
        let offset = (id as usize % 2) * TX_SLOT;
        // SAFETY: offset + len <= 2 * TX_SLOT = PAGE_SIZE: inside our page;
        // the backend is not using this slot (not in flight), and `self`
        // is borrowed mutably until the slot is queued.
        let slot = unsafe { core::slice::from_raw_parts_mut(page.page.add(offset), len) };
        f(slot);
        let req = TxRequest { gref: page.gref, offset: offset as u16, flags: 0, id, size: len as u16 };
        if self.ring.put_request(req).is_err() {
            self.free.push(id);
            return Err(NetError::WouldBlock);
        }
        self.busy[id as usize] = true;
        Ok(self.ring.push_requests())
    }
}

/// Parses a MAC address as xenstore has it: "00:16:3e:12:34:56".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(target_os = "none")]
pub use guest::NetFront;

#[cfg(target_os = "none")]
mod guest {
    use super::*;
    use crate::xen::xenbus::{self, Frontend, SharedPage};
    use crate::xen::{evtchn, xenstore};
    use alloc::format;
    use alloc::string::String;
    use unikit_kernel::dev::{DevError, Doorbell, HeldFrame, NetDevice};
    use unikit_kernel::event::Event;

    pub struct NetFront {
        name: String,
        node: String,
        backend: String,
        mac: [u8; 6],
        rx: spin::Mutex<NetRx>,
        tx: spin::Mutex<NetTx>,
        port: u32,
        event: &'static Event,
        broken: spin::Once<&'static str>,
        /// The frame last copied out of a granted page, lent from here.
        held: HeldFrame,
    }

    impl NetFront {
        /// Connects to the backend of `node` ("device/vif/0").
        pub fn new(name: String, node: String) -> Result<Self, String> {
            let fe = Frontend::new(node)?;
            let mac = xenstore::read(&format!("{}/mac", fe.node)).map_err(|e| format!("reading mac: {e}"))?;
            let mac = parse_mac(&mac).ok_or_else(|| format!("bad mac {mac:?}"))?;
            let deadline = unikit_kernel::time::monotonic_ns().saturating_add(xenbus::HANDSHAKE_TIMEOUT_NS);
            fe.wait_backend(
                "InitWait",
                |s| (xenbus::STATE_INIT_WAIT..=xenbus::STATE_CONNECTED).contains(&s),
                deadline,
            )?;

            let dom = fe.backend_id;
            let page = |readonly| xenbus::shared_page(dom, readonly);
            let (tx_ring, rx_ring) = (page(false)?, page(false)?);
            let mut tx_pages = Vec::with_capacity(TX_SLOTS / 2);
            for _ in 0..TX_SLOTS / 2 {
                let p: SharedPage = page(true)?;
                tx_pages.push(Buf { page: p.page, gref: p.gref });
            }
            let mut rx_bufs = Vec::with_capacity(RX_BUFFERS);
            for _ in 0..RX_BUFFERS {
                let p = page(false)?;
                rx_bufs.push(Buf { page: p.page, gref: p.gref });
            }
            // SAFETY: fresh zeroed pages, ours alone (shared with the backend
            // through their grants only), never freed.
            let (tx, mut rx) = unsafe { (NetTx::new(tx_ring.page, tx_pages), NetRx::new(rx_ring.page, rx_bufs)) };
            let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
            let port = xenbus::bind_event(dom, event)?;

            let mut connect = || -> Result<(), String> {
                fe.write("tx-ring-ref", &format!("{}", tx_ring.gref))?;
                fe.write("rx-ring-ref", &format!("{}", rx_ring.gref))?;
                fe.write("event-channel", &format!("{port}"))?;
                fe.write("request-rx-copy", "1")?;
                fe.write("feature-rx-notify", "1")?;
                fe.write("feature-sg", "0")?;
                fe.write("feature-gso-tcpv4", "0")?;
                fe.write("feature-no-csum-offload", "1")?;
                // Buffers go on the ring before the backend looks at it.
                rx.post_all().map_err(|e| format!("posting rx buffers: {e:?}"))?;
                fe.switch_state(xenbus::STATE_CONNECTED)?;
                fe.wait_backend("Connected", |s| s == xenbus::STATE_CONNECTED, deadline)?;
                Ok(())
            };
            if let Err(e) = connect() {
                // Tell the backend to let go; our pages and grants are
                // leaked rather than reused while it might still map them.
                evtchn::close(port);
                let _ = fe.switch_state(xenbus::STATE_CLOSED);
                return Err(e);
            }
            evtchn::notify(port);

            Ok(Self {
                name,
                node: fe.node,
                backend: fe.backend,
                mac,
                rx: spin::Mutex::new(rx),
                tx: spin::Mutex::new(tx),
                port,
                event,
                broken: spin::Once::new(),
                held: HeldFrame::new(1518),
            })
        }

        pub fn node(&self) -> &str {
            &self.node
        }

        pub fn backend(&self) -> &str {
            &self.backend
        }

        /// Copies the next frame out of its granted page into `buf`.
        fn fetch(&self, buf: &mut [u8]) -> Result<usize, DevError> {
            let (r, notify) = self.rx.lock().receive(buf);
            if notify {
                evtchn::notify(self.port);
            }
            r.map_err(|e| self.err(e))
        }

        fn check(&self) -> Result<(), DevError> {
            self.broken.get().map_or(Ok(()), |why| Err(DevError::Broken(why)))
        }

        fn err(&self, e: NetError) -> DevError {
            match e {
                NetError::WouldBlock => DevError::WouldBlock,
                NetError::BadLength => DevError::BadLength,
                NetError::Broken(why) => {
                    let first = self.broken.get().is_none();
                    let why = *self.broken.call_once(|| why);
                    if first {
                        // Stop listening; the backend may do as it likes
                        // with pages we no longer look at.
                        evtchn::mask(self.port);
                        crate::dlog!("{}: backend broke the protocol ({why}); device no longer used", self.name);
                    }
                    DevError::Broken(why)
                }
            }
        }
    }

    impl NetDevice for NetFront {
        fn name(&self) -> &str {
            &self.name
        }
        fn mac(&self) -> [u8; 6] {
            self.mac
        }
        fn mtu(&self) -> usize {
            1500
        }

        fn rx_pending(&self) -> Result<bool, DevError> {
            self.check()?;
            self.held.pending(|b| self.fetch(b))
        }

        fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError> {
            self.check()?;
            self.held.lend(|b| self.fetch(b), f)
        }

        fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError> {
            self.check()?;
            // Written straight into the granted page.
            let notify = self.tx.lock().transmit_with(len, f).map_err(|e| self.err(e))?;
            if notify {
                evtchn::notify(self.port);
            }
            Ok(())
        }

        fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
            self.event.forward_to(doorbell);
        }

        fn has_interrupts(&self) -> bool {
            true
        }
    }
}

#[cfg(test)]
#[path = "netfront_tests.rs"]
mod tests;
