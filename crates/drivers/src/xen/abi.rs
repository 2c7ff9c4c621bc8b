//! The Xen guest ABI (xen/include/public/*.h, x86_64): the numbers and
//! structures the platform and the core Xen drivers share. Ring protocols of
//! individual devices (netif, blkif, xenstore) sit with their drivers.

// Hypercall numbers (xen.h).
pub const HYPERVISOR_SET_TRAP_TABLE: usize = 0;
pub const HYPERVISOR_MMU_UPDATE: usize = 1;
pub const HYPERVISOR_SET_CALLBACKS: usize = 4;
pub const HYPERVISOR_MEMORY_OP: usize = 12;
pub const HYPERVISOR_UPDATE_VA_MAPPING: usize = 14;
pub const HYPERVISOR_SET_TIMER_OP: usize = 15;
pub const HYPERVISOR_XEN_VERSION: usize = 17;
pub const HYPERVISOR_CONSOLE_IO: usize = 18;
pub const HYPERVISOR_GRANT_TABLE_OP: usize = 20;
pub const HYPERVISOR_VM_ASSIST: usize = 21;
pub const HYPERVISOR_IRET: usize = 23;
pub const HYPERVISOR_VCPU_OP: usize = 24;
pub const HYPERVISOR_MMUEXT_OP: usize = 26;
pub const HYPERVISOR_SCHED_OP: usize = 29;
pub const HYPERVISOR_CALLBACK_OP: usize = 30;
pub const HYPERVISOR_EVENT_CHANNEL_OP: usize = 32;
pub const HYPERVISOR_HVM_OP: usize = 34;

// sched_op (sched.h).
pub const SCHEDOP_YIELD: usize = 0;
pub const SCHEDOP_BLOCK: usize = 1;
pub const SCHEDOP_SHUTDOWN: usize = 2;
pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_CRASH: u32 = 3;

// event_channel_op (event_channel.h).
pub const EVTCHNOP_BIND_VIRQ: usize = 1;
pub const EVTCHNOP_CLOSE: usize = 3;
pub const EVTCHNOP_SEND: usize = 4;
pub const EVTCHNOP_ALLOC_UNBOUND: usize = 6;
pub const EVTCHNOP_UNMASK: usize = 9;
pub const VIRQ_TIMER: u32 = 0;

// console_io (xen.h).
pub const CONSOLEIO_WRITE: usize = 0;

// update_va_mapping flags and mmu_update commands (xen.h).
pub const UVMF_INVLPG: usize = 2;
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
pub const DOMID_SELF: u16 = 0x7ff0;

// x86_64 PV segment selectors (arch-x86/xen-x86_64.h): the guest kernel
// runs in ring 3.
pub const FLAT_KERNEL_CS: u16 = 0xe033;
pub const FLAT_KERNEL_SS: u16 = 0xe02b;
/// Read-only machine-to-physical table every PV guest sees.
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;

// HVM (PVH) interfaces (hvm/hvm_op.h, hvm/params.h, memory.h).
pub const HVMOP_SET_PARAM: usize = 0;
pub const HVMOP_GET_PARAM: usize = 1;
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
pub const HVM_PARAM_STORE_PFN: u32 = 1;
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
pub const XENMEM_ADD_TO_PHYSMAP: usize = 7;
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

// ELF notes (elfnote.h).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
pub const XEN_ELFNOTE_LOADER: u32 = 8;
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// `struct start_info` (xen.h), the PV boot structure (rsi at entry).
#[repr(C)]
pub struct StartInfo {
    pub magic: [u8; 32],
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    pub flags: u32,
    pub store_mfn: u64,
    pub store_evtchn: u32,
    pub console_mfn: u64,
    pub console_evtchn: u32,
    /// Virtual address of the boot page tables' top level.
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    /// Virtual address of the pfn -> mfn list.
    pub mfn_list: u64,
    /// Virtual address and size of the boot module (initrd).
    pub mod_start: u64,
    pub mod_len: u64,
    pub cmd_line: [u8; 1024],
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}

/// Flag in `StartInfo::flags`: `mod_start` is a pfn, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

/// `struct vcpu_time_info` (xen.h): the pvclock shared by Xen and KVM.
#[repr(C)]
pub struct VcpuTimeInfo {
    pub version: u32,
    pub pad0: u32,
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
    pub pad1: [u8; 2],
}

/// `struct vcpu_info` (xen.h, x86_64): 64 bytes.
#[repr(C)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub evtchn_upcall_mask: u8,
    pub pad: [u8; 6],
    pub evtchn_pending_sel: u64,
    pub cr2: u64,
    pub arch_pad: u64,
    pub time: VcpuTimeInfo,
}

/// Event channel ports of the 2-level ABI: 64 words of 64 bits.
pub const NR_EVENT_CHANNELS: usize = 64 * 64;

/// `struct shared_info` (xen.h, x86_64), the parts a guest reads.
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; 32],
    pub evtchn_pending: [u64; 64],
    pub evtchn_mask: [u64; 64],
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
}

/// `struct trap_info` (arch-x86/xen-x86_64.h).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: the DPL a software `int` needs; bit 2: mask events on entry.
    pub flags: u8,
    pub cs: u16,
    pub pad: u32,
    pub address: u64,
}

/// `struct mmu_update` (xen.h).
#[repr(C)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}

/// `struct xencons_interface` (io/console.h): the console ring page.
#[repr(C)]
pub struct XenconsInterface {
    pub input: [u8; 1024],
    pub output: [u8; 2048],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}

const _: () = {
    assert!(core::mem::size_of::<VcpuInfo>() == 64);
    assert!(core::mem::offset_of!(SharedInfo, evtchn_pending) == 2048);
    assert!(core::mem::offset_of!(SharedInfo, wc_version) == 3072);
    assert!(core::mem::offset_of!(StartInfo, nr_pages) == 32);
    assert!(core::mem::offset_of!(StartInfo, store_mfn) == 56);
    assert!(core::mem::offset_of!(StartInfo, console_mfn) == 72);
    assert!(core::mem::offset_of!(StartInfo, pt_base) == 88);
    assert!(core::mem::offset_of!(StartInfo, cmd_line) == 128);
    assert!(core::mem::offset_of!(StartInfo, first_p2m_pfn) == 1152);
    assert!(core::mem::size_of::<TrapInfo>() == 16);
    assert!(core::mem::offset_of!(XenconsInterface, in_cons) == 3072);
};
