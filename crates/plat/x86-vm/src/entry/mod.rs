//! The entries of the one image, side by side: PVH (QEMU, Firecracker,
//! cloud-hypervisor, Xen PVH) and Xen PV. Each builds one `BootInfo` and
//! makes one call into the kernel. Next: multiboot2 and UEFI.
pub mod pvh;
#[cfg(feature = "xen")]
pub mod xen_pv;
