//! e1000 legacy descriptor rings. The device owns receive descriptors from
//! RDH up to (not including) RDT and transmit descriptors from TDH up to
//! TDT; it hands them back by setting the DD status bit. The driver only
//! ever looks at descriptors it handed over, oldest first. Host-tested
//! (`tests.rs` plays a hostile device).
use super::DESC;
use core::sync::atomic::{Ordering, fence};
use unikit_io::DmaRegion;

pub type Violation = &'static str;

const STA_DD: u8 = 1 << 0;
const STA_EOP: u8 = 1 << 1;
const CMD_EOP: u8 = 1 << 0;
const CMD_IFCS: u8 = 1 << 1;
const CMD_RS: u8 = 1 << 3;

// Descriptor layout: 0 u64 buffer address; receive: 8 u16 length, 10 u16
// checksum, 12 u8 status, 13 u8 errors, 14 u16 special; transmit: 8 u16
// length, 10 u8 cso, 11 u8 cmd, 12 u8 status, 13 u8 css, 14 u16 special.
const LEN: usize = 8;
const TX_CMD: usize = 11;
const STATUS: usize = 12;
const RX_ERRORS: usize = 13;

fn valid_size(size: u32) -> bool {
    (8..=4096).contains(&size) && size.is_multiple_of(super::RING_ALIGN)
}

/// What the next receive descriptor said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxEvent {
    Frame {
        slot: usize,
        len: usize,
    },
    /// Errors, or a frame larger than one buffer: dropped.
    Dropped(usize),
}

/// Descriptor `i` receives into slot `i`. `size - 1` are with the device;
/// the one at `next - 1` is the gap that keeps RDH != RDT when it is full.
pub struct RxRing {
    desc: DmaRegion,
    size: u32,
    buf_len: usize,
    next: u32,
    out: bool,
}

impl RxRing {
    pub fn new(size: u32, buf_len: usize, addr: impl Fn(usize) -> u64) -> Option<Self> {
        if !valid_size(size) || buf_len == 0 || buf_len > 16384 {
            return None;
        }
        let desc = DmaRegion::alloc(size as usize * DESC, 128)?;
        for i in 0..size as usize {
            desc.write::<u64>(i * DESC, addr(i));
        }
        Some(Self { desc, size, buf_len, next: 0, out: false })
    }
    pub fn region(&self) -> &DmaRegion {
        &self.desc
    }
    pub fn size(&self) -> u32 {
        self.size
    }
    /// RDT to start with: every descriptor but the last.
    pub fn initial_tail(&self) -> u32 {
        self.size - 1
    }

    pub fn pop(&mut self) -> Result<Option<RxEvent>, Violation> {
        if self.out {
            return Err("driver bug: receive buffer taken twice");
        }
        let off = self.next as usize * DESC;
        let status: u8 = self.desc.read(off + STATUS);
        if status & STA_DD == 0 {
            return Ok(None);
        }
        // Length and errors only after seeing DD.
        fence(Ordering::Acquire);
        let len = self.desc.read::<u16>(off + LEN) as usize;
        let errors: u8 = self.desc.read(off + RX_ERRORS);
        self.out = true;
        let slot = self.next as usize;
        if status & STA_EOP == 0 || errors != 0 {
            return Ok(Some(RxEvent::Dropped(slot)));
        }
        if len > self.buf_len {
            return Err("received length beyond its buffer");
        }
        Ok(Some(RxEvent::Frame { slot, len }))
    }

    /// Gives the descriptor `pop` returned back; returns the new RDT.
    pub fn rearm(&mut self) -> Option<u32> {
        if !self.out {
            return None;
        }
        let off = self.next as usize * DESC;
        // Clear length/checksum/status/errors/special; the address stays.
        self.desc.write::<u64>(off + LEN, 0);
        fence(Ordering::Release);
        self.out = false;
        let tail = self.next;
        self.next = (self.next + 1) % self.size;
        Some(tail)
    }
}

/// Descriptor `i` sends from slot `i`; at most `size - 1` in flight (TDH
/// == TDT means empty).
pub struct TxRing {
    desc: DmaRegion,
    size: u32,
    fill: u32,
    clean: u32,
    in_flight: u32,
}

impl TxRing {
    pub fn new(size: u32) -> Option<Self> {
        if !valid_size(size) {
            return None;
        }
        Some(Self { desc: DmaRegion::alloc(size as usize * DESC, 128)?, size, fill: 0, clean: 0, in_flight: 0 })
    }
    pub fn region(&self) -> &DmaRegion {
        &self.desc
    }
    pub fn size(&self) -> u32 {
        self.size
    }
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
    pub fn free_slot(&self) -> Option<usize> {
        (self.in_flight < self.size - 1).then_some(self.fill as usize)
    }

    /// Posts slot `free_slot()`; returns the new TDT.
    pub fn post(&mut self, addr: u64, len: usize) -> Option<u32> {
        if self.in_flight >= self.size - 1 || len == 0 || len > 16288 {
            return None;
        }
        let off = self.fill as usize * DESC;
        self.desc.write::<u64>(off, addr);
        self.desc.write::<u16>(off + LEN, len as u16);
        self.desc.write::<u8>(off + LEN + 2, 0);
        self.desc.write::<u8>(off + TX_CMD, CMD_EOP | CMD_IFCS | CMD_RS);
        self.desc.write::<u32>(off + STATUS, 0);
        fence(Ordering::Release);
        self.fill = (self.fill + 1) % self.size;
        self.in_flight += 1;
        Some(self.fill)
    }

    /// Frees the in-flight descriptors the device marked done, oldest
    /// first; stops at the first one not done.
    pub fn reclaim(&mut self) -> u32 {
        let mut n = 0;
        while self.in_flight > 0 {
            let off = self.clean as usize * DESC;
            if self.desc.read::<u8>(off + STATUS) & STA_DD == 0 {
                break;
            }
            self.clean = (self.clean + 1) % self.size;
            self.in_flight -= 1;
            n += 1;
        }
        n
    }
}
