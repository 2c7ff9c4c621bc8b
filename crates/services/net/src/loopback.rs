//! In-memory Ethernet devices: a loopback (every frame sent comes back) and
//! a pair of devices joined by a virtual cable. They let a unikernel talk
//! TCP to itself without a NIC, and the unit tests run two stacks.
use crate::sys::{DevError, Doorbell, NetDevice};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Frames a queue holds before `transmit` says `WouldBlock`.
const QUEUE_FRAMES: usize = 512;

struct Queue {
    frames: spin::Mutex<VecDeque<Vec<u8>>>,
    /// Rung when a frame is queued (the receiving side's stack).
    doorbell: spin::Once<&'static dyn Doorbell>,
}

impl Queue {
    fn new() -> Arc<Self> {
        Arc::new(Self { frames: spin::Mutex::new(VecDeque::new()), doorbell: spin::Once::new() })
    }
}

/// A device that hands every transmitted frame back as received: host tests and 127.0.0.1 without a NIC.
pub struct Loopback {
    name: &'static str,
    mac: [u8; 6],
    mtu: usize,
    rx: Arc<Queue>,
    tx: Arc<Queue>,
}

impl Loopback {
    /// A device that receives what it sends (give it e.g. 127.0.0.1/8).
    pub fn new() -> Arc<Self> {
        let q = Queue::new();
        Arc::new(Self { name: "lo", mac: [0x02, 0, 0, 0, 0, 1], mtu: 65000, rx: q.clone(), tx: q })
    }

    /// Two devices joined by a cable: what one sends, the other receives.
    pub fn pair() -> (Arc<Self>, Arc<Self>) {
        let (a, b) = (Queue::new(), Queue::new());
        (
            Arc::new(Self { name: "pair0", mac: [0x02, 0, 0, 0, 0, 0xa], mtu: 1500, rx: a.clone(), tx: b.clone() }),
            Arc::new(Self { name: "pair1", mac: [0x02, 0, 0, 0, 0, 0xb], mtu: 1500, rx: b, tx: a }),
        )
    }
}

impl NetDevice for Loopback {
    fn name(&self) -> &str {
        self.name
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        self.mtu
    }
    fn rx_pending(&self) -> Result<bool, DevError> {
        Ok(!self.rx.frames.lock().is_empty())
    }
    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError> {
        let Some(frame) = self.rx.frames.lock().pop_front() else { return Ok(false) };
        f(&frame);
        Ok(true)
    }
    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError> {
        if len > self.mtu + 14 || len < 14 {
            return Err(DevError::BadLength);
        }
        if self.tx.frames.lock().len() >= QUEUE_FRAMES {
            return Err(DevError::WouldBlock);
        }
        // The frame itself is the queue entry: written once, moved after.
        let mut frame = alloc::vec![0u8; len];
        f(&mut frame);
        self.tx.frames.lock().push_back(frame);
        if let Some(d) = self.tx.doorbell.get() {
            d.ring();
        }
        Ok(())
    }
    fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
        self.rx.doorbell.call_once(|| doorbell);
        if !self.rx.frames.lock().is_empty() {
            doorbell.ring();
        }
    }
    fn has_interrupts(&self) -> bool {
        true
    }
}
