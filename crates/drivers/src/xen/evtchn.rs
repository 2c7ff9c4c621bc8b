//! Event channels (2-level ABI): binding, masking, notifying, and the
//! upcall's scan of the pending bitmaps in the shared info page.
use super::abi::{self, SharedInfo, VcpuInfo};
use super::hypercall::event_channel_op;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};

static SHARED: AtomicPtr<SharedInfo> = AtomicPtr::new(core::ptr::null_mut());
/// Ports with a handler; higher ports stay masked.
const MAX_HANDLED: usize = 1024;
static HANDLERS: [AtomicUsize; MAX_HANDLED] = [const { AtomicUsize::new(0) }; MAX_HANDLED];

/// Records where the shared info page is mapped.
///
/// # Safety
/// `shared` must stay mapped (read-write) for the life of the domain.
pub unsafe fn init(shared: *mut SharedInfo) {
    SHARED.store(shared, Ordering::Release);
}

pub fn shared_info() -> Option<*mut SharedInfo> {
    let p = SHARED.load(Ordering::Acquire);
    (!p.is_null()).then_some(p)
}

/// vCPU 0's `vcpu_info` in the shared info page.
pub fn vcpu() -> Option<*mut VcpuInfo> {
    // SAFETY: in-bounds field projection of the mapped page.
    shared_info().map(|s| unsafe { &raw mut (*s).vcpu_info[0] })
}

fn mask_byte() -> Option<&'static AtomicU8> {
    // SAFETY: the byte lives in the shared page for the domain's life.
    vcpu().map(|v| unsafe { AtomicU8::from_ptr(&raw mut (*v).evtchn_upcall_mask) })
}

/// PV: masks event delivery (the guest's `cli`); returns whether it was on.
pub fn mask_upcalls() -> bool {
    mask_byte().is_some_and(|m| m.swap(1, Ordering::SeqCst) == 0)
}

/// PV: unmasks event delivery again if `enable`, and takes any event that
/// arrived while masked (a hypercall returns through Xen's delivery path).
pub fn restore_upcalls(enable: bool) {
    let (Some(m), Some(v)) = (mask_byte(), vcpu()) else { return };
    if !enable {
        return;
    }
    m.store(0, Ordering::SeqCst);
    // SAFETY: reading a byte of the shared page.
    if unsafe { core::ptr::read_volatile(&raw const (*v).evtchn_upcall_pending) } != 0 {
        force_upcall();
    }
}

/// Makes Xen deliver pending events now (any hypercall returns through the
/// delivery check; xen_version(XENVER_version) is the cheapest).
pub fn force_upcall() {
    // SAFETY: XENVER_version takes no buffer.
    unsafe { super::hypercall::hypercall(abi::HYPERVISOR_XEN_VERSION, 0, 0, 0, 0, 0) };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub isize);

fn check(rc: isize) -> Result<(), Error> {
    if rc < 0 { Err(Error(rc)) } else { Ok(()) }
}

/// Binds a virtual IRQ (VIRQ_TIMER, ...) of vCPU 0; returns the port.
pub fn bind_virq(virq: u32) -> Result<u32, Error> {
    #[repr(C)]
    struct BindVirq {
        virq: u32,
        vcpu: u32,
        port: u32,
    }
    let mut op = BindVirq { virq, vcpu: 0, port: 0 };
    // SAFETY: the structure Xen expects, on our stack.
    check(unsafe { event_channel_op(abi::EVTCHNOP_BIND_VIRQ, &raw mut op as usize) })?;
    Ok(op.port)
}

/// Allocates a port that domain `remote` can bind to (how a frontend
/// offers its backend an event channel); returns the port.
pub fn alloc_unbound(remote: u16) -> Result<u32, Error> {
    #[repr(C)]
    struct AllocUnbound {
        dom: u16,
        remote_dom: u16,
        port: u32,
    }
    let mut op = AllocUnbound { dom: abi::DOMID_SELF, remote_dom: remote, port: 0 };
    // SAFETY: as above.
    check(unsafe { event_channel_op(abi::EVTCHNOP_ALLOC_UNBOUND, &raw mut op as usize) })?;
    Ok(op.port)
}

/// Signals the other end of `port`.
pub fn notify(port: u32) {
    let op = port;
    // SAFETY: `struct evtchn_send { evtchn_port_t port; }`.
    unsafe { event_channel_op(abi::EVTCHNOP_SEND, &op as *const u32 as usize) };
}

pub fn close(port: u32) {
    set_handler(port, None);
    let op = port;
    // SAFETY: `struct evtchn_close { evtchn_port_t port; }`.
    unsafe { event_channel_op(abi::EVTCHNOP_CLOSE, &op as *const u32 as usize) };
}

/// Unmasks `port` (Xen re-raises it if it became pending while masked).
pub fn unmask(port: u32) {
    let op = port;
    // SAFETY: `struct evtchn_unmask { evtchn_port_t port; }`.
    unsafe { event_channel_op(abi::EVTCHNOP_UNMASK, &op as *const u32 as usize) };
}

pub fn mask(port: u32) {
    // SAFETY: field projection of the mapped shared page.
    if let Some(w) = word(port, |s| unsafe { &raw mut (*s).evtchn_mask }) {
        w.fetch_or(1 << (port % 64), Ordering::SeqCst);
    }
}

fn word(port: u32, field: impl FnOnce(*mut SharedInfo) -> *mut [u64; 64]) -> Option<&'static AtomicU64> {
    let s = shared_info()?;
    let i = port as usize / 64;
    if i >= 64 {
        return None;
    }
    // SAFETY: `i` is in bounds; the words live in the shared page.
    Some(unsafe { AtomicU64::from_ptr(&raw mut (*field(s))[i]) })
}

/// Sets (or clears) the function the upcall runs for events on `port`,
/// and unmasks (masks) the port. Handlers run with events masked.
pub fn set_handler(port: u32, handler: Option<fn(u32)>) -> bool {
    let Some(slot) = HANDLERS.get(port as usize) else { return false };
    match handler {
        Some(h) => {
            slot.store(h as usize, Ordering::Release);
            unmask(port);
        }
        None => {
            mask(port);
            slot.store(0, Ordering::Release);
        }
    }
    true
}

/// The upcall: runs the handler of every pending, unmasked port. Called
/// with events masked (Xen masks them when it delivers the upcall).
pub fn dispatch() {
    let (Some(s), Some(v)) = (shared_info(), vcpu()) else { return };
    // SAFETY: all fields are in the shared page, accessed atomically
    // because Xen writes them concurrently.
    unsafe {
        loop {
            core::ptr::write_volatile(&raw mut (*v).evtchn_upcall_pending, 0);
            fence(Ordering::SeqCst);
            let mut sel = AtomicU64::from_ptr(&raw mut (*v).evtchn_pending_sel).swap(0, Ordering::SeqCst);
            if sel == 0 {
                break;
            }
            while sel != 0 {
                let i = sel.trailing_zeros() as usize;
                sel &= sel - 1;
                let pending = AtomicU64::from_ptr(&raw mut (*s).evtchn_pending[i]);
                let masked = AtomicU64::from_ptr(&raw mut (*s).evtchn_mask[i]);
                loop {
                    let ready = pending.load(Ordering::SeqCst) & !masked.load(Ordering::SeqCst);
                    if ready == 0 {
                        break;
                    }
                    let bit = ready.trailing_zeros();
                    pending.fetch_and(!(1u64 << bit), Ordering::SeqCst);
                    let port = (i * 64) as u32 + bit;
                    let h = HANDLERS.get(port as usize).map_or(0, |h| h.load(Ordering::Acquire));
                    if h != 0 {
                        // SAFETY: only `set_handler` stores here, and it stores a `fn(u32)`.
                        let h: fn(u32) = core::mem::transmute(h);
                        h(port);
                    } else {
                        // Nobody wants it: keep it from firing again.
                        masked.fetch_or(1u64 << bit, Ordering::SeqCst);
                    }
                }
            }
        }
    }
}
