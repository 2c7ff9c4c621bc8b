//! Xen PVH: the image enters through its PVH note (the PC backend's boot
//! path: paging, memory, page tables), finds Xen in CPUID, and from then
//! on uses Xen's interfaces instead of PC devices: the hypercall page via
//! the MSR CPUID names, shared info and grant frames placed into its own
//! pages with XENMEM_add_to_physmap, the console and xenstore rings from
//! HVM params, and events through a callback vector (an interrupt, so the
//! usual IF masking applies, unlike PV).
use super::time;
use core::sync::atomic::{AtomicBool, Ordering};
use drivers::xen::abi::{self, SharedInfo};
use drivers::xen::hypercall::hypercall;
use drivers::xen::{console, evtchn};

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether the PVH boot switched to Xen's interfaces.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in boot error lines
pub enum Error {
    NoXen,
    Hypercall(&'static str, isize),
    Map(&'static str),
}

/// The CPUID base of Xen's leaves (0x40000000, or 0x40000100 when Xen
/// also offers Viridian leaves first).
fn cpuid_base() -> Option<u32> {
    (0x4000_0000..0x4001_0000u32).step_by(0x100).find(|&base| {
        let r = arch::cpu::cpuid(base, 0);
        let mut sig = [0u8; 12];
        sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
        &sig == b"XenVMMXenVMM" && r.eax >= base + 2
    })
}

/// `struct xen_hvm_param` (hvm/hvm_op.h).
#[repr(C)]
struct HvmParam {
    domid: u16,
    pad: u16,
    index: u32,
    value: u64,
}

fn hvm_param(op: usize, index: u32, value: u64) -> Result<u64, Error> {
    let mut p = HvmParam { domid: abi::DOMID_SELF, pad: 0, index, value };
    // SAFETY: the structure HVMOP_get_param/set_param read and write.
    let rc = unsafe { hypercall(abi::HYPERVISOR_HVM_OP, op, &raw mut p as usize, 0, 0, 0) };
    if rc < 0 { Err(Error::Hypercall("HVMOP_get/set_param", rc)) } else { Ok(p.value) }
}

fn get_param(index: u32) -> Result<u64, Error> {
    hvm_param(abi::HVMOP_GET_PARAM, index, 0)
}

fn set_param(index: u32, value: u64) -> Result<(), Error> {
    hvm_param(abi::HVMOP_SET_PARAM, index, value).map(|_| ())
}

/// Puts Xen's frame `idx` of `space` at guest frame `gpfn` (the RAM page
/// there is given up).
pub(crate) fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), Error> {
    #[repr(C)]
    struct AddToPhysmap {
        domid: u16,
        size: u16,
        space: u32,
        idx: u64,
        gpfn: u64,
    }
    let a = AddToPhysmap { domid: abi::DOMID_SELF, size: 0, space, idx, gpfn };
    // SAFETY: the structure XENMEM_add_to_physmap reads.
    let rc =
        unsafe { hypercall(abi::HYPERVISOR_MEMORY_OP, abi::XENMEM_ADD_TO_PHYSMAP, &raw const a as usize, 0, 0, 0) };
    if rc < 0 { Err(Error::Hypercall("XENMEM_add_to_physmap", rc)) } else { Ok(()) }
}

/// Switches a PVH boot to Xen's interfaces. `map` makes a guest-physical
/// page accessible at the same virtual address (the rings live in pages
/// outside the RAM map); `vector` is the IDT vector the caller routes to
/// [`upcall`]. Called with interrupts off, after the kernel's page tables.
pub fn init(map: &dyn Fn(u64) -> bool, vector: u8) -> Result<(), Error> {
    let base = cpuid_base().ok_or(Error::NoXen)?;
    let msr = arch::cpu::cpuid(base + 2, 0).ebx;
    // SAFETY: the MSR Xen names for the hypercall page; the page is ours,
    // identity mapped, and Xen fills it with `vmcall` stubs.
    unsafe { arch::cpu::wrmsr(msr, super::hypercall_page::bind()) };

    let shared = super::shared_info_page();
    add_to_physmap(abi::XENMAPSPACE_SHARED_INFO, 0, shared / 4096)?;
    // SAFETY: the shared info frame now backs our page, for good.
    unsafe { evtchn::init(shared as *mut SharedInfo) };
    time::init(crate::boot::boot_tsc());

    let con = get_param(abi::HVM_PARAM_CONSOLE_PFN)? << 12;
    let con_port = get_param(abi::HVM_PARAM_CONSOLE_EVTCHN)? as u32;
    if con == 0 || !map(con) {
        return Err(Error::Map("console ring"));
    }
    // SAFETY: the console page, mapped above, for the domain's life.
    if let Some(ring) = unsafe { drivers::io::DmaRegion::from_raw(con as *mut u8, 4096) } {
        console::init(ring, con_port);
    }

    let store = get_param(abi::HVM_PARAM_STORE_PFN)? << 12;
    let store_port = get_param(abi::HVM_PARAM_STORE_EVTCHN)? as u32;
    if store != 0 && map(store) {
        super::devices::STORE.call_once(|| (store, store_port));
    }
    // Callback type 2: deliver events as `vector` (no local APIC EOI).
    set_param(abi::HVM_PARAM_CALLBACK_IRQ, (2u64 << 56) | vector as u64)?;
    time::bind_timer().map_err(|e| Error::Hypercall("bind VIRQ_TIMER", e.0))?;
    drivers::xen::set_frame_translation(|va| Some(va / 4096));
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(())
}

/// The callback vector's handler (interrupts off).
pub fn upcall() {
    evtchn::dispatch();
}

/// PVH idle: called with interrupts off; the timer event (or any other)
/// arrives as the callback vector and ends the `hlt`.
pub fn wait(deadline_ns: Option<u64>) {
    time::arm(deadline_ns);
    arch::cpu::wait_for_interrupt();
}

pub fn shutdown(code: i32) -> ! {
    super::shutdown(code)
}
