//! The VMBus ring buffers of one channel. One block of guest memory holds
//! both: the outbound (guest to host) ring first, the inbound ring after
//! it. Each ring is a 4 KiB header page (`hv_ring_buffer`: write index,
//! read index, interrupt mask, pending send size, ..., feature bits at 64)
//! followed by the data area. A packet is a 16-byte descriptor, its payload
//! padded to 8 bytes, and an 8-byte trailer (the packet's start offset in
//! the upper half); indices are byte offsets into the data area and wrap.
//!
//! The host writes the inbound write index and the outbound read index at
//! any time: each is read once, checked (inside the data area, 8-aligned)
//! and kept in a local; our own indices live here and are only written to
//! the shared page, never read back from it.
use super::Error;
use super::abi::{DESCRIPTOR_SIZE, Descriptor, PAGE};
use crate::io::DmaRegion;
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

const WRITE_INDEX: usize = 0;
const READ_INDEX: usize = 4;
const INTERRUPT_MASK: usize = 8;
const PENDING_SEND_SZ: usize = 12;
const TRAILER: usize = 8;

/// One ring (header page + data) inside the channel's memory.
struct Half {
    /// Offset of the header page in the region.
    base: usize,
    /// Bytes of the data area.
    size: u32,
    /// Our index: the write index (outbound) or the read index (inbound).
    ours: u32,
}

impl Half {
    fn data(&self) -> usize {
        self.base + PAGE
    }

    /// The host's index, checked: inside the data area and 8-aligned.
    fn theirs(&self, mem: &DmaRegion, at: usize) -> Result<u32, Error> {
        let v = mem.atomic_u32(self.base + at).load(Ordering::Acquire);
        if v >= self.size || !v.is_multiple_of(8) {
            return Err(Error::Hostile("ring index outside the ring"));
        }
        Ok(v)
    }

    /// Copies `src` into the data area at `pos`, wrapping; returns the new position.
    fn put(&self, mem: &DmaRegion, pos: u32, src: &[u8]) -> u32 {
        let pos = pos as usize;
        let size = self.size as usize;
        let first = src.len().min(size - pos);
        mem.write_bytes(self.data() + pos, &src[..first]);
        mem.write_bytes(self.data(), &src[first..]);
        ((pos + src.len()) % size) as u32
    }

    /// Copies from the data area at `pos` into `dst`, wrapping.
    fn get(&self, mem: &DmaRegion, pos: u32, dst: &mut [u8]) {
        let pos = pos as usize;
        let size = self.size as usize;
        let first = dst.len().min(size - pos);
        mem.read_bytes(self.data() + pos, &mut dst[..first]);
        mem.read_bytes(self.data(), &mut dst[first..]);
    }
}

/// A packet read from the inbound ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Its descriptor.
    pub desc: Descriptor,
    /// The whole packet, descriptor included (the bytes between the
    /// descriptor and `desc.offset8 * 8` are type-specific headers, e.g.
    /// transfer page ranges).
    pub raw: Vec<u8>,
}

impl Packet {
    /// The payload: bytes from `offset8 * 8` to the end (checked on receipt).
    pub fn payload(&self) -> &[u8] {
        &self.raw[self.desc.offset8 as usize * 8..]
    }
}

/// Both rings of a channel.
pub struct Rings {
    mem: DmaRegion,
    out: Half,
    inb: Half,
}

/// What a send needs from the caller afterwards.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Sent {
    /// The host is (or may be) asleep on an empty ring: signal it.
    Signal,
    /// The host is reading or has masked interrupts: no signal needed.
    Quiet,
}

impl Rings {
    /// Rings over `mem`, which must hold `out_pages + in_pages` pages (each
    /// ring at least 2: header and data). The headers are zeroed. Our
    /// `feat_pending_send_sz` bit (offset 64 of the outbound header) stays
    /// clear: a full outbound ring is polled, not waited on with a pending
    /// size; the host's bit on the inbound ring is honoured in `recv`.
    pub fn new(mem: DmaRegion, out_pages: usize, in_pages: usize) -> Result<Self, Error> {
        if out_pages < 2 || in_pages < 2 || mem.len() < (out_pages + in_pages) * PAGE {
            return Err(Error::Invalid("ring memory too small"));
        }
        let size = |pages: usize| u32::try_from((pages - 1) * PAGE).map_err(|_| Error::Invalid("ring too large"));
        let out = Half { base: 0, size: size(out_pages)?, ours: 0 };
        let inb = Half { base: out_pages * PAGE, size: size(in_pages)?, ours: 0 };
        for h in [&out, &inb] {
            mem.fill(h.base, PAGE, 0);
        }
        Ok(Self { mem, out, inb })
    }

    /// The memory (for the GPADL that shares it).
    pub fn memory(&self) -> &DmaRegion {
        &self.mem
    }

    /// Pages of the outbound ring (OPENCHANNEL's downstream page offset).
    pub fn out_pages(&self) -> u32 {
        (self.inb.base / PAGE) as u32
    }

    /// Writes one packet: descriptor (`ty`, `flags`, `trans_id`), then
    /// `head` (type-specific header bytes, a multiple of 8) and `body`,
    /// padded to 8 bytes, then the trailer. `Err(Full)` if it does not fit
    /// now (the ring is never filled completely: equal indices mean empty).
    pub fn send(&mut self, ty: u16, flags: u16, trans_id: u64, head: &[u8], body: &[u8]) -> Result<Sent, Error> {
        if !head.len().is_multiple_of(8) {
            return Err(Error::Invalid("packet header not 8-byte aligned"));
        }
        let hdr = DESCRIPTOR_SIZE + head.len();
        let len = (hdr + body.len()).next_multiple_of(8);
        let total = len + TRAILER;
        let offset8 = u16::try_from(hdr / 8).map_err(|_| Error::Invalid("packet too large"))?;
        let len8 = u16::try_from(len / 8).map_err(|_| Error::Invalid("packet too large"))?;
        let read = self.out.theirs(&self.mem, READ_INDEX)?;
        let w = self.out.ours;
        let free = if w >= read { self.out.size - (w - read) } else { read - w } as usize;
        if free <= total {
            return Err(Error::Full);
        }
        let d = Descriptor { ty, offset8, len8, flags, trans_id }.encode();
        let mut pos = self.out.put(&self.mem, w, &d);
        pos = self.out.put(&self.mem, pos, head);
        pos = self.out.put(&self.mem, pos, body);
        let pad = len - hdr - body.len();
        pos = self.out.put(&self.mem, pos, &[0u8; 8][..pad]);
        pos = self.out.put(&self.mem, pos, &((w as u64) << 32).to_le_bytes());
        // The packet is complete in memory before the host can see the index.
        fence(Ordering::Release);
        self.out.ours = pos;
        self.mem.atomic_u32(self.out.base + WRITE_INDEX).store(pos, Ordering::Release);
        fence(Ordering::SeqCst);
        // Signal only when the host may be asleep: it has not masked
        // interrupts and the ring was empty before this packet.
        let mask = self.mem.atomic_u32(self.out.base + INTERRUPT_MASK).load(Ordering::Acquire);
        let read_now = self.mem.atomic_u32(self.out.base + READ_INDEX).load(Ordering::Acquire);
        Ok(if mask == 0 && read_now == w { Sent::Signal } else { Sent::Quiet })
    }

    /// Bytes the host has written and we have not read (checked).
    fn readable(&self) -> Result<u32, Error> {
        let write = self.inb.theirs(&self.mem, WRITE_INDEX)?;
        let r = self.inb.ours;
        Ok(if write >= r { write - r } else { self.inb.size - r + write })
    }

    /// Takes the next inbound packet, or `None` if the ring is empty. A
    /// descriptor that does not fit what the host has written (length
    /// beyond the written bytes, payload offset before the descriptor's end
    /// or after the packet's) is an error; nothing is consumed then.
    /// Returns whether the host should be signalled (it waits for room).
    pub fn recv(&mut self) -> Result<Option<(Packet, Sent)>, Error> {
        let avail = self.readable()? as usize;
        if avail == 0 {
            return Ok(None);
        }
        if avail < DESCRIPTOR_SIZE + TRAILER {
            return Err(Error::Hostile("ring holds less than a packet"));
        }
        let mut d = [0u8; DESCRIPTOR_SIZE];
        self.inb.get(&self.mem, self.inb.ours, &mut d);
        let desc = Descriptor::parse(&d);
        let len = desc.len8 as usize * 8;
        let off = desc.offset8 as usize * 8;
        if len < DESCRIPTOR_SIZE || off < DESCRIPTOR_SIZE || off > len || len + TRAILER > avail {
            return Err(Error::Hostile("packet descriptor does not fit the ring"));
        }
        let mut raw = alloc::vec![0u8; len];
        self.inb.get(&self.mem, self.inb.ours, &mut raw);
        // Everything is copied out before the host may reuse the space.
        fence(Ordering::Acquire);
        let before = self.free_for_host();
        self.inb.ours = ((self.inb.ours as usize + len + TRAILER) % self.inb.size as usize) as u32;
        self.mem.atomic_u32(self.inb.base + READ_INDEX).store(self.inb.ours, Ordering::Release);
        fence(Ordering::SeqCst);
        // The host told us how much room it waits for: signal once there is.
        let pending = self.mem.atomic_u32(self.inb.base + PENDING_SEND_SZ).load(Ordering::Acquire) as usize;
        let after = self.free_for_host();
        let sent = if pending != 0 && before < pending && after >= pending { Sent::Signal } else { Sent::Quiet };
        Ok(Some((Packet { desc, raw }, sent)))
    }

    /// Free bytes in the inbound ring from the host's side (by our read index).
    fn free_for_host(&self) -> usize {
        let w = self.mem.atomic_u32(self.inb.base + WRITE_INDEX).load(Ordering::Acquire);
        let (w, r, size) = (w as usize, self.inb.ours as usize, self.inb.size as usize);
        if w >= size {
            return 0;
        }
        if w >= r { size - (w - r) } else { r - w }
    }

    /// Masks (`true`) or unmasks host interrupts for the inbound ring.
    /// After unmasking, call [`Rings::pending`]: a packet that arrived
    /// meanwhile raised no interrupt.
    pub fn mask_interrupts(&self, masked: bool) {
        self.mem.atomic_u32(self.inb.base + INTERRUPT_MASK).store(masked as u32, Ordering::SeqCst);
    }

    /// Whether inbound packets are waiting (a hostile index counts as
    /// waiting: the next [`Rings::recv`] reports it).
    pub fn pending(&self) -> bool {
        self.readable() != Ok(0)
    }
}
