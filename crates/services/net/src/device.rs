//! A kernel `NetDevice` seen as a smoltcp `Device`, without copies of its
//! own: a received frame is parsed where the driver keeps it (its DMA slot,
//! its tap buffer) and an outgoing one is written straight into the
//! driver's transmit buffer. Only a frame the device has no room for is
//! copied, into a short backlog.
use crate::sys::{DevError, NetDevice};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::Cell;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Frames the device had no room for, kept until it has (beyond this many,
/// frames are dropped and TCP retransmits).
const MAX_BACKLOG: usize = 64;
const ETH_HEADER: usize = 14;

/// Frame counters of the interface.
#[derive(Default, Clone, Copy, Debug)]
pub struct Stats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent.
    pub tx_frames: u64,
    /// Frames received but dropped (no buffer, malformed).
    pub rx_dropped: u64,
    /// Frames not sent (device full or broken).
    pub tx_dropped: u64,
    /// Frames the adapter copied: sent ones that had to wait in the
    /// backlog (received frames are never copied: the driver lends them).
    pub tx_copies: u64,
    /// SYNs dropped because their listener's accept queue was full.
    pub syn_dropped: u64,
}

pub(crate) struct Adapter {
    dev: Arc<dyn NetDevice>,
    backlog: VecDeque<Vec<u8>>,
    /// TCP ports whose accept queue is full: a new SYN to them is dropped
    /// before smoltcp sees it (which would answer RST), so the client
    /// retries a moment later, as with a full Linux listen queue.
    pub syn_gate: Vec<u16>,
    /// Where smoltcp builds a frame that cannot be sent (no room in the
    /// device or the backlog): allocated once, so that path never fails.
    scratch: Vec<u8>,
    pub broken: Cell<Option<&'static str>>,
    pub stats: Cell<Stats>,
}

impl Adapter {
    pub fn new(dev: Arc<dyn NetDevice>) -> Self {
        Self {
            scratch: alloc::vec![0; dev.mtu() + ETH_HEADER + 4],
            dev,
            backlog: VecDeque::new(),
            syn_gate: Vec::new(),
            broken: Cell::new(None),
            stats: Cell::new(Stats::default()),
        }
    }

    /// Hands queued frames to the device; true when none is left waiting.
    pub fn flush(&mut self) -> bool {
        while let Some(f) = self.backlog.front() {
            match self.dev.transmit(f) {
                Ok(()) => {
                    bump(&self.stats, |s| s.tx_frames += 1);
                    self.backlog.pop_front();
                }
                Err(DevError::WouldBlock) => return false,
                Err(e) => {
                    note_error(&self.broken, e);
                    bump(&self.stats, |s| s.tx_dropped += 1);
                    self.backlog.pop_front();
                }
            }
        }
        true
    }

    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }
}

fn note_error(broken: &Cell<Option<&'static str>>, e: DevError) {
    if let DevError::Broken(why) = e {
        broken.set(Some(why));
    }
}

fn bump(stats: &Cell<Stats>, f: impl FnOnce(&mut Stats)) {
    let mut s = stats.get();
    f(&mut s);
    stats.set(s);
}

/// The destination port of a TCP SYN (without ACK) to IPv4, if `frame` is
/// one. Every offset is checked against the frame's length.
pub(crate) fn tcp_syn_port(frame: &[u8]) -> Option<u16> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    // Protocol TCP, and the first fragment (the TCP header is there).
    if ihl < 20 || *ip.get(9)? != 6 || u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x1fff != 0 {
        return None;
    }
    let tcp = ip.get(ihl..)?;
    let flags = *tcp.get(13)?;
    (flags & 0x12 == 0x02).then(|| u16::from_be_bytes([tcp[2], tcp[3]]))
}

/// A frame the device holds for us; consumed in place.
pub(crate) struct Rx<'a> {
    gate: &'a [u16],
    dev: &'a dyn NetDevice,
    broken: &'a Cell<Option<&'static str>>,
    stats: &'a Cell<Stats>,
}

pub(crate) struct Tx<'a> {
    dev: &'a dyn NetDevice,
    backlog: &'a mut VecDeque<Vec<u8>>,
    scratch: &'a mut Vec<u8>,
    broken: &'a Cell<Option<&'static str>>,
    stats: &'a Cell<Stats>,
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        let gate = self.gate;
        let mut gated = false;
        let r = self.dev.receive_with(&mut |frame| {
            if !gate.is_empty() && tcp_syn_port(frame).is_some_and(|p| gate.contains(&p)) {
                gated = true; // dropped: smoltcp gets an empty frame below
            } else if let Some(f) = f.take() {
                out = Some(f(frame));
            }
        });
        if gated {
            bump(self.stats, |s| s.syn_dropped += 1);
        }
        match r {
            Ok(true) => bump(self.stats, |s| s.rx_frames += 1),
            Ok(false) => {}
            Err(DevError::BadLength) => bump(self.stats, |s| s.rx_dropped += 1),
            Err(e) => note_error(self.broken, e),
        }
        // smoltcp needs a result even when the frame vanished between
        // `receive` and here (a broken device) or was gated: hand it an
        // empty frame, which it drops as malformed.
        match (out, f) {
            (Some(r), _) => r,
            (None, Some(f)) => f(&[]),
            (None, None) => unreachable!("the closure ran but gave no result"),
        }
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        // Keep the order: behind frames already waiting, wait too.
        let direct = if self.backlog.is_empty() {
            self.dev.transmit_with(len, &mut |buf| {
                if let Some(f) = f.take() {
                    out = Some(f(buf));
                }
            })
        } else {
            Err(DevError::WouldBlock)
        };
        match direct {
            Ok(()) => bump(self.stats, |s| s.tx_frames += 1),
            Err(DevError::WouldBlock) if f.is_some() => {
                if self.backlog.len() < MAX_BACKLOG
                    && self.backlog.try_reserve(1).is_ok()
                    && let Some(mut buf) = crate::stack::try_zeroed(len)
                {
                    let r = (f.take().unwrap())(&mut buf);
                    self.backlog.push_back(buf);
                    bump(self.stats, |s| s.tx_copies += 1);
                    return r;
                }
                bump(self.stats, |s| s.tx_dropped += 1);
            }
            Err(e) => {
                note_error(self.broken, e);
                bump(self.stats, |s| s.tx_dropped += 1);
            }
        }
        match (out, f) {
            (Some(r), _) => r,
            // Not sent: smoltcp still builds the frame (into scratch space);
            // TCP retransmits it.
            (None, Some(f)) => {
                if self.scratch.len() < len {
                    // Larger than the MTU allows: only a smoltcp bug asks this.
                    self.scratch.resize(len, 0);
                }
                f(&mut self.scratch[..len])
            }
            (None, None) => unreachable!("the closure ran but gave no result"),
        }
    }
}

impl phy::Device for Adapter {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        if self.broken.get().is_some() {
            return None;
        }
        match self.dev.rx_pending() {
            Ok(true) => {}
            Ok(false) | Err(DevError::WouldBlock) => return None,
            Err(e) => {
                note_error(&self.broken, e);
                return None;
            }
        }
        let dev = &*self.dev;
        Some((
            Rx { gate: &self.syn_gate, dev, broken: &self.broken, stats: &self.stats },
            Tx {
                dev,
                backlog: &mut self.backlog,
                scratch: &mut self.scratch,
                broken: &self.broken,
                stats: &self.stats,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        if self.broken.get().is_some() || !self.flush() {
            return None;
        }
        Some(Tx {
            dev: &*self.dev,
            backlog: &mut self.backlog,
            scratch: &mut self.scratch,
            broken: &self.broken,
            stats: &self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.dev.mtu() + ETH_HEADER;
        caps
    }
}
