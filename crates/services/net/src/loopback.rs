//! In-memory Ethernet devices: a loopback (every frame sent comes back) and
//! a pair of devices joined by a virtual cable. They let a unikernel talk
//! TCP to itself without a NIC, and the unit tests run two stacks.
use crate::sys::Event;
use crate::sys::{DevError, NetDevice};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Frames a queue holds before `transmit` says `WouldBlock`.
const QUEUE_FRAMES: usize = 512;

struct Queue {
    frames: spin::Mutex<VecDeque<Vec<u8>>>,
    /// Signalled when a frame is queued (the receiving side's event).
    event: Event,
}

impl Queue {
    fn new() -> Arc<Self> {
        Arc::new(Self { frames: spin::Mutex::new(VecDeque::new()), event: Event::new() })
    }
}

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
    fn receive(&self, buf: &mut [u8]) -> Result<usize, DevError> {
        let f = self.rx.frames.lock().pop_front().ok_or(DevError::WouldBlock)?;
        if f.len() > buf.len() {
            return Err(DevError::BadLength);
        }
        buf[..f.len()].copy_from_slice(&f);
        Ok(f.len())
    }
    fn transmit(&self, frame: &[u8]) -> Result<(), DevError> {
        if frame.len() > self.mtu + 14 || frame.len() < 14 {
            return Err(DevError::BadLength);
        }
        {
            let mut q = self.tx.frames.lock();
            if q.len() >= QUEUE_FRAMES {
                return Err(DevError::WouldBlock);
            }
            q.push_back(frame.to_vec());
        }
        self.tx.event.signal();
        Ok(())
    }
    fn event(&self) -> &Event {
        &self.rx.event
    }
    fn has_interrupts(&self) -> bool {
        true
    }
}
