//! The vmxnet3 rings as the driver sees them: a command ring it fills and a
//! completion ring the device fills, each with a generation bit. Everything
//! read from a completion ring is checked here before it becomes an index
//! or a length. Host-tested (`tests.rs` plays a hostile device).
use super::DESC;
use core::sync::atomic::{Ordering, fence};
use unikit_io::DmaRegion;

/// Why the device is not trusted any more.
pub type Violation = &'static str;

/// Generation bit of completion descriptors (bit 31 of dword 3).
const COMP_GEN: u32 = 1 << 31;
const COMP_TYPE_SHIFT: u32 = 24;
const COMP_TYPE_MASK: u32 = 0x7f;
const CDTYPE_TXCOMP: u32 = 0;
const CDTYPE_RXCOMP: u32 = 3;

// Tx descriptor dword 2: len (14 bits, 0 means 16 KiB), generation at bit 14.
const TXD_GEN_SHIFT: u32 = 14;
// Tx descriptor dword 3: eop at bit 12, cq (completion wanted) at bit 13.
const TXD_EOP: u32 = 1 << 12;
const TXD_CQ: u32 = 1 << 13;
// Rx descriptor dword 2: len (14 bits), btype at 14 (0 head), generation at 31.
const RXD_GEN_SHIFT: u32 = 31;
// Rx completion dword 0: rxdIdx (12 bits), eop bit 14, sop bit 15, rqID 16..26.
const RCD_EOP: u32 = 1 << 14;
const RCD_SOP: u32 = 1 << 15;
// Rx completion dword 2: len (14 bits), err bit 14.
const RCD_ERR: u32 = 1 << 14;
/// Largest length a descriptor's 14-bit field can say.
pub const MAX_LEN: usize = (1 << 14) - 1;

/// A completion ring: where the next entry is and which generation marks it
/// as written by the device.
pub struct CompRing {
    mem: DmaRegion,
    size: u32,
    next: u32,
    generation: u32,
}

impl CompRing {
    pub fn new(size: u32) -> Option<Self> {
        let mem = DmaRegion::alloc(size as usize * DESC, 512)?;
        Some(Self { mem, size, next: 0, generation: 1 })
    }
    pub fn region(&self) -> &DmaRegion {
        &self.mem
    }
    pub fn size(&self) -> u32 {
        self.size
    }
    /// The next completion's four dwords, if the device has written it.
    fn peek(&self) -> Option<[u32; 4]> {
        let off = self.next as usize * DESC;
        let d3: u32 = self.mem.read(off + 12);
        if (d3 & COMP_GEN != 0) as u32 != self.generation {
            return None;
        }
        // Read the rest only after seeing the generation bit flip.
        fence(Ordering::Acquire);
        Some([self.mem.read(off), self.mem.read(off + 4), self.mem.read(off + 8), d3])
    }
    fn advance(&mut self) {
        self.next += 1;
        if self.next == self.size {
            self.next = 0;
            self.generation ^= 1;
        }
    }
}

fn comp_type(d3: u32) -> u32 {
    (d3 >> COMP_TYPE_SHIFT) & COMP_TYPE_MASK
}

/// Transmit: descriptor `i` always sends from buffer slot `i`, so the free
/// slot is the next descriptor to fill; completions free descriptors in
/// order.
pub struct TxRing {
    desc: DmaRegion,
    pub comp: CompRing,
    size: u32,
    fill: u32,
    generation: u32,
    /// Oldest descriptor still with the device.
    clean: u32,
    in_flight: u32,
}

impl TxRing {
    pub fn new(size: u32) -> Option<Self> {
        if size == 0 || size > 4096 {
            return None;
        }
        Some(Self {
            desc: DmaRegion::alloc(size as usize * DESC, 512)?,
            comp: CompRing::new(size)?,
            size,
            fill: 0,
            generation: 1,
            clean: 0,
            in_flight: 0,
        })
    }
    pub fn region(&self) -> &DmaRegion {
        &self.desc
    }
    pub fn size(&self) -> u32 {
        self.size
    }
    /// The slot the next frame goes into, if a descriptor is free.
    pub fn free_slot(&self) -> Option<usize> {
        (self.in_flight < self.size).then_some(self.fill as usize)
    }
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Hands slot `free_slot()` (at device address `addr`, `len` bytes) to
    /// the device. Returns the producer index to write to TXPROD.
    pub fn post(&mut self, addr: u64, len: usize) -> Option<u32> {
        if self.in_flight >= self.size || len == 0 || len > MAX_LEN {
            return None;
        }
        let off = self.fill as usize * DESC;
        self.desc.write::<u64>(off, addr);
        self.desc.write::<u32>(off + 12, TXD_EOP | TXD_CQ);
        // The generation bit hands the descriptor over: written last.
        fence(Ordering::Release);
        self.desc.write::<u32>(off + 8, len as u32 | self.generation << TXD_GEN_SHIFT);
        self.fill += 1;
        if self.fill == self.size {
            self.fill = 0;
            self.generation ^= 1;
        }
        self.in_flight += 1;
        Some(self.fill)
    }

    /// Takes every completion the device wrote; returns how many
    /// descriptors were freed.
    pub fn reclaim(&mut self) -> Result<u32, Violation> {
        let mut freed = 0;
        while let Some(c) = self.comp.peek() {
            if comp_type(c[3]) != CDTYPE_TXCOMP {
                return Err("tx completion of the wrong type");
            }
            let idx = c[0] & 0xfff;
            if idx >= self.size {
                return Err("tx completion names a descriptor outside the ring");
            }
            // Completions name the last descriptor of a packet: it must be
            // one still in flight, and everything up to it is done.
            let ahead = (idx + self.size - self.clean) % self.size;
            if ahead >= self.in_flight {
                return Err("tx completion for a descriptor not in flight");
            }
            let n = ahead + 1;
            self.clean = (self.clean + n) % self.size;
            self.in_flight -= n;
            freed += n;
            self.comp.advance();
        }
        Ok(freed)
    }
}

/// A received frame: buffer slot and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    pub slot: usize,
    pub len: usize,
}

/// What the next receive completion said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxEvent {
    /// A whole frame in one buffer.
    Frame(RxFrame),
    /// A frame the device flagged as bad, or one spread over several
    /// buffers (larger than ours): the buffer goes back unread.
    Dropped(usize),
}

/// Receive ring 0 (head buffers, one frame each); ring 1 is given to the
/// device empty (no body buffers: every frame fits one 2 KiB buffer).
/// Descriptor `i` always receives into slot `i`, and the ring is kept full:
/// a returned descriptor is re-armed in place, so the device must return
/// them in order.
pub struct RxRing {
    desc: DmaRegion,
    pub comp: CompRing,
    size: u32,
    buf_len: usize,
    /// Next descriptor the device returns (and the next to re-arm).
    next: u32,
    /// Generation the re-armed descriptor at `next` gets.
    generation: u32,
    /// Whether the descriptor at `next` has been returned but not re-armed.
    out: bool,
}

impl RxRing {
    /// `size` head descriptors, `comp_size` completion entries (ring 0 plus
    /// ring 1), slots of `buf_len` bytes at `addr(i)`. All are armed.
    pub fn new(size: u32, comp_size: u32, buf_len: usize, addr: impl Fn(usize) -> u64) -> Option<Self> {
        if size == 0 || size > 4096 || comp_size < size || buf_len == 0 || buf_len > MAX_LEN {
            return None;
        }
        let desc = DmaRegion::alloc(size as usize * DESC, 512)?;
        for i in 0..size as usize {
            desc.write::<u64>(i * DESC, addr(i));
            desc.write::<u32>(i * DESC + 12, 0);
            desc.write::<u32>(i * DESC + 8, buf_len as u32 | 1 << RXD_GEN_SHIFT);
        }
        // Every descriptor was armed with generation 1: the next lap's is 0.
        Some(Self { desc, comp: CompRing::new(comp_size)?, size, buf_len, next: 0, generation: 0, out: false })
    }
    pub fn region(&self) -> &DmaRegion {
        &self.desc
    }
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The next completion, checked: `Ok(None)` if there is none.
    pub fn pop(&mut self) -> Result<Option<RxEvent>, Violation> {
        if self.out {
            return Err("driver bug: receive buffer taken twice");
        }
        let Some(c) = self.comp.peek() else { return Ok(None) };
        // VMware writes type 3 (RXCOMP); QEMU leaves the field 0. Anything
        // else (LRO's extended descriptors) was not asked for.
        if !matches!(comp_type(c[3]), 0 | CDTYPE_RXCOMP) {
            return Err("rx completion of the wrong type");
        }
        let idx = c[0] & 0xfff;
        let rq = (c[0] >> 16) & 0x3ff;
        if rq != 0 {
            // Ring 1 (rqID 1) has no buffers; other queues do not exist.
            return Err("rx completion for a ring without buffers");
        }
        if idx != self.next {
            return Err("rx completion out of order");
        }
        let len = (c[2] & 0x3fff) as usize;
        let whole = c[0] & (RCD_SOP | RCD_EOP) == RCD_SOP | RCD_EOP;
        let err = c[2] & RCD_ERR != 0;
        if whole && !err && len > self.buf_len {
            return Err("rx completion longer than its buffer");
        }
        self.comp.advance();
        self.out = true;
        let slot = idx as usize;
        Ok(Some(if whole && !err { RxEvent::Frame(RxFrame { slot, len }) } else { RxEvent::Dropped(slot) }))
    }

    /// Re-arms the descriptor `pop` returned. Returns the index to write to
    /// RXPROD (the next descriptor the driver will fill).
    pub fn rearm(&mut self) -> u32 {
        if !self.out {
            return self.next;
        }
        let off = self.next as usize * DESC;
        fence(Ordering::Release);
        self.desc.write::<u32>(off + 8, self.buf_len as u32 | self.generation << RXD_GEN_SHIFT);
        self.out = false;
        self.next += 1;
        if self.next == self.size {
            self.next = 0;
            self.generation ^= 1;
        }
        self.next
    }
}
