//! A kernel `NetDevice` seen as a smoltcp `Device`.
use crate::sys::{DevError, NetDevice};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Frames the device had no room for, kept until it has (beyond this many,
/// frames are dropped and TCP retransmits).
const MAX_BACKLOG: usize = 64;
const ETH_HEADER: usize = 14;

#[derive(Default, Clone, Copy, Debug)]
pub struct Stats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

pub(crate) struct Adapter {
    dev: Arc<dyn NetDevice>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    backlog: VecDeque<Vec<u8>>,
    pub broken: Option<&'static str>,
    pub stats: Stats,
}

impl Adapter {
    pub fn new(dev: Arc<dyn NetDevice>) -> Self {
        // Room for the largest frame plus a VLAN tag.
        let frame = dev.mtu() + ETH_HEADER + 4;
        Self {
            dev,
            rx: vec![0; frame],
            tx: Vec::with_capacity(frame),
            backlog: VecDeque::new(),
            broken: None,
            stats: Stats::default(),
        }
    }

    /// Hands queued frames to the device; true when none is left waiting.
    pub fn flush(&mut self) -> bool {
        while let Some(f) = self.backlog.front() {
            match self.dev.transmit(f) {
                Ok(()) => {
                    self.stats.tx_frames += 1;
                    self.backlog.pop_front();
                }
                Err(DevError::WouldBlock) => return false,
                Err(e) => {
                    self.note_error(e);
                    self.stats.tx_dropped += 1;
                    self.backlog.pop_front();
                }
            }
        }
        true
    }

    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    fn note_error(&mut self, e: DevError) {
        if let DevError::Broken(why) = e {
            self.broken = Some(why);
        }
    }
}

pub(crate) struct Rx<'a> {
    frame: &'a [u8],
}

pub(crate) struct Tx<'a> {
    dev: &'a dyn NetDevice,
    buf: &'a mut Vec<u8>,
    backlog: &'a mut VecDeque<Vec<u8>>,
    stats: &'a mut Stats,
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.buf.clear();
        self.buf.resize(len, 0);
        let r = f(&mut self.buf[..]);
        // Keep the order: behind frames already waiting, wait too.
        let sent = self.backlog.is_empty()
            && match self.dev.transmit(self.buf) {
                Ok(()) => true,
                Err(DevError::WouldBlock) => false,
                Err(_) => {
                    self.stats.tx_dropped += 1;
                    return r;
                }
            };
        if sent {
            self.stats.tx_frames += 1;
        } else if self.backlog.len() < MAX_BACKLOG {
            self.backlog.push_back(self.buf.clone());
        } else {
            self.stats.tx_dropped += 1;
        }
        r
    }
}

impl phy::Device for Adapter {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        if self.broken.is_some() {
            return None;
        }
        let n = loop {
            match self.dev.receive(&mut self.rx) {
                Ok(n) if n <= self.rx.len() => break n,
                Ok(_) => {
                    self.broken = Some("receive() reported more bytes than the buffer holds");
                    return None;
                }
                Err(DevError::BadLength) => self.stats.rx_dropped += 1, // oversized frame, dropped
                Err(DevError::WouldBlock) => return None,
                Err(e) => {
                    self.note_error(e);
                    return None;
                }
            }
        };
        self.stats.rx_frames += 1;
        Some((
            Rx { frame: &self.rx[..n] },
            Tx { dev: &*self.dev, buf: &mut self.tx, backlog: &mut self.backlog, stats: &mut self.stats },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        if self.broken.is_some() || !self.flush() {
            return None;
        }
        Some(Tx { dev: &*self.dev, buf: &mut self.tx, backlog: &mut self.backlog, stats: &mut self.stats })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.dev.mtu() + ETH_HEADER;
        caps
    }
}
