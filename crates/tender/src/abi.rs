//! The Solo5 hvt ABI, as the tender sees it: constants and the byte layout
//! of every structure shared with the guest (x86_64, little endian).
//!
//! Every fact here is taken from Solo5's public headers (Solo5/solo5 v0.12.1,
//! commit 469c1a8): `include/hvt_abi.h`, `include/mft_abi.h`,
//! `include/elf_abi.h` and `include/solo5.h`, and from the x86_64 tender in
//! `tenders/hvt/hvt_cpu_x86_64.h`. Offsets are those of the C structures
//! under the x86_64 System V ABI (checked against gcc's `offsetof`); the
//! tender never casts guest memory to a Rust struct, it reads and writes
//! these fields one by one through bounds-checked accessors.

/// `HVT_ABI_VERSION` (include/hvt_abi.h).
pub const HVT_ABI_VERSION: u32 = 2;
/// `HVT_ABI_TARGET` in `enum abi_target` (include/elf_abi.h).
pub const HVT_ABI_TARGET: u32 = 1;
/// Names of `enum abi_target` values, for messages (include/elf_abi.h).
pub fn abi_target_name(t: u32) -> &'static str {
    match t {
        1 => "hvt",
        2 => "spt",
        3 => "virtio",
        4 => "muen",
        5 => "genode",
        6 => "xen",
        _ => "unknown",
    }
}

/// `HVT_GUEST_MIN_BASE`: lowest address a guest may be loaded at.
pub const GUEST_MIN_BASE: u64 = 0x10_0000;
/// `HVT_HYPERCALL_PIO_BASE`: hypercall `n` is a 32-bit `outl` to port base + n
/// whose value is the guest-physical address of the argument structure.
pub const HYPERCALL_PIO_BASE: u16 = 0x500;
/// `HVT_RING_KICK_PIO_BASE` (ring I/O, which this tender does not offer).
pub const RING_KICK_PIO_BASE: u16 = 0x600;
/// `HVT_CMDLINE_SIZE`: command line buffer, including the terminator.
pub const CMDLINE_SIZE: usize = 8192;
/// `HVT_HALT_COOKIE_MAX`: bytes a non-null halt cookie must point to.
pub const HALT_COOKIE_MAX: u64 = 512;

/// `enum hvt_hypercall`.
pub mod hc {
    pub const WALLTIME: u16 = 1;
    pub const PUTS: u16 = 2;
    pub const POLL: u16 = 3;
    pub const BLOCK_WRITE: u16 = 4;
    pub const BLOCK_READ: u16 = 5;
    pub const NET_WRITE: u16 = 6;
    pub const NET_READ: u16 = 7;
    pub const HALT: u16 = 8;
    /// `HVT_HYPERCALL_MAX`.
    pub const MAX: u16 = 9;

    pub fn name(nr: u16) -> &'static str {
        match nr {
            WALLTIME => "walltime",
            PUTS => "puts",
            POLL => "poll",
            BLOCK_WRITE => "block_write",
            BLOCK_READ => "block_read",
            NET_WRITE => "net_write",
            NET_READ => "net_read",
            HALT => "halt",
            _ => "unknown",
        }
    }
}

/// `solo5_result_t` (include/solo5.h).
pub mod result {
    pub const OK: i32 = 0;
    pub const AGAIN: i32 = 1;
    pub const EINVAL: i32 = 2;
    pub const EUNSPEC: i32 = 3;
}

/// `SOLO5_NET_HLEN`: ethernet header length (include/solo5.h).
pub const NET_HLEN: u64 = 14;

/// `struct hvt_boot_info` (56 bytes).
pub mod boot_info {
    pub const MEM_SIZE: u64 = 0;
    pub const KERNEL_END: u64 = 8;
    pub const CPU_CYCLE_FREQ: u64 = 16;
    pub const CMDLINE: u64 = 24;
    pub const MFT: u64 = 32;
    pub const HOST_FEATURES: u64 = 40;
    pub const GUEST_FEATURES: u64 = 44;
    pub const NET_RING: u64 = 48;
    pub const SIZE: u64 = 56;
}

/// Hypercall argument structures: (field offset, ...), size.
pub mod args {
    /// `struct hvt_hc_walltime { u64 nsecs; }`
    pub mod walltime {
        pub const NSECS: u64 = 0;
        pub const SIZE: u64 = 8;
    }
    /// `struct hvt_hc_puts { gpa data; size_t len; }`
    pub mod puts {
        pub const DATA: u64 = 0;
        pub const LEN: u64 = 8;
        pub const SIZE: u64 = 16;
    }
    /// `struct hvt_hc_poll { u64 timeout_nsecs; u64 ready_set; int ret; }`
    pub mod poll {
        pub const TIMEOUT_NSECS: u64 = 0;
        pub const READY_SET: u64 = 8;
        pub const RET: u64 = 16;
        pub const SIZE: u64 = 24;
    }
    /// `struct hvt_hc_block_{read,write} { u64 handle; u64 offset; gpa data; size_t len; int ret; }`
    pub mod block {
        pub const HANDLE: u64 = 0;
        pub const OFFSET: u64 = 8;
        pub const DATA: u64 = 16;
        pub const LEN: u64 = 24;
        pub const RET: u64 = 32;
        pub const SIZE: u64 = 40;
    }
    /// `struct hvt_hc_net_{read,write} { u64 handle; gpa data; size_t len; int ret; }`
    pub mod net {
        pub const HANDLE: u64 = 0;
        pub const DATA: u64 = 8;
        pub const LEN: u64 = 16;
        pub const RET: u64 = 24;
        pub const SIZE: u64 = 32;
    }
    /// `struct hvt_hc_halt { gpa cookie; int exit_status; }`
    pub mod halt {
        pub const COOKIE: u64 = 0;
        pub const EXIT_STATUS: u64 = 8;
        pub const SIZE: u64 = 16;
    }
}

/// ELF notes owned by Solo5: `n_name` is "Solo5\0" (namesz 6, padded to 8).
pub const NOTE_NAME: &[u8; 6] = b"Solo5\0";
/// Size of a Solo5 note header: `Elf64_Nhdr` (12) + the padded name (8).
pub const NOTE_HDR_SIZE: usize = 20;
/// `ABI1_NOTE_TYPE` ("ABI1"), in section `.note.solo5.abi`.
pub const ABI1_NOTE_TYPE: u32 = 0x3149_4241;
/// `ABI1_NOTE_ALIGN`: internal alignment of `struct abi1_info`.
pub const ABI1_NOTE_ALIGN: usize = 4;
/// `ABI1_NOTE_MAX_SIZE`.
pub const ABI1_NOTE_MAX_SIZE: usize = 32;
/// `MFT1_NOTE_TYPE` ("MFT1"), in section `.note.solo5.manifest`.
pub const MFT1_NOTE_TYPE: u32 = 0x3154_464d;
/// `MFT1_NOTE_ALIGN`: internal alignment of `struct mft` (its entries hold u64s).
pub const MFT1_NOTE_ALIGN: usize = 8;
/// `MFT1_NOTE_MAX_SIZE`: (sizeof(struct mft1_note) - sizeof(struct mft1_nhdr)) + 64 entries.
pub const MFT1_NOTE_MAX_SIZE: usize = (32 - NOTE_HDR_SIZE) + MFT_MAX_ENTRIES * MFT_ENTRY_SIZE;

/// `MFT_VERSION`.
pub const MFT_VERSION: u32 = 1;
/// `MFT_MAX_ENTRIES`.
pub const MFT_MAX_ENTRIES: usize = 64;
/// `sizeof(struct mft)` without entries (version, entries).
pub const MFT_HDR_SIZE: usize = 8;
/// `sizeof(struct mft_entry)`.
pub const MFT_ENTRY_SIZE: usize = 104;
/// `MFT_NAME_SIZE` (including the terminator) and `MFT_NAME_MAX`.
pub const MFT_NAME_SIZE: usize = 68;
pub const MFT_NAME_MAX: usize = 67;

/// `mft_type_t`.
pub mod mft_type {
    pub const BLOCK_BASIC: u32 = 1;
    pub const NET_BASIC: u32 = 2;
    pub const RESERVED_FIRST: u32 = 1 << 30;
}

/// `struct mft_entry` field offsets.
pub mod mft_entry {
    pub const NAME: usize = 0;
    pub const TYPE: usize = 68;
    /// `u.block_basic.capacity` (u64) / `u.net_basic.mac` ([u8; 6]).
    pub const BLOCK_CAPACITY: usize = 72;
    pub const BLOCK_SIZE: usize = 80;
    pub const NET_MAC: usize = 72;
    pub const NET_MTU: usize = 78;
    /// `b.hostfd` (int) / `b.data` (pointer): private to the tender.
    pub const HOSTFD: usize = 88;
    pub const ATTACHED: usize = 96;
}

/// x86_64 guest memory map (tenders/hvt/hvt_cpu_x86_64.h).
pub mod x86 {
    pub const GDT_BASE: u64 = 0x1000;
    pub const PML4_BASE: u64 = 0x2000;
    pub const PDPTE_BASE: u64 = 0x3000;
    /// Four page directories (one per GiB), 0x4000..0x8000.
    pub const PDE_BASE: u64 = 0x4000;
    /// The page table for the first 2 MiB (4 KiB pages).
    pub const PT0E_BASE: u64 = 0x8000;
    pub const BOOT_INFO_BASE: u64 = 0x1_0000;
    /// Pages below this are not mapped in the guest.
    pub const PT0_MAP_START: u64 = BOOT_INFO_BASE;
    /// 2 MiB pages; guest memory is a multiple of this.
    pub const GUEST_PAGE_SIZE: u64 = 0x20_0000;
    /// At most four page directories: 4 GiB.
    pub const MAX_MEM_SIZE: u64 = 2048 * GUEST_PAGE_SIZE;

    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_NE: u64 = 1 << 5;
    pub const CR0_WP: u64 = 1 << 16;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR0_INIT: u64 = CR0_PE | CR0_PG | CR0_NE | CR0_WP;
    pub const CR4_PAE: u64 = 1 << 5;
    pub const CR4_OSFXSR: u64 = 1 << 9;
    pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
    pub const CR4_INIT: u64 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    pub const EFER_LME: u64 = 1 << 8;
    pub const EFER_LMA: u64 = 1 << 10;
    pub const EFER_INIT: u64 = EFER_LME | EFER_LMA;
    pub const CR3_INIT: u64 = PML4_BASE;
    pub const RFLAGS_INIT: u64 = 0x2;

    pub const PTE_P: u64 = 1 << 0;
    pub const PTE_RW: u64 = 1 << 1;
    pub const PTE_PS: u64 = 1 << 7;

    /// GDT indices (`enum x86_gdt_selector`); selectors are index * 8.
    pub const GDT_CODE: u16 = 1;
    pub const GDT_DATA: u16 = 2;
    pub const GDT_ENTRIES: u16 = 3;
}
