//! The Xen PV console: a ring page shared with xenconsoled in dom0 and an
//! event channel to kick it. Indexes written by the other side are checked;
//! a ring that breaks its protocol is dropped and output goes to the
//! emergency console (`console_io`) instead.
use super::abi::XenconsInterface;
use super::{evtchn, hypercall};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering, fence};

static RING: AtomicPtr<XenconsInterface> = AtomicPtr::new(core::ptr::null_mut());
static PORT: AtomicU32 = AtomicU32::new(0);
static BROKEN: AtomicBool = AtomicBool::new(false);

const OUT_SIZE: u32 = 2048;
/// How many yields we wait for xenconsoled to make room before dropping
/// output (it may be gone, e.g. during dom0 shutdown).
const PATIENCE: u32 = 200_000;

/// Starts using the console ring.
///
/// # Safety
/// `ring` must be the mapped console page (read-write) for the domain's life.
pub unsafe fn init(ring: *mut XenconsInterface, port: u32) {
    PORT.store(port, Ordering::Relaxed);
    RING.store(ring, Ordering::Release);
}

pub fn ready() -> bool {
    !RING.load(Ordering::Acquire).is_null() && !BROKEN.load(Ordering::Relaxed)
}

/// Reads the backend's consumer index and checks it against ours.
fn pending(ring: *mut XenconsInterface, prod: u32) -> Option<u32> {
    // SAFETY: a field of the mapped ring page, written by the backend.
    let cons = unsafe { core::ptr::read_volatile(&raw const (*ring).out_cons) };
    let used = prod.wrapping_sub(cons);
    (used <= OUT_SIZE).then_some(used)
}

/// Writes `bytes` to the console; false if the ring is not usable.
pub fn write(bytes: &[u8]) -> bool {
    let ring = RING.load(Ordering::Acquire);
    if ring.is_null() || BROKEN.load(Ordering::Relaxed) {
        return false;
    }
    let port = PORT.load(Ordering::Relaxed);
    let mut rest = bytes;
    let mut waited = 0;
    while !rest.is_empty() {
        // SAFETY: our own index in the mapped ring page.
        let prod = unsafe { core::ptr::read_volatile(&raw const (*ring).out_prod) };
        let Some(used) = pending(ring, prod) else {
            BROKEN.store(true, Ordering::Relaxed);
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
            // SAFETY: `idx` < OUT_SIZE, inside the output array.
            unsafe { core::ptr::write_volatile(&raw mut (*ring).output[idx], b) };
        }
        fence(Ordering::Release);
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(&raw mut (*ring).out_prod, prod.wrapping_add(n as u32)) };
        rest = &rest[n..];
    }
    evtchn::notify(port);
    true
}

/// Waits (a bounded time) until xenconsoled has read everything, so that
/// the last lines are not lost when the domain goes away.
pub fn flush() {
    let ring = RING.load(Ordering::Acquire);
    if ring.is_null() || BROKEN.load(Ordering::Relaxed) {
        return;
    }
    let port = PORT.load(Ordering::Relaxed);
    for _ in 0..PATIENCE {
        // SAFETY: as in `write`.
        let prod = unsafe { core::ptr::read_volatile(&raw const (*ring).out_prod) };
        if pending(ring, prod).is_none_or(|used| used == 0) {
            return;
        }
        evtchn::notify(port);
        hypercall::yield_cpu();
    }
}
