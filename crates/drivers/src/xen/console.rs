//! The Xen PV console: a ring page shared with xenconsoled in dom0 and an
//! event channel to kick it. Indexes written by the other side are checked;
//! a ring that breaks its protocol is dropped and output goes to the
//! emergency console (`console_io`) instead.
#![deny(unsafe_code)]
use super::abi::XenconsInterface;
use super::{evtchn, hypercall};
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, Ordering, fence};
use unikit_io::{Broken, DmaRegion};

static RING: spin::Once<DmaRegion> = spin::Once::new();
static PORT: AtomicU32 = AtomicU32::new(0);
static BROKEN: Broken = Broken::new();

const OUTPUT: usize = offset_of!(XenconsInterface, output);
const OUT_CONS: usize = offset_of!(XenconsInterface, out_cons);
const OUT_PROD: usize = offset_of!(XenconsInterface, out_prod);

const OUT_SIZE: u32 = 2048;
/// How many yields we wait for xenconsoled to make room before dropping
/// output (it may be gone, e.g. during dom0 shutdown).
const PATIENCE: u32 = 200_000;

/// Starts using the console ring: the mapped console page, which the
/// platform hands over for the domain's life. A region too small for the
/// ring is not used.
pub fn init(ring: DmaRegion, port: u32) {
    if ring.len() < size_of::<XenconsInterface>() {
        return;
    }
    PORT.store(port, Ordering::Relaxed);
    RING.call_once(|| ring);
}

pub fn ready() -> bool {
    RING.is_completed() && !BROKEN.is_broken()
}

/// The ring, unless absent or broken.
fn ring() -> Option<&'static DmaRegion> {
    RING.get().filter(|_| !BROKEN.is_broken())
}

/// Reads the backend's consumer index and checks it against ours.
fn pending(ring: &DmaRegion, prod: u32) -> Option<u32> {
    let cons = ring.read::<u32>(OUT_CONS); // written by the backend
    let used = prod.wrapping_sub(cons);
    (used <= OUT_SIZE).then_some(used)
}

/// Writes `bytes` to the console; false if the ring is not usable.
pub fn write(bytes: &[u8]) -> bool {
    let Some(ring) = ring() else { return false };
    let port = PORT.load(Ordering::Relaxed);
    let mut rest = bytes;
    let mut waited = 0;
    while !rest.is_empty() {
        let prod = ring.read::<u32>(OUT_PROD); // our own index
        let Some(used) = pending(ring, prod) else {
            BROKEN.set("xen console ring index out of range");
            hypercall::console_io_write(b"unikit: xen console ring index out of range; console dropped\n");
            return false;
        };
        let room = (OUT_SIZE - used) as usize;
        if room == 0 {
            evtchn::notify(port);
            hypercall::yield_cpu();
            waited += 1;
            if waited > PATIENCE {
                return true; // nobody reads: drop rather than hang
            }
            continue;
        }
        let n = room.min(rest.len());
        for (i, &b) in rest[..n].iter().enumerate() {
            let idx = (prod.wrapping_add(i as u32) % OUT_SIZE) as usize;
            ring.write::<u8>(OUTPUT + idx, b); // `idx` < OUT_SIZE
        }
        fence(Ordering::Release);
        ring.write::<u32>(OUT_PROD, prod.wrapping_add(n as u32));
        rest = &rest[n..];
    }
    evtchn::notify(port);
    true
}

/// Waits (a bounded time) until xenconsoled has read everything, so that
/// the last lines are not lost when the domain goes away.
pub fn flush() {
    let Some(ring) = ring() else { return };
    let port = PORT.load(Ordering::Relaxed);
    for _ in 0..PATIENCE {
        let prod = ring.read::<u32>(OUT_PROD);
        if pending(ring, prod).is_none_or(|used| used == 0) {
            return;
        }
        evtchn::notify(port);
        hypercall::yield_cpu();
    }
}
