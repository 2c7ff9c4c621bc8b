//! Split virtqueues (virtio 1.x section 2.7, and the legacy layout).
//!
//! The ring lives in one zeroed, page-aligned allocation laid out as legacy
//! devices require (descriptor table, available ring, then the used ring on
//! the next page), which modern devices accept as well.
//!
//! The device is not trusted. The driver keeps its own shadow of every
//! descriptor chain it posted and never reads descriptors back; what it
//! reads from the used ring (index, element id, written length) is checked
//! against that shadow. Any inconsistency marks the queue broken and every
//! later call fails with the same reason.
#![deny(unsafe_code)]
use super::dma::DmaBuf;
use core::sync::atomic::{Ordering, fence};
use unikit_io::Broken;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
/// avail.flags: do not interrupt me.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// used.flags: no need to notify.
const USED_F_NO_NOTIFY: u16 = 1;

/// Longest descriptor chain the drivers build (block: header, data, status).
pub const MAX_CHAIN: usize = 4;
/// Largest queue this driver sets up.
pub const MAX_QUEUE_SIZE: u16 = 1024;
const PAGE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// Not enough free descriptors: retry after completions.
    Full,
    /// A chain that is empty, too long or has a length over `u32`.
    BadRequest,
    /// The device broke the ring protocol (or the queue is unusable).
    Broken(&'static str),
}

/// One buffer of a chain: a DMA address and length, and whether the device
/// writes it (otherwise it reads it).
#[derive(Clone, Copy, Debug)]
pub struct Buffer {
    pub addr: u64,
    pub len: u32,
    pub device_writes: bool,
}

#[derive(Clone, Copy)]
struct InFlight {
    chain: [u16; MAX_CHAIN],
    chain_len: u8,
    /// Bytes the device may write (sum of its writable buffers).
    writable: u32,
    token: usize,
}

pub struct VirtQueue {
    mem: DmaBuf,
    size: u16,
    avail_off: usize,
    used_off: usize,
    /// Free descriptor indexes (a stack).
    free: alloc::vec::Vec<u16>,
    /// By head descriptor: the chain posted there.
    inflight: alloc::vec::Vec<Option<InFlight>>,
    /// Next free slot of the available ring (free-running).
    avail_idx: u16,
    /// Next used element to consume (free-running).
    last_used: u16,
    broken: Broken,
}

/// Byte sizes of the three parts for a queue of `size` entries.
fn layout(size: usize) -> (usize, usize, usize) {
    let avail_off = 16 * size;
    let used_off = (avail_off + 6 + 2 * size).next_multiple_of(PAGE);
    let total = used_off + (6 + 8 * size).next_multiple_of(PAGE);
    (avail_off, used_off, total)
}

impl VirtQueue {
    /// A queue of `size` entries (a power of two, 1..=[`MAX_QUEUE_SIZE`]).
    pub fn new(size: u16) -> Result<Self, QueueError> {
        if !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return Err(QueueError::Broken("queue size is not a power of two up to 1024"));
        }
        let (avail_off, used_off, total) = layout(size as usize);
        let mem = DmaBuf::new(total, PAGE).ok_or(QueueError::Broken("out of memory for a virtqueue"))?;
        Ok(Self {
            mem,
            size,
            avail_off,
            used_off,
            free: (0..size).rev().collect(),
            inflight: alloc::vec![None; size as usize],
            avail_idx: 0,
            last_used: 0,
            broken: Broken::new(),
        })
    }

    pub fn size(&self) -> u16 {
        self.size
    }
    /// DMA addresses of the descriptor table, available ring and used ring.
    pub fn desc_addr(&self) -> u64 {
        self.mem.addr(0)
    }
    pub fn avail_addr(&self) -> u64 {
        self.desc_addr() + self.avail_off as u64
    }
    pub fn used_addr(&self) -> u64 {
        self.desc_addr() + self.used_off as u64
    }
    pub fn num_free(&self) -> usize {
        self.free.len()
    }
    pub fn in_flight(&self) -> usize {
        self.size as usize - self.free.len()
    }
    pub fn broken(&self) -> Option<&'static str> {
        self.broken.get()
    }
    /// Marks the queue unusable (e.g. after a timeout).
    pub fn set_broken(&mut self, why: &'static str) {
        self.broken.set(why);
    }

    /// The ring memory; every offset computed in this file is inside it
    /// (indexes are reduced modulo `size`), and the region checks anyway.
    fn ring(&self) -> &unikit_io::DmaRegion {
        self.mem.region()
    }

    /// Asks the device not to interrupt for this queue (polling mode).
    pub fn suppress_interrupts(&mut self, on: bool) {
        self.ring().write::<u16>(self.avail_off, if on { AVAIL_F_NO_INTERRUPT } else { 0 })
    }

    /// Posts a chain and returns its head descriptor; the caller notifies
    /// the device afterwards (see [`VirtQueue::needs_notify`]). `token` is
    /// handed back by [`VirtQueue::pop_used`].
    pub fn add(&mut self, bufs: &[Buffer], token: usize) -> Result<u16, QueueError> {
        self.broken.check().map_err(QueueError::Broken)?;
        if bufs.is_empty() || bufs.len() > MAX_CHAIN {
            return Err(QueueError::BadRequest);
        }
        if self.free.len() < bufs.len() {
            return Err(QueueError::Full);
        }
        let mut writable: u32 = 0;
        for b in bufs.iter().filter(|b| b.device_writes) {
            writable = writable.checked_add(b.len).ok_or(QueueError::BadRequest)?;
        }
        let mut chain = [0u16; MAX_CHAIN];
        for (i, slot) in chain.iter_mut().take(bufs.len()).enumerate() {
            *slot = self.free[self.free.len() - 1 - i];
        }
        self.free.truncate(self.free.len() - bufs.len());
        for (i, b) in bufs.iter().enumerate() {
            let id = chain[i] as usize;
            let last = i + 1 == bufs.len();
            let flags = if last { 0 } else { DESC_F_NEXT } | if b.device_writes { DESC_F_WRITE } else { 0 };
            let next = if last { 0 } else { chain[i + 1] };
            let (ring, d) = (self.ring(), 16 * id);
            ring.write::<u64>(d, b.addr);
            ring.write::<u32>(d + 8, b.len);
            ring.write::<u16>(d + 12, flags);
            ring.write::<u16>(d + 14, next);
        }
        let head = chain[0];
        self.inflight[head as usize] = Some(InFlight { chain, chain_len: bufs.len() as u8, writable, token });
        let slot = (self.avail_idx % self.size) as usize;
        self.ring().write::<u16>(self.avail_off + 4 + 2 * slot, head);
        // The descriptors and the ring entry must be visible before the index.
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ring().write::<u16>(self.avail_off + 2, self.avail_idx);
        Ok(head)
    }

    /// Whether the device wants a notification after [`VirtQueue::add`].
    pub fn needs_notify(&self) -> bool {
        // The index update must be visible before we read the device's flag.
        fence(Ordering::SeqCst);
        self.ring().read::<u16>(self.used_off) & USED_F_NO_NOTIFY == 0
    }

    /// Whether the device has completed something not yet popped (it may
    /// still be bogus: [`VirtQueue::pop_used`] checks).
    pub fn has_used(&self) -> bool {
        !self.broken.is_broken() && self.ring().read::<u16>(self.used_off + 2) != self.last_used
    }

    /// Takes the next completed chain: its token and the number of bytes
    /// the device says it wrote. Frees its descriptors.
    pub fn pop_used(&mut self) -> Result<Option<(usize, u32)>, QueueError> {
        self.broken.check().map_err(QueueError::Broken)?;
        let idx = self.ring().read::<u16>(self.used_off + 2);
        let pending = idx.wrapping_sub(self.last_used);
        if pending == 0 {
            return Ok(None);
        }
        if pending as usize > self.in_flight() {
            return Err(self.fail("used ring index ahead of the requests in flight"));
        }
        // Read the element only after seeing the index that publishes it.
        fence(Ordering::Acquire);
        let slot = (self.last_used % self.size) as usize;
        let elem = self.used_off + 4 + 8 * slot;
        // Each field is read exactly once, so the device cannot change it
        // after the check.
        let (id, len) = (self.ring().read::<u32>(elem), self.ring().read::<u32>(elem + 4));
        if id >= self.size as u32 {
            return Err(self.fail("used element id out of range"));
        }
        let Some(f) = self.inflight[id as usize].take() else {
            return Err(self.fail("used element id is not a request in flight"));
        };
        if len > f.writable {
            self.inflight[id as usize] = Some(f);
            return Err(self.fail("used length larger than the buffer"));
        }
        self.free.extend_from_slice(&f.chain[..f.chain_len as usize]);
        self.last_used = self.last_used.wrapping_add(1);
        Ok(Some((f.token, len)))
    }

    fn fail(&mut self, why: &'static str) -> QueueError {
        QueueError::Broken(self.broken.set(why))
    }

    /// The device side, for tests: the ring memory.
    #[cfg(test)]
    pub(crate) fn raw(&self) -> &unikit_io::DmaRegion {
        self.ring()
    }
    #[cfg(test)]
    pub(crate) fn offsets(&self) -> (usize, usize) {
        (self.avail_off, self.used_off)
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "queue_fuzz.rs"]
mod fuzz;
