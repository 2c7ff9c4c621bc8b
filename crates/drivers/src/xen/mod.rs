//! Xen paravirtual devices and the machinery under them: hypercalls, event
//! channels, the console ring (and, in their own modules, grant tables,
//! xenstore, netfront and blkfront).
//!
//! The platform (crates/plat/xen) maps the shared pages (shared info,
//! console and xenstore rings, grant table) and hands them over; nothing
//! here knows whether the guest runs PV or PVH except through
//! [`frame_of`], which gives the frame number Xen knows a page by (the
//! machine frame for PV, the guest frame for PVH).
//!
//! Devices: [`gnttab`] (v1 grant table), [`xenstore`] (the store client),
//! [`xenbus`] (frontend handshake, granted pages, event binding), [`ring`]
//! (the shared I/O ring), [`netfront`], [`blkfront`]; the platform's entry
//! point is `probe::probe_devices()` once xenstore and grants are set up.
pub mod abi;
pub mod blkfront;
pub mod console;
pub mod evtchn;
pub mod gnttab;
pub mod hypercall;
pub mod netfront;
#[cfg(target_os = "none")]
pub mod probe;
pub mod ring;
#[cfg(test)]
mod ring_fuzz;
mod ring_pod;
pub mod xenbus;
pub mod xenstore;

use core::sync::atomic::{AtomicUsize, Ordering};

static FRAME_OF: AtomicUsize = AtomicUsize::new(0);

/// Installs the platform's page-to-frame translation.
pub fn set_frame_translation(f: fn(u64) -> Option<u64>) {
    FRAME_OF.store(f as usize, Ordering::Release);
}

/// The frame number Xen knows the page at virtual address `va` by (what a
/// grant entry or a ring reference carries).
pub fn frame_of(va: u64) -> Option<u64> {
    let f = FRAME_OF.load(Ordering::Acquire);
    if f == 0 {
        return None;
    }
    // SAFETY: only `set_frame_translation` stores here, a `fn(u64) -> Option<u64>`.
    let f: fn(u64) -> Option<u64> = unsafe { core::mem::transmute(f) };
    f(va)
}
