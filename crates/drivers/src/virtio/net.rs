//! virtio-net: one receive and one transmit queue, no offloads, no
//! mergeable buffers. Each queue entry is one 2 KiB slot holding the
//! virtio-net header followed by the frame.
use super::common::{Health, Ints};
use super::dma::DmaBuf;
use super::queue::{Buffer, QueueError, VirtQueue};
use super::transport::{self, F_ANY_LAYOUT, Notify, Transport};
use alloc::string::String;
use unikit_kernel::dev::{DevError, Doorbell, NetDevice};
use unikit_kernel::event::Event;

const F_MTU: u64 = 1 << 3;
const F_MAC: u64 = 1 << 5;

const RX: u16 = 0;
const TX: u16 = 1;
const SLOT: usize = 2048;
const QUEUE_WANT: u16 = 256;
/// Receive buffers posted (at most the queue size).
const RX_BUFFERS: usize = 64;
/// Transmit slots.
const TX_BUFFERS: usize = 32;
const ETH_HEADER: usize = 14;

struct Ring {
    q: VirtQueue,
    slots: DmaBuf,
    nslots: usize,
    notify: Notify,
}

impl Ring {
    fn new(
        t: &dyn Transport,
        index: u16,
        nslots_want: usize,
        vector: Option<u16>,
    ) -> Result<(Self, bool), &'static str> {
        let size = transport::queue_size(t, index, QUEUE_WANT)?;
        let q = VirtQueue::new(size).map_err(queue_err)?;
        let nslots = nslots_want.min(size as usize);
        let slots = DmaBuf::new(nslots * SLOT, 4096).ok_or("out of memory for packet buffers")?;
        let (notify, vector_ok) = t.setup_queue(index, &q, vector)?;
        Ok((Self { q, slots, nslots, notify }, vector_ok))
    }

    fn post(&mut self, slot: usize, device_writes: bool, len: usize) -> Result<(), QueueError> {
        let b = Buffer { addr: self.slots.addr(slot * SLOT), len: len as u32, device_writes };
        self.q.add(&[b], slot)?;
        Ok(())
    }

    fn kick(&self) {
        if self.q.needs_notify() {
            self.notify.ring();
        }
    }
}

fn queue_err(e: QueueError) -> &'static str {
    match e {
        QueueError::Broken(why) => why,
        QueueError::Full => "queue full",
        QueueError::BadRequest => "bad request",
    }
}

struct Rx {
    ring: Ring,
    /// A used slot taken off the ring by `rx_pending`, not yet lent out.
    held: Option<(usize, usize)>,
}

struct Tx {
    ring: Ring,
    free: alloc::vec::Vec<usize>,
}

pub struct VirtioNet {
    name: String,
    mac: [u8; 6],
    mtu: usize,
    hdr_len: usize,
    rx: spin::Mutex<Rx>,
    tx: spin::Mutex<Tx>,
    event: &'static Event,
    irq: bool,
    health: Health,
    kind: &'static str,
}

impl VirtioNet {
    /// Brings the device up. On error the device is reset and not used.
    pub fn new(name: String, t: &'static dyn Transport, ints: &Ints) -> Result<Self, &'static str> {
        Self::init(name, t, ints).inspect_err(|_| transport::fail(t))
    }

    fn init(name: String, t: &'static dyn Transport, ints: &Ints) -> Result<Self, &'static str> {
        let features = transport::negotiate(t, F_MAC | F_MTU | F_ANY_LAYOUT)?;
        let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
        let vector = ints.prepare(t, event);
        let mut mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        if features & F_MAC != 0 {
            transport::read_config(t, 0, &mut mac)?;
        }
        let mut mtu = 1500;
        if features & F_MTU != 0 {
            let mut m = [0u8; 2];
            transport::read_config(t, 10, &mut m)?;
            // A larger MTU does not fit our buffers: keep 1500.
            let m = u16::from_le_bytes(m) as usize;
            if (68..=1500).contains(&m) {
                mtu = m;
            }
        }
        // virtio 1.x: 12 bytes (num_buffers always present); legacy without
        // mergeable buffers: 10.
        let hdr_len = if t.is_legacy() { 10 } else { 12 };
        let (mut rx, rx_vec) = Ring::new(t, RX, RX_BUFFERS, vector)?;
        let (tx, tx_vec) = Ring::new(t, TX, TX_BUFFERS, vector)?;
        let irq = ints.finish(t, event, vector.is_some() && rx_vec && tx_vec);
        let mut tx = Tx { free: (0..tx.nslots).rev().collect(), ring: tx };
        for r in [&mut rx, &mut tx.ring] {
            r.q.suppress_interrupts(!irq);
        }
        for slot in 0..rx.nslots {
            rx.post(slot, true, SLOT).map_err(queue_err)?;
        }
        transport::driver_ok(t);
        rx.notify.ring();
        Ok(Self {
            name,
            mac,
            mtu,
            hdr_len,
            rx: spin::Mutex::new(Rx { ring: rx, held: None }),
            tx: spin::Mutex::new(tx),
            event,
            irq,
            health: Health::new(t),
            kind: t.kind(),
        })
    }

    pub fn transport_kind(&self) -> &'static str {
        self.kind
    }

    fn qerr(&self, e: QueueError) -> DevError {
        match e {
            QueueError::Full => DevError::WouldBlock,
            QueueError::BadRequest => DevError::BadLength,
            QueueError::Broken(why) => self.health.fail(why),
        }
    }
}

impl NetDevice for VirtioNet {
    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_pending(&self) -> Result<bool, DevError> {
        self.health.check()?;
        let mut rx = self.rx.lock();
        if rx.held.is_none() {
            rx.held = rx.ring.q.pop_used().map_err(|e| self.qerr(e))?.map(|(slot, len)| (slot, len as usize));
        }
        Ok(rx.held.is_some())
    }

    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError> {
        self.health.check()?;
        let mut rx = self.rx.lock();
        let used = match rx.held.take() {
            Some(h) => Some(h),
            None => rx.ring.q.pop_used().map_err(|e| self.qerr(e))?.map(|(slot, len)| (slot, len as usize)),
        };
        let Some((slot, len)) = used else { return Ok(false) };
        // The queue checked `len` <= SLOT (what we posted) and that `slot`
        // is a token we gave it.
        if len < self.hdr_len + ETH_HEADER {
            return Err(self.health.fail("received frame shorter than an Ethernet header"));
        }
        let off = slot * SLOT + self.hdr_len;
        let frame = len - self.hdr_len;
        if off + frame > rx.ring.slots.len() {
            return Err(self.health.fail("received slot outside the receive buffers"));
        }
        // SAFETY: `slot` came back on the used ring, so the device has
        // finished with it and no longer owns it until it is posted again
        // below; the range lies inside the slot (checked by the queue:
        // len <= SLOT). Only this thread holds the rx lock meanwhile.
        let bytes = unsafe { rx.ring.slots.region().lend(off, frame) };
        // Lent in place: the stack parses it straight from the DMA slot.
        f(bytes);
        rx.ring.post(slot, true, SLOT).map_err(|e| self.qerr(e))?;
        rx.ring.kick();
        Ok(true)
    }

    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError> {
        self.health.check()?;
        if len < ETH_HEADER || len > SLOT - self.hdr_len {
            return Err(DevError::BadLength);
        }
        let mut tx = self.tx.lock();
        while let Some((slot, _)) = tx.ring.q.pop_used().map_err(|e| self.qerr(e))? {
            tx.free.push(slot);
        }
        let Some(slot) = tx.free.pop() else {
            return Err(DevError::WouldBlock);
        };
        tx.ring.slots.fill(slot * SLOT, self.hdr_len, 0);
        let off = slot * SLOT + self.hdr_len;
        if off + len > tx.ring.slots.len() {
            tx.free.push(slot);
            return Err(DevError::BadLength);
        }
        // SAFETY: a free slot is not posted, so the device does not touch
        // it; the range lies inside it (len <= SLOT - hdr_len, checked
        // above). The tx lock is held until it is posted.
        let bytes = unsafe { tx.ring.slots.region().lend_mut(off, len) };
        // The stack writes the frame straight into the DMA slot.
        f(bytes);
        if let Err(e) = tx.ring.post(slot, false, self.hdr_len + len) {
            tx.free.push(slot);
            return Err(self.qerr(e));
        }
        tx.ring.kick();
        Ok(())
    }

    fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
        self.event.forward_to(doorbell);
    }

    fn has_interrupts(&self) -> bool {
        self.irq
    }
}
