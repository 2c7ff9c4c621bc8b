//! Xen paravirtual devices and the machinery under them: hypercalls, event
//! channels, the console ring (and, in their own modules, grant tables,
//! xenstore, netfront and blkfront).
//!
//! The platform (crates/plat/x86-vm, xen/) maps the shared pages (shared info,
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

static FRAME_OF: spin::Once<fn(u64) -> Option<u64>> = spin::Once::new();

/// Installs the platform's page-to-frame translation (first call wins: the
/// guest's mode, PV or PVH, does not change).
pub fn set_frame_translation(f: fn(u64) -> Option<u64>) {
    FRAME_OF.call_once(|| f);
}

/// The frame number Xen knows the page at virtual address `va` by (what a
/// grant entry or a ring reference carries).
pub fn frame_of(va: u64) -> Option<u64> {
    FRAME_OF.get().and_then(|f| f(va))
}
