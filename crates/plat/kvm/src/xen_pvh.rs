//! The image booted through PVH on Xen: memory and paging stay the kvm
//! platform's (PVH is hardware-virtualized), while console, time, idle,
//! shutdown and devices switch to Xen's interfaces (crates/plat/xen) once
//! bring-up has set them up.

/// The IDT vector Xen delivers event upcalls on.
pub const XEN_VECTOR: u8 = 0xf3;
