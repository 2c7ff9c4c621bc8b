//! The hypercall page: Xen fills one 32-byte stub per hypercall into this
//! page of the image (PV: the HYPERCALL_PAGE ELF note names it, and Xen
//! writes it at domain build; PVH: written when the guest puts its address
//! into the MSR that CPUID leaf base+2 names, see `super::hvm`). The
//! drivers' hypercall functions call through it once it is bound.
use core::arch::global_asm;

// In .bss: it costs no image bytes. Page tables map RAM executable on
// every platform.
global_asm!(
    ".section .bss.xen_hypercall_page, \"aw\", @nobits",
    ".p2align 12",
    ".global xen_hypercall_page",
    "xen_hypercall_page:",
    ".skip 4096",
    ".text",
);

unsafe extern "C" {
    static xen_hypercall_page: u8;
}

/// Hands the page to the drivers' hypercall functions and returns its
/// address. Before this, a hypercall fails with -ENOSYS.
pub fn bind() -> u64 {
    let addr = &raw const xen_hypercall_page as u64;
    drivers::xen::hypercall::bind_page(addr);
    addr
}
