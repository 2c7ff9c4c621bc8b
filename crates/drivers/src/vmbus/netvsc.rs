//! netvsc: Hyper-V's synthetic network adapter over a VMBus channel.
//!
//! Two layers (Linux `drivers/net/hyperv/hyperv_net.h`, `rndis.h`):
//! - NVSP, the channel protocol: INIT (version), NDIS config and version,
//!   the receive buffer (a GPADL the host copies incoming data into), and
//!   SEND_RNDIS_PKT, which carries an RNDIS message either way. Requests
//!   are in-band with a completion requested; the host's answers are
//!   completion packets with the same transaction ID.
//! - RNDIS inside: INITIALIZE, QUERY (the permanent MAC), SET (the packet
//!   filter), and PACKET messages wrapping Ethernet frames.
//!
//! Outgoing RNDIS messages travel in a GPA-direct packet naming our send
//! page (no send buffer). Incoming ones arrive as transfer-page packets:
//! ranges (offset, length) into the receive buffer, each one RNDIS message;
//! every range, every RNDIS length and offset is checked against the buffer
//! and the message before a byte is used, and each such packet is completed
//! so the host can reuse its space.
use super::abi::{Le, Offer, pkt};
use super::{Channel, Error, Platform, Vmbus};
use crate::io::DmaRegion;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

// NVSP message types and statuses.
const NVSP_INIT: u32 = 1;
const NVSP_INIT_COMPLETE: u32 = 2;
const NVSP1_SEND_NDIS_VER: u32 = 100;
const NVSP1_SEND_RECV_BUF: u32 = 101;
const NVSP1_SEND_RECV_BUF_COMPLETE: u32 = 102;
const NVSP1_SEND_RNDIS_PKT: u32 = 107;
const NVSP1_SEND_RNDIS_PKT_COMPLETE: u32 = 108;
const NVSP2_SEND_NDIS_CONFIG: u32 = 125;
const NVSP_STAT_SUCCESS: u32 = 1;
/// NVSP versions, newest first: 5, 4, 2 (0x30002). Version 1 lacks the NDIS config.
const NVSP_VERSIONS: [u32; 3] = [0x50000, 0x40000, 0x30002];
/// `sizeof(struct nvsp_message)`: the header and the largest union member;
/// every message is sent padded to it, as Linux does.
const NVSP_MSG_SIZE: usize = 40;
/// `NETVSC_RECEIVE_BUFFER_ID`.
const RECV_BUF_ID: u16 = 0xcafe;
/// RNDIS channel types in SEND_RNDIS_PKT.
const RNDIS_DATA: u32 = 0;
const RNDIS_CONTROL: u32 = 1;

// RNDIS message types, OIDs, filter bits.
const RNDIS_MSG_PACKET: u32 = 1;
const RNDIS_MSG_INIT: u32 = 2;
const RNDIS_MSG_QUERY: u32 = 4;
const RNDIS_MSG_SET: u32 = 5;
const RNDIS_MSG_INDICATE: u32 = 7;
const RNDIS_COMPLETION: u32 = 0x8000_0000;
const OID_802_3_PERMANENT_ADDRESS: u32 = 0x0101_0101;
const OID_GEN_CURRENT_PACKET_FILTER: u32 = 0x0001_010e;
/// Directed, all multicast, broadcast.
const PACKET_FILTER: u32 = 0x1 | 0x4 | 0x8;
/// RNDIS PACKET header: type, length, then 9 words (data offset is
/// counted from the third word).
const RNDIS_PACKET_HDR: usize = 44;

/// Largest Ethernet frame sent or accepted (no jumbo frames).
pub const MAX_FRAME: usize = 1514;
/// Receive buffer: what the host may fill before we complete.
const RECV_BUF_SIZE: usize = 1 << 20;
/// Received frames kept while a control request is waiting.
const MAX_QUEUED: usize = 256;
/// Packets that are not the answer, tolerated per wait.
const MAX_OTHER: usize = 1024;

/// A netvsc adapter.
pub struct NetVsc<P: Platform> {
    ch: Channel<P>,
    recv_buf: DmaRegion,
    /// One page for the outgoing RNDIS message (waited for before reuse).
    send_page: DmaRegion,
    nvsp_version: u32,
    mac: [u8; 6],
    next_id: u64,
    next_req: u32,
    frames: VecDeque<Vec<u8>>,
    /// Transaction IDs the host has completed, not yet claimed.
    completed: Vec<(u64, Vec<u8>)>,
    /// RNDIS completions (INIT_C, QUERY_C, SET_C) not yet claimed.
    rndis_done: Vec<Vec<u8>>,
}

fn nvsp(ty: u32, words: &[u32]) -> [u8; NVSP_MSG_SIZE] {
    let mut m = [0u8; NVSP_MSG_SIZE];
    m[0..4].copy_from_slice(&ty.to_le_bytes());
    for (i, w) in words.iter().enumerate() {
        m[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
    m
}

impl<P: Platform + Clone> NetVsc<P> {
    /// Opens the adapter's channel and brings it up: NVSP, the receive
    /// buffer, RNDIS, the MAC, the packet filter.
    pub fn new(bus: &mut Vmbus<P>, offer: &Offer) -> Result<Self, Error> {
        let ch = bus.open(offer, 32, 32)?;
        let recv_buf = DmaRegion::alloc(RECV_BUF_SIZE, super::abi::PAGE).ok_or(Error::NoMemory)?;
        let send_page = DmaRegion::alloc(super::abi::PAGE, super::abi::PAGE).ok_or(Error::NoMemory)?;
        let mut n = Self {
            ch,
            recv_buf,
            send_page,
            nvsp_version: 0,
            mac: [0; 6],
            next_id: 1,
            next_req: 1,
            frames: VecDeque::new(),
            completed: Vec::new(),
            rndis_done: Vec::new(),
        };
        for v in NVSP_VERSIONS {
            let r = n.nvsp_request(&nvsp(NVSP_INIT, &[v, v]))?;
            if r.u32_at(0) != Some(NVSP_INIT_COMPLETE) {
                return Err(Error::Hostile("netvsc: INIT answered with another message"));
            }
            if r.u32_at(12) == Some(NVSP_STAT_SUCCESS) {
                n.nvsp_version = v;
                break;
            }
        }
        if n.nvsp_version == 0 {
            return Err(Error::NoVersion);
        }
        // MTU (frame size) and 802.1Q capability, then NDIS 6.30 (6.1 up to NVSP 4).
        n.ch.send_inband(0, &nvsp(NVSP2_SEND_NDIS_CONFIG, &[MAX_FRAME as u32, 0, 1 << 3, 0]), false)?;
        let ndis_minor = if n.nvsp_version <= 0x40000 { 1 } else { 30 };
        n.ch.send_inband(0, &nvsp(NVSP1_SEND_NDIS_VER, &[6, ndis_minor]), false)?;
        let gpadl = bus.create_gpadl(offer.relid, &n.recv_buf)?;
        let r = n.nvsp_request(&nvsp(NVSP1_SEND_RECV_BUF, &[gpadl, RECV_BUF_ID as u32]))?;
        if r.u32_at(0) != Some(NVSP1_SEND_RECV_BUF_COMPLETE) {
            return Err(Error::Hostile("netvsc: receive buffer answered with another message"));
        }
        match r.u32_at(4) {
            Some(NVSP_STAT_SUCCESS) => {}
            Some(s) => return Err(Error::Refused(s)),
            None => return Err(Error::Hostile("netvsc: short answer")),
        }
        // RNDIS INITIALIZE 1.0, 16 KiB transfers.
        let c = n.rndis_request(RNDIS_MSG_INIT, &[1, 0, 0x4000])?;
        rndis_status(&c)?;
        let c = n.rndis_request(RNDIS_MSG_QUERY, &[OID_802_3_PERMANENT_ADDRESS, 0, 0, 0])?;
        rndis_status(&c)?;
        // QUERY_C: type, len, req id, status, info length, info offset (from the req id).
        let (len, off) = (c.u32_at(16).unwrap_or(0) as usize, c.u32_at(20).unwrap_or(0) as usize);
        let mac = off.checked_add(8).and_then(|s| c.get(s..s.checked_add(len)?));
        match mac {
            Some(m) if len == 6 => n.mac.copy_from_slice(m),
            _ => return Err(Error::Hostile("netvsc: bad MAC address answer")),
        }
        // SET: oid, info length 4, info offset 20 (after the five words from the req id).
        let c = n.rndis_request(RNDIS_MSG_SET, &[OID_GEN_CURRENT_PACKET_FILTER, 4, 20, 0, PACKET_FILTER])?;
        rndis_status(&c)?;
        Ok(n)
    }

    /// The adapter's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The negotiated NVSP version.
    pub fn nvsp_version(&self) -> u32 {
        self.nvsp_version
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends an NVSP request and waits for its completion's payload.
    fn nvsp_request(&mut self, m: &[u8]) -> Result<Vec<u8>, Error> {
        let id = self.id();
        self.ch.send_inband(id, m, true)?;
        self.wait(|s| s.completed.iter().position(|c| c.0 == id).map(|i| s.completed.swap_remove(i).1))
    }

    /// Processes host packets until `done` finds what it waits for.
    fn wait<T>(&mut self, mut done: impl FnMut(&mut Self) -> Option<T>) -> Result<T, Error> {
        let mut waited = 0;
        for _ in 0..MAX_OTHER {
            if let Some(t) = done(self) {
                return Ok(t);
            }
            if !self.poll()? {
                if !self.ch.wait(waited) {
                    return Err(Error::Timeout);
                }
                waited += 1;
            }
        }
        Err(Error::Hostile("netvsc: the answer never came among the host's packets"))
    }

    /// Sends one RNDIS message (`ty`, then `words` after the request ID,
    /// then `data`) through the send page; waits until the host completed it.
    fn send_rndis(&mut self, channel: u32, msg: &[u8]) -> Result<(), Error> {
        if msg.len() > super::abi::PAGE {
            return Err(Error::Invalid("RNDIS message over a page"));
        }
        self.send_page.write_bytes(0, msg);
        let id = self.id();
        // GPA direct: reserved, one range of (length, offset 0, frame).
        let mut head = [0u8; 24];
        head[4..8].copy_from_slice(&1u32.to_le_bytes());
        head[8..12].copy_from_slice(&(msg.len() as u32).to_le_bytes());
        head[16..24].copy_from_slice(&(self.send_page.dma_addr(0) >> 12).to_le_bytes());
        let body = nvsp(NVSP1_SEND_RNDIS_PKT, &[channel, u32::MAX, 0]);
        self.ch.send(pkt::DATA_USING_GPA_DIRECT, pkt::FLAG_COMPLETION_REQUESTED, id, &head, &body)?;
        let r = self.wait(|s| s.completed.iter().position(|c| c.0 == id).map(|i| s.completed.swap_remove(i).1))?;
        match (r.u32_at(0), r.u32_at(4)) {
            (Some(NVSP1_SEND_RNDIS_PKT_COMPLETE), Some(NVSP_STAT_SUCCESS)) => Ok(()),
            (Some(NVSP1_SEND_RNDIS_PKT_COMPLETE), Some(s)) => Err(Error::Refused(s)),
            _ => Err(Error::Hostile("netvsc: send completed with another message")),
        }
    }

    /// An RNDIS control request; returns the whole completion message.
    fn rndis_request(&mut self, ty: u32, words: &[u32]) -> Result<Vec<u8>, Error> {
        let req = self.next_req;
        self.next_req += 1;
        let len = 12 + 4 * words.len();
        let mut m = Vec::with_capacity(len);
        for w in [ty, len as u32, req].iter().chain(words) {
            m.extend_from_slice(&w.to_le_bytes());
        }
        self.send_rndis(RNDIS_CONTROL, &m)?;
        self.wait(|s| {
            let i = s.rndis_done.iter().position(|c| c.u32_at(8) == Some(req))?;
            let c = s.rndis_done.swap_remove(i);
            Some(c)
        })
        .and_then(|c| {
            if c.u32_at(0) == Some(ty | RNDIS_COMPLETION) {
                Ok(c)
            } else {
                Err(Error::Hostile("netvsc: RNDIS answer of another type"))
            }
        })
    }

    /// Sends one Ethernet frame.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        if frame.len() > MAX_FRAME || frame.is_empty() {
            return Err(Error::Invalid("frame size"));
        }
        let mut m = Vec::with_capacity(RNDIS_PACKET_HDR + frame.len());
        let words = [RNDIS_MSG_PACKET, (RNDIS_PACKET_HDR + frame.len()) as u32, 36, frame.len() as u32];
        for w in words.iter().chain(&[0u32; 7]) {
            m.extend_from_slice(&w.to_le_bytes());
        }
        m.extend_from_slice(frame);
        self.send_rndis(RNDIS_DATA, &m)
    }

    /// The next received frame, if any.
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>, Error> {
        while self.frames.is_empty() && self.poll()? {}
        Ok(self.frames.pop_front())
    }

    /// Handles one host packet; false if none was waiting.
    fn poll(&mut self) -> Result<bool, Error> {
        let Some(p) = self.ch.recv()? else { return Ok(false) };
        match p.desc.ty {
            pkt::COMP => {
                if self.completed.len() >= MAX_QUEUED {
                    return Err(Error::Hostile("netvsc: unclaimed completions pile up"));
                }
                self.completed.push((p.desc.trans_id, p.payload().to_vec()));
            }
            pkt::DATA_USING_XFER_PAGES => {
                let r = self.xfer_pages(&p.raw, p.desc.offset8 as usize * 8);
                // The host's space is ours until completed, whatever it held.
                let status = if r.is_ok() { NVSP_STAT_SUCCESS } else { 2 };
                self.ch.send(pkt::COMP, 0, p.desc.trans_id, &[], &nvsp(NVSP1_SEND_RNDIS_PKT_COMPLETE, &[status]))?;
                r?;
            }
            // In-band NVSP notices (e.g. an indirection table): not used.
            _ => {}
        }
        Ok(true)
    }

    /// A transfer-page packet: the ranges of RNDIS messages in the receive buffer.
    fn xfer_pages(&mut self, raw: &[u8], payload: usize) -> Result<(), Error> {
        // After the descriptor: page set ID (u16), sender owns (u8),
        // reserved (u8), range count (u32), then (length, offset) pairs.
        let count = raw.u32_at(20).ok_or(Error::Hostile("netvsc: short transfer-page packet"))? as usize;
        if raw.u16_at(16) != Some(RECV_BUF_ID) {
            return Err(Error::Hostile("netvsc: transfer pages of an unknown buffer"));
        }
        if count.checked_mul(8).and_then(|n| n.checked_add(24)).is_none_or(|end| end > payload) {
            return Err(Error::Hostile("netvsc: transfer ranges beyond the packet header"));
        }
        if raw.u32_at(payload) != Some(NVSP1_SEND_RNDIS_PKT) {
            return Err(Error::Hostile("netvsc: transfer-page packet without an RNDIS message"));
        }
        for i in 0..count {
            let len = raw.u32_at(24 + 8 * i).unwrap_or(0) as usize;
            let off = raw.u32_at(28 + 8 * i).unwrap_or(0) as usize;
            if len < 8 || off.checked_add(len).is_none_or(|e| e > self.recv_buf.len()) {
                return Err(Error::Hostile("netvsc: receive range outside the buffer"));
            }
            let mut m = alloc::vec![0u8; len];
            self.recv_buf.read_bytes(off, &mut m);
            self.rndis(m)?;
        }
        Ok(())
    }

    /// One RNDIS message from the host.
    fn rndis(&mut self, mut m: Vec<u8>) -> Result<(), Error> {
        let ty = m.u32_at(0).unwrap_or(0);
        let len = m.u32_at(4).unwrap_or(0) as usize;
        if len < 8 || len > m.len() {
            return Err(Error::Hostile("netvsc: RNDIS length beyond its range"));
        }
        m.truncate(len);
        match ty {
            RNDIS_MSG_PACKET => {
                let off = m.u32_at(8).unwrap_or(0) as usize;
                let n = m.u32_at(12).unwrap_or(0) as usize;
                let start = off.checked_add(8).ok_or(Error::Hostile("netvsc: RNDIS data offset"))?;
                let frame = start.checked_add(n).and_then(|end| m.get(start..end));
                match frame {
                    Some(f) if (14..=MAX_FRAME).contains(&f.len()) => {
                        if self.frames.len() < MAX_QUEUED {
                            self.frames.push_back(f.to_vec());
                        }
                    }
                    _ => return Err(Error::Hostile("netvsc: RNDIS packet data outside the message")),
                }
            }
            t if t & RNDIS_COMPLETION != 0 => {
                if self.rndis_done.len() >= MAX_QUEUED || len < 16 {
                    return Err(Error::Hostile("netvsc: stray RNDIS completion"));
                }
                self.rndis_done.push(m);
            }
            // Link status and other indications; keep-alives are not asked for.
            RNDIS_MSG_INDICATE => {}
            _ => {}
        }
        Ok(())
    }
}

/// The status word of an RNDIS completion (after type, length, request ID).
fn rndis_status(c: &[u8]) -> Result<(), Error> {
    match c.u32_at(12) {
        Some(0) => Ok(()),
        Some(s) => Err(Error::Refused(s)),
        None => Err(Error::Hostile("netvsc: short RNDIS completion")),
    }
}

/// A netvsc adapter as the kernel's network device (guest only). Polled:
/// the stack asks for frames; sends wait for the host's completion.
#[cfg(target_os = "none")]
pub struct NetVscNic<P: Platform> {
    name: alloc::string::String,
    mac: [u8; 6],
    dev: spin::Mutex<NetVsc<P>>,
    /// A frame `rx_pending` fetched and `receive_with` has not lent yet.
    pending: spin::Mutex<Option<Vec<u8>>>,
    /// Set once the host broke the protocol: the adapter is not used again.
    broken: crate::io::Broken,
}

#[cfg(target_os = "none")]
impl<P: Platform + Clone> NetVscNic<P> {
    /// Wraps a started adapter under `name`.
    pub fn new(name: alloc::string::String, dev: NetVsc<P>) -> Self {
        Self {
            name,
            mac: dev.mac(),
            dev: spin::Mutex::new(dev),
            pending: spin::Mutex::new(None),
            broken: crate::io::Broken::new(),
        }
    }

    fn err(&self, e: Error) -> unikit_kernel::dev::DevError {
        use unikit_kernel::dev::DevError;
        match e {
            Error::Full => DevError::WouldBlock,
            Error::Invalid(_) => DevError::BadLength,
            Error::Refused(_) | Error::Scsi { .. } | Error::NoMemory => DevError::Io,
            Error::Hostile(why) => DevError::Broken(self.broken.set(why)),
            Error::Timeout | Error::Hypercall(_) | Error::NoVersion => {
                DevError::Broken(self.broken.set("netvsc: the host stopped answering"))
            }
        }
    }

    fn fetch(&self) -> Result<Option<Vec<u8>>, unikit_kernel::dev::DevError> {
        use unikit_kernel::dev::DevError;
        if let Some(why) = self.broken.get() {
            return Err(DevError::Broken(why));
        }
        if let Some(f) = self.pending.lock().take() {
            return Ok(Some(f));
        }
        self.dev.lock().recv().map_err(|e| self.err(e))
    }
}

#[cfg(target_os = "none")]
impl<P: Platform + Clone + Send> unikit_kernel::dev::NetDevice for NetVscNic<P> {
    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        MAX_FRAME - 14
    }
    fn rx_pending(&self) -> Result<bool, unikit_kernel::dev::DevError> {
        let f = self.fetch()?;
        let some = f.is_some();
        if some {
            *self.pending.lock() = f;
        }
        Ok(some)
    }
    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, unikit_kernel::dev::DevError> {
        match self.fetch()? {
            Some(frame) => {
                f(&frame);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), unikit_kernel::dev::DevError> {
        use unikit_kernel::dev::DevError;
        if let Some(why) = self.broken.get() {
            return Err(DevError::Broken(why));
        }
        if len == 0 || len > MAX_FRAME {
            return Err(DevError::BadLength);
        }
        let mut frame = alloc::vec![0u8; len];
        f(&mut frame);
        self.dev.lock().send(&frame).map_err(|e| self.err(e))
    }
    fn set_doorbell(&self, _doorbell: &'static dyn unikit_kernel::dev::Doorbell) {}
    fn has_interrupts(&self) -> bool {
        false
    }
}
