//! VMBus, Hyper-V's device bus: the SynIC message and event pages, the
//! connection handshake (INITIATE_CONTACT and version negotiation), channel
//! offers, GPADLs (guest memory shared with the host by frame list),
//! OPENCHANNEL, and the channel ring buffers ([`ring`]). On top: the
//! integration services (shutdown, heartbeat) in [`ic`], the synthetic SCSI
//! disk in [`storvsc`] and the synthetic network adapter in [`netvsc`].
//!
//! Everything the host writes is checked: message sizes, offer fields,
//! relids, ring indices, packet descriptors. A wrong value is an
//! [`Error`], never an access outside our memory.
//!
//! The hypervisor is reached through [`Platform`] (MSRs, HvPostMessage,
//! HvSignalEvent, waiting), so the same code runs against Hyper-V in the
//! guest and against a simulated host in the host tests (`sim_tests`).
#![deny(unsafe_code)]

pub mod abi;
pub mod ic;
pub mod netvsc;
pub mod ring;
pub mod storvsc;

use crate::io::DmaRegion;
use abi::{Le, Offer, Out, msg};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
pub use ring::{Packet, Rings, Sent};

/// What can go wrong talking to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The host wrote something impossible (the reason says what).
    Hostile(&'static str),
    /// The caller asked for something impossible.
    Invalid(&'static str),
    /// The outbound ring has no room now.
    Full,
    /// No answer from the host in time.
    Timeout,
    /// No memory for pages or rings.
    NoMemory,
    /// A hypercall failed with this Hyper-V status.
    Hypercall(u16),
    /// The host accepted none of the protocol versions unikit speaks.
    NoVersion,
    /// The host refused a GPADL, an OPENCHANNEL or a request with this status.
    Refused(u32),
    /// A SCSI command failed (SRB status, SCSI status).
    Scsi {
        /// SRB status (1: success).
        srb_status: u8,
        /// SCSI status (0: good, 2: check condition).
        scsi_status: u8,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Hostile(why) => write!(f, "host sent a bad value: {why}"),
            Self::Invalid(why) => write!(f, "invalid request: {why}"),
            Self::Full => f.write_str("ring full"),
            Self::Timeout => f.write_str("no answer from the host"),
            Self::NoMemory => f.write_str("out of memory"),
            Self::Hypercall(s) => write!(f, "hypercall failed with status {s:#x}"),
            Self::NoVersion => f.write_str("no common VMBus protocol version"),
            Self::Refused(s) => write!(f, "host refused with status {s:#x}"),
            Self::Scsi { srb_status, scsi_status } => {
                write!(f, "SCSI command failed (SRB status {srb_status:#x}, SCSI status {scsi_status:#x})")
            }
        }
    }
}

/// The hypervisor as VMBus needs it.
pub trait Platform {
    /// Reads a synthetic MSR.
    fn rdmsr(&self, msr: u32) -> u64;
    /// Writes a synthetic MSR.
    fn wrmsr(&self, msr: u32, value: u64);
    /// HvPostMessage to `connection_id` (message type [`abi::HVMSG_CHANNEL`]);
    /// `payload` is at most 240 bytes. Returns the Hyper-V status (0: success).
    fn post_message(&self, connection_id: u32, payload: &[u8]) -> u16;
    /// HvSignalEvent for `connection_id`, flag 0. Returns the status.
    fn signal_event(&self, connection_id: u32) -> u16;
    /// Waits a little for the host (an interrupt or a short pause);
    /// `waited` counts the previous waits for the same answer. False when
    /// the caller should give up.
    fn wait(&self, waited: u32) -> bool;
}

/// HV_STATUS_INSUFFICIENT_BUFFERS: the host's message queue is full; retry.
const HV_STATUS_INSUFFICIENT_BUFFERS: u16 = 0x13;
/// Unrelated messages tolerated while waiting for one answer.
const MAX_SKIPPED: usize = 64;
/// Offers tolerated in one enumeration.
const MAX_OFFERS: usize = 256;

/// The SynIC's message and event flags pages, enabled.
pub struct Synic {
    simp: DmaRegion,
    siefp: DmaRegion,
}

impl Synic {
    /// Allocates and enables the message and event flags pages and routes
    /// the VMBus SINT to `vector` (auto-EOI when `auto_eoi`).
    pub fn enable<P: Platform>(p: &P, vector: u8, auto_eoi: bool) -> Result<Self, Error> {
        let simp = DmaRegion::alloc(abi::PAGE, abi::PAGE).ok_or(Error::NoMemory)?;
        let siefp = DmaRegion::alloc(abi::PAGE, abi::PAGE).ok_or(Error::NoMemory)?;
        p.wrmsr(abi::MSR_SIMP, simp.dma_addr(0) | 1);
        p.wrmsr(abi::MSR_SIEFP, siefp.dma_addr(0) | 1);
        let sint = abi::MSR_SINT0 + abi::VMBUS_MESSAGE_SINT as u32;
        let mut v = (p.rdmsr(sint) & !(0xff | abi::SINT_MASKED | abi::SINT_AUTO_EOI)) | vector as u64;
        if auto_eoi {
            v |= abi::SINT_AUTO_EOI;
        }
        p.wrmsr(sint, v);
        p.wrmsr(abi::MSR_SCONTROL, p.rdmsr(abi::MSR_SCONTROL) | 1);
        Ok(Self { simp, siefp })
    }

    /// Takes the message waiting in the VMBus slot, if any, and frees the
    /// slot (with an end-of-message write when the host has more queued).
    /// A message of another type or with a payload size over 240 is freed
    /// too and reported as an error.
    pub fn take_message<P: Platform>(&self, p: &P) -> Option<Result<Vec<u8>, Error>> {
        let slot = abi::VMBUS_MESSAGE_SINT * abi::MESSAGE_SIZE;
        let ty = self.simp.atomic_u32(slot).load(Ordering::Acquire);
        if ty == 0 {
            return None;
        }
        let size = self.simp.read::<u8>(slot + 4) as usize;
        let flags = self.simp.read::<u8>(slot + 5);
        let m = if ty != abi::HVMSG_CHANNEL {
            Err(Error::Hostile("message of another type on the VMBus SINT"))
        } else if size > abi::MESSAGE_PAYLOAD {
            Err(Error::Hostile("message payload over 240 bytes"))
        } else {
            let mut b = alloc::vec![0u8; size];
            self.simp.read_bytes(slot + 16, &mut b);
            Ok(b)
        };
        // Free the slot only after copying; then tell the host it may
        // deliver the next one if it said one is pending.
        self.simp.atomic_u32(slot).store(0, Ordering::SeqCst);
        if flags & 1 != 0 {
            p.wrmsr(abi::MSR_EOM, 0);
        }
        Some(m)
    }

    /// Whether the host signalled channel `relid` (clears the flag).
    pub fn take_event(&self, relid: u32) -> bool {
        if relid > abi::MAX_RELID {
            return false;
        }
        let byte = abi::VMBUS_MESSAGE_SINT * abi::EVENT_FLAGS_BYTES + relid as usize / 8;
        let bit = 1u8 << (relid % 8);
        self.siefp.atomic_u8(byte).fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }
}

/// The connection to the host's VMBus.
pub struct Vmbus<P: Platform + Clone> {
    p: P,
    synic: Synic,
    /// Negotiated protocol version (`major << 16 | minor`).
    version: u32,
    /// Connection ID for channel messages after INITIATE_CONTACT.
    conn_id: u32,
    next_gpadl: u32,
    /// Guest-to-host interrupt page (second half: one bit per relid) for
    /// channels without a dedicated interrupt; both monitor pages.
    int_page: Arc<DmaRegion>,
    monitor: DmaRegion,
}

impl<P: Platform + Clone> Vmbus<P> {
    /// Connects: offers the versions unikit speaks, newest first, until the
    /// host accepts one.
    pub fn connect(p: P, synic: Synic) -> Result<Self, Error> {
        let int_page = Arc::new(DmaRegion::alloc(abi::PAGE, abi::PAGE).ok_or(Error::NoMemory)?);
        let monitor = DmaRegion::alloc(2 * abi::PAGE, abi::PAGE).ok_or(Error::NoMemory)?;
        let mut bus = Self { p, synic, version: 0, conn_id: 0, next_gpadl: 0xe1e10, int_page, monitor };
        for v in abi::VERSIONS {
            let v5 = v >= 5 << 16;
            let mut m = Out::message(msg::INITIATE_CONTACT);
            m.u32(v).u32(0);
            // From 5.0 the union holds the SINT for our messages; before,
            // the interrupt page's address.
            m.u64(if v5 { abi::VMBUS_MESSAGE_SINT as u64 } else { bus.int_page.dma_addr(0) });
            m.u64(bus.monitor.dma_addr(0)).u64(bus.monitor.dma_addr(abi::PAGE));
            bus.post(if v5 { abi::MESSAGE_CONNECTION_ID_4 } else { abi::MESSAGE_CONNECTION_ID }, &m.0)?;
            let r = bus.wait_for(msg::VERSION_RESPONSE, |_| true)?;
            if r.u8_at(8).ok_or(Error::Hostile("short VERSION_RESPONSE"))? == 0 {
                continue;
            }
            bus.version = v;
            bus.conn_id = if v5 {
                match r.u32_at(12) {
                    Some(0) | None => return Err(Error::Hostile("VERSION_RESPONSE without a connection ID")),
                    Some(id) => id,
                }
            } else {
                abi::MESSAGE_CONNECTION_ID
            };
            return Ok(bus);
        }
        Err(Error::NoVersion)
    }

    /// The negotiated protocol version (`major << 16 | minor`).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The SynIC (for the interrupt handler's event flags).
    pub fn synic(&self) -> &Synic {
        &self.synic
    }

    fn post(&self, conn: u32, m: &[u8]) -> Result<(), Error> {
        for waited in 0..10_000 {
            match self.p.post_message(conn, m) {
                0 => return Ok(()),
                HV_STATUS_INSUFFICIENT_BUFFERS => {
                    if !self.p.wait(waited) {
                        break;
                    }
                }
                s => return Err(Error::Hypercall(s)),
            }
        }
        Err(Error::Timeout)
    }

    /// The next channel message from the host.
    fn next_message(&self) -> Result<Vec<u8>, Error> {
        let mut waited = 0;
        loop {
            if let Some(m) = self.synic.take_message(&self.p) {
                return m;
            }
            if !self.p.wait(waited) {
                return Err(Error::Timeout);
            }
            waited += 1;
        }
    }

    /// Waits for a message of type `ty` that `matches`; others are skipped
    /// (a bounded number: a host that floods us gets an error).
    fn wait_for(&self, ty: u32, matches: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, Error> {
        for _ in 0..MAX_SKIPPED {
            let m = self.next_message()?;
            if m.u32_at(0) == Some(ty) && matches(&m) {
                return Ok(m);
            }
        }
        Err(Error::Hostile("too many unexpected messages"))
    }

    /// Asks for the channel offers and collects them until the host says
    /// all are delivered.
    pub fn request_offers(&mut self) -> Result<Vec<Offer>, Error> {
        self.post(self.conn_id, &Out::message(msg::REQUESTOFFERS).0)?;
        let mut offers: Vec<Offer> = Vec::new();
        for _ in 0..MAX_OFFERS + MAX_SKIPPED {
            let m = self.next_message()?;
            match m.u32_at(0) {
                Some(msg::OFFERCHANNEL) => {
                    let o = Offer::parse(&m).ok_or(Error::Hostile("malformed channel offer"))?;
                    if offers.iter().any(|x| x.relid == o.relid) {
                        return Err(Error::Hostile("two offers with one relid"));
                    }
                    if offers.len() == MAX_OFFERS {
                        return Err(Error::Hostile("too many channel offers"));
                    }
                    offers.push(o);
                }
                Some(msg::ALLOFFERS_DELIVERED) => return Ok(offers),
                _ => {}
            }
        }
        Err(Error::Hostile("offers never end"))
    }

    /// Shares `mem` (whole pages) with the host as a GPADL on channel
    /// `relid`: a GPADL_HEADER with the first frames, GPADL_BODY messages
    /// with the rest, then the host's GPADL_CREATED. Returns the handle.
    pub fn create_gpadl(&mut self, relid: u32, mem: &DmaRegion) -> Result<u32, Error> {
        let pages = mem.len() / abi::PAGE;
        if pages == 0 || !mem.len().is_multiple_of(abi::PAGE) || !mem.dma_addr(0).is_multiple_of(abi::PAGE as u64) {
            return Err(Error::Invalid("GPADL memory must be whole pages"));
        }
        // range_buflen (u16) covers the range header and every frame.
        let buflen = u16::try_from(8 + 8 * pages).map_err(|_| Error::Invalid("GPADL too large"))?;
        let byte_count = u32::try_from(mem.len()).map_err(|_| Error::Invalid("GPADL too large"))?;
        let pfns: Vec<u64> = (0..pages).map(|i| mem.dma_addr(i * abi::PAGE) >> 12).collect();
        let handle = self.next_gpadl;
        self.next_gpadl = self.next_gpadl.wrapping_add(1).max(1);
        let first = pages.min(abi::GPADL_HEADER_PFNS);
        let mut m = Out::message(msg::GPADL_HEADER);
        m.u32(relid).u32(handle).u16(buflen).u16(1).u32(byte_count).u32(0);
        pfns[..first].iter().for_each(|&f| _ = m.u64(f));
        self.post(self.conn_id, &m.0)?;
        for (n, chunk) in pfns[first..].chunks(abi::GPADL_BODY_PFNS).enumerate() {
            let mut m = Out::message(msg::GPADL_BODY);
            m.u32(n as u32).u32(handle);
            chunk.iter().for_each(|&f| _ = m.u64(f));
            self.post(self.conn_id, &m.0)?;
        }
        let r = self.wait_for(msg::GPADL_CREATED, |m| m.u32_at(8) == Some(relid) && m.u32_at(12) == Some(handle))?;
        match r.u32_at(16) {
            Some(0) => Ok(handle),
            Some(s) => Err(Error::Refused(s)),
            None => Err(Error::Hostile("short GPADL_CREATED")),
        }
    }

    /// Opens the channel of `offer` with rings of `out_pages` and
    /// `in_pages` pages (each including its header page).
    pub fn open(&mut self, offer: &Offer, out_pages: usize, in_pages: usize) -> Result<Channel<P>, Error> {
        let mem = DmaRegion::alloc((out_pages + in_pages) * abi::PAGE, abi::PAGE).ok_or(Error::NoMemory)?;
        let rings = Rings::new(mem, out_pages, in_pages)?;
        let gpadl = self.create_gpadl(offer.relid, rings.memory())?;
        let openid = offer.relid;
        let mut m = Out::message(msg::OPENCHANNEL);
        m.u32(offer.relid).u32(openid).u32(gpadl).u32(0).u32(rings.out_pages()).bytes(&[0; 120]);
        self.post(self.conn_id, &m.0)?;
        let r = self
            .wait_for(msg::OPENCHANNEL_RESULT, |m| m.u32_at(8) == Some(offer.relid) && m.u32_at(12) == Some(openid))?;
        match r.u32_at(16) {
            Some(0) => {}
            Some(s) => return Err(Error::Refused(s)),
            None => return Err(Error::Hostile("short OPENCHANNEL_RESULT")),
        }
        Ok(Channel {
            p: self.p.clone(),
            relid: offer.relid,
            conn_id: offer.connection_id,
            dedicated: offer.dedicated_interrupt,
            int_page: self.int_page.clone(),
            rings,
            gpadl,
        })
    }
}

/// An open channel: its rings and how to signal the host.
pub struct Channel<P: Platform> {
    p: P,
    relid: u32,
    conn_id: u32,
    dedicated: bool,
    int_page: Arc<DmaRegion>,
    rings: Rings,
    gpadl: u32,
}

impl<P: Platform> Channel<P> {
    /// The channel's relid (its event flag).
    pub fn relid(&self) -> u32 {
        self.relid
    }

    /// The GPADL handle of its rings.
    pub fn ring_gpadl(&self) -> u32 {
        self.gpadl
    }

    fn signal(&self) {
        if !self.dedicated {
            // Channels sharing the interrupt say which one in the send half.
            let byte = abi::PAGE / 2 + self.relid as usize / 8;
            self.int_page.atomic_u8(byte).fetch_or(1 << (self.relid % 8), Ordering::AcqRel);
        }
        self.p.signal_event(self.conn_id);
    }

    /// Sends one packet (see [`Rings::send`]) and signals the host if needed.
    pub fn send(&mut self, ty: u16, flags: u16, trans_id: u64, head: &[u8], body: &[u8]) -> Result<(), Error> {
        if self.rings.send(ty, flags, trans_id, head, body)? == Sent::Signal {
            self.signal();
        }
        Ok(())
    }

    /// Sends an in-band data packet.
    pub fn send_inband(&mut self, trans_id: u64, body: &[u8], completion: bool) -> Result<(), Error> {
        let flags = if completion { abi::pkt::FLAG_COMPLETION_REQUESTED } else { 0 };
        self.send(abi::pkt::DATA_INBAND, flags, trans_id, &[], body)
    }

    /// The next inbound packet, if any.
    pub fn recv(&mut self) -> Result<Option<Packet>, Error> {
        Ok(self.rings.recv()?.map(|(pkt, sent)| {
            if sent == Sent::Signal {
                self.signal();
            }
            pkt
        }))
    }

    /// Waits a little for the host (see [`Platform::wait`]).
    pub fn wait(&self, waited: u32) -> bool {
        self.p.wait(waited)
    }

    /// The rings (interrupt mask, pending check).
    pub fn rings(&self) -> &Rings {
        &self.rings
    }
}

#[cfg(test)]
mod netvsc_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod storvsc_tests;
