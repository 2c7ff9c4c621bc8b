//! Xenbus, the frontend half of the device handshake (io/xenbus.h): a
//! device is a xenstore directory (`device/<type>/<id>`) naming its
//! backend; both ends publish a `state` and meet at Connected. Also the
//! bits netfront and blkfront share: granted pages and event channels
//! that signal a device's `Event`.

pub const STATE_UNKNOWN: u32 = 0;
pub const STATE_INITIALISING: u32 = 1;
pub const STATE_INIT_WAIT: u32 = 2;
pub const STATE_INITIALISED: u32 = 3;
pub const STATE_CONNECTED: u32 = 4;
pub const STATE_CLOSING: u32 = 5;
pub const STATE_CLOSED: u32 = 6;

pub fn state_name(s: u32) -> &'static str {
    match s {
        STATE_INITIALISING => "Initialising",
        STATE_INIT_WAIT => "InitWait",
        STATE_INITIALISED => "Initialised",
        STATE_CONNECTED => "Connected",
        STATE_CLOSING => "Closing",
        STATE_CLOSED => "Closed",
        _ => "Unknown",
    }
}

#[cfg(target_os = "none")]
pub use guest::*;

#[cfg(target_os = "none")]
mod guest {
    use super::*;
    use crate::xen::{evtchn, gnttab, xenstore};
    use alloc::format;
    use alloc::string::String;
    use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
    use unikit_kernel::event::Event;

    /// How long a backend gets to reach a state (dom0 runs hotplug scripts
    /// first; under emulation that takes seconds).
    pub const HANDSHAKE_TIMEOUT_NS: u64 = 30_000_000_000;

    /// A device's frontend directory and its backend.
    pub struct Frontend {
        /// Relative to our domain's xenstore home, e.g. "device/vif/0".
        pub node: String,
        /// Absolute backend directory.
        pub backend: String,
        pub backend_id: u16,
    }

    impl Frontend {
        pub fn new(node: String) -> Result<Self, String> {
            let backend = xenstore::read(&format!("{node}/backend")).map_err(|e| format!("reading backend: {e}"))?;
            if !backend.starts_with('/') {
                return Err(format!("backend path {backend:?} is not absolute"));
            }
            let backend_id = xenstore::read_int::<u16>(&format!("{node}/backend-id"))
                .map_err(|e| format!("reading backend-id: {e}"))?;
            Ok(Self { node, backend, backend_id })
        }

        pub fn write(&self, key: &str, value: &str) -> Result<(), String> {
            xenstore::write(&format!("{}/{key}", self.node), value).map_err(|e| format!("writing {key}: {e}"))
        }

        pub fn switch_state(&self, state: u32) -> Result<(), String> {
            self.write("state", &format!("{state}"))
        }

        pub fn backend_read(&self, key: &str) -> Result<String, xenstore::Error> {
            xenstore::read(&format!("{}/{key}", self.backend))
        }

        /// Reads a number from the backend directory; `default` if absent.
        pub fn backend_int<T: core::str::FromStr>(&self, key: &str, default: Option<T>) -> Result<T, String> {
            match xenstore::read_int::<T>(&format!("{}/{key}", self.backend)) {
                Ok(v) => Ok(v),
                Err(e) if e.is_not_found() && default.is_some() => Ok(default.unwrap()),
                Err(e) => Err(format!("backend {key}: {e}")),
            }
        }

        fn backend_state(&self) -> Result<u32, String> {
            self.backend_int("state", Some(STATE_UNKNOWN))
        }

        /// Waits until the backend's state satisfies `ok`; Closing/Closed
        /// (unless `ok` accepts them) and the deadline are errors.
        pub fn wait_backend(&self, what: &str, ok: impl Fn(u32) -> bool, deadline: u64) -> Result<u32, String> {
            let watch = xenstore::watch(&format!("{}/state", self.backend))
                .map_err(|e| format!("watching backend state: {e}"))?;
            loop {
                let s = self.backend_state()?;
                if ok(s) {
                    return Ok(s);
                }
                if s == STATE_CLOSING || s == STATE_CLOSED {
                    return Err(format!("backend {} is {} while waiting for {what}", self.backend, state_name(s)));
                }
                match watch.wait(deadline) {
                    Ok(_) => {}
                    Err(xenstore::Error::Timeout) => {
                        return Err(format!(
                            "backend {} still {} ({s}) after {} s waiting for {what}",
                            self.backend,
                            state_name(s),
                            HANDSHAKE_TIMEOUT_NS / 1_000_000_000
                        ));
                    }
                    Err(e) => return Err(format!("waiting for backend state: {e}")),
                }
            }
        }
    }

    /// A zeroed page shared with a backend: its (identity-mapped) address
    /// and the grant reference for it.
    pub struct SharedPage {
        pub page: *mut u8,
        pub gref: gnttab::GrantRef,
    }

    // SAFETY: a page of memory; its users synchronise access.
    unsafe impl Send for SharedPage {}

    /// Allocates a zeroed page and grants `domid` access to it. The page
    /// stays granted (and allocated) for the life of the device.
    pub fn shared_page(domid: u16, readonly: bool) -> Result<SharedPage, String> {
        let va = unikit_kernel::mem::alloc_zeroed_frame().ok_or("out of memory for a shared page")?;
        let frame = crate::xen::frame_of(va).ok_or("no frame number for a shared page")?;
        match gnttab::grant_access(domid, frame, readonly) {
            Ok(gref) => Ok(SharedPage { page: va as *mut u8, gref }),
            Err(e) => {
                unikit_kernel::mem::free_frames(va, 1);
                Err(format!("granting a page: {e}"))
            }
        }
    }

    /// Ports whose events signal an `Event` (port + 1; 0 is a free slot).
    const MAX_BOUND: usize = 16;
    static BOUND: [(AtomicU32, AtomicPtr<Event>); MAX_BOUND] =
        [const { (AtomicU32::new(0), AtomicPtr::new(core::ptr::null_mut())) }; MAX_BOUND];

    fn signal_bound(port: u32) {
        for (p, ev) in &BOUND {
            if p.load(Ordering::Acquire) == port + 1 {
                let ev = ev.load(Ordering::Acquire);
                if !ev.is_null() {
                    // SAFETY: only `bind_event` stores here, a `&'static Event`.
                    unsafe { (*ev).signal() };
                }
            }
        }
    }

    /// Allocates an event channel for `remote` whose events signal `event`.
    pub fn bind_event(remote: u16, event: &'static Event) -> Result<u32, String> {
        let port = evtchn::alloc_unbound(remote).map_err(|e| format!("allocating an event channel: error {}", e.0))?;
        // Claim a free slot (u32::MAX: taken, not yet valid).
        let slot =
            BOUND.iter().find(|(p, _)| p.compare_exchange(0, u32::MAX, Ordering::AcqRel, Ordering::Relaxed).is_ok());
        let Some((p, ev)) = slot else {
            evtchn::close(port);
            return Err("too many Xen devices".into());
        };
        ev.store(event as *const Event as *mut Event, Ordering::Release);
        p.store(port + 1, Ordering::Release);
        if !evtchn::set_handler(port, Some(signal_bound)) {
            p.store(0, Ordering::Release);
            evtchn::close(port);
            return Err(format!("event channel {port} out of the handled range"));
        }
        Ok(port)
    }
}
