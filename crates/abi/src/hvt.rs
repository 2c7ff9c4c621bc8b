//! The Solo5 hvt guest ABI (x86_64), shared by the guest (`plat/solo5`) and
//! the tender (`unikit-hvt`).
//!
//! Facts come from Solo5's public headers (Solo5/solo5 v0.12.1, commit
//! 469c1a8): `include/hvt_abi.h` (hypercall convention, numbers and
//! argument structures, `struct hvt_boot_info`, `HVT_GUEST_MIN_BASE`,
//! `HVT_CMDLINE_SIZE`, `HVT_HALT_COOKIE_MAX`), `include/elf_abi.h` (the
//! "ABI1" note, `enum abi_target`), `include/solo5.h` (`solo5_result_t`,
//! `SOLO5_NET_HLEN`) and the x86_64 tender's
//! `tenders/hvt/hvt_cpu_x86_64.h` (the machine it sets up; see [`x86`]).
//!
//! A hypercall is a 32-bit `out` to port [`HYPERCALL_PIO_BASE`] + number,
//! whose value is the guest-physical address of the argument structure;
//! the tender reads and writes the structure before the instruction
//! retires. The argument structures are `repr(C)` here so that the guest
//! can pass them by address; the tender never casts guest memory to them,
//! it reads fields through the offsets in [`args`] and [`boot_info`], which
//! are derived from the same structures (`offset_of!`), so the two sides
//! cannot disagree.

use core::mem::{offset_of, size_of};

use crate::bytes::u64_at;

/// `HVT_ABI_VERSION` (include/hvt_abi.h) of Solo5 0.12.
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

/// `HVT_GUEST_MIN_BASE` (include/hvt_abi.h): lowest address a guest may be
/// loaded at.
pub const GUEST_MIN_BASE: u64 = 0x10_0000;
/// `HVT_HYPERCALL_PIO_BASE` (include/hvt_abi.h, x86_64).
pub const HYPERCALL_PIO_BASE: u16 = 0x500;
/// `HVT_RING_KICK_PIO_BASE` (ring I/O, which unikit does not use).
pub const RING_KICK_PIO_BASE: u16 = 0x600;
/// `HVT_CMDLINE_SIZE` (include/hvt_abi.h): command line buffer, including
/// the terminator.
pub const CMDLINE_SIZE: usize = 8192;
/// `HVT_HALT_COOKIE_MAX` (include/hvt_abi.h): bytes a non-null halt cookie
/// must point to.
pub const HALT_COOKIE_MAX: u64 = 512;
/// `SOLO5_NET_HLEN` (include/solo5.h): ethernet header length.
pub const NET_HLEN: u64 = 14;

/// `enum hvt_hypercall` (include/hvt_abi.h).
pub mod hc {
    /// `HVT_HYPERCALL_WALLTIME`.
    pub const WALLTIME: u16 = 1;
    /// `HVT_HYPERCALL_PUTS`.
    pub const PUTS: u16 = 2;
    /// `HVT_HYPERCALL_POLL`.
    pub const POLL: u16 = 3;
    /// `HVT_HYPERCALL_BLOCK_WRITE`.
    pub const BLOCK_WRITE: u16 = 4;
    /// `HVT_HYPERCALL_BLOCK_READ`.
    pub const BLOCK_READ: u16 = 5;
    /// `HVT_HYPERCALL_NET_WRITE`.
    pub const NET_WRITE: u16 = 6;
    /// `HVT_HYPERCALL_NET_READ`.
    pub const NET_READ: u16 = 7;
    /// `HVT_HYPERCALL_HALT`.
    pub const HALT: u16 = 8;
    /// `HVT_HYPERCALL_MAX`: one past the last number.
    pub const MAX: u16 = 9;

    /// The hypercall's name, for messages.
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

/// `solo5_result_t` (include/solo5.h): the `ret` of device hypercalls.
pub mod result {
    /// `SOLO5_R_OK`.
    pub const OK: i32 = 0;
    /// `SOLO5_R_AGAIN`.
    pub const AGAIN: i32 = 1;
    /// `SOLO5_R_EINVAL`.
    pub const EINVAL: i32 = 2;
    /// `SOLO5_R_EUNSPEC`.
    pub const EUNSPEC: i32 = 3;
}

/// `struct hvt_boot_info` (include/hvt_abi.h), the ABI v2 fields a guest
/// reads. The tender may append ring-I/O fields (see [`boot_info`]); an
/// ABI v2 guest leaves `guest_features` 0 and keeps using hypercalls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// Guest memory size in bytes.
    pub mem_size: u64,
    /// End of the loaded image (the tender's highest PT_LOAD end).
    pub kernel_end: u64,
    /// TSC frequency in Hz.
    pub cpu_cycle_freq: u64,
    /// Guest address of the NUL-terminated command line.
    pub cmdline: u64,
    /// Guest address of the tender's copy of the manifest.
    pub mft: u64,
}

impl BootInfo {
    /// Reads the structure from the bytes at its address.
    pub fn from_bytes(b: &[u8]) -> Option<BootInfo> {
        Some(BootInfo {
            mem_size: u64_at(b, boot_info::MEM_SIZE as usize)?,
            kernel_end: u64_at(b, boot_info::KERNEL_END as usize)?,
            cpu_cycle_freq: u64_at(b, boot_info::CPU_CYCLE_FREQ as usize)?,
            cmdline: u64_at(b, boot_info::CMDLINE as usize)?,
            mft: u64_at(b, boot_info::MFT as usize)?,
        })
    }
}

/// Byte offsets in `struct hvt_boot_info`, as the tender writes it.
pub mod boot_info {
    use super::*;
    /// `mem_size`.
    pub const MEM_SIZE: u64 = offset_of!(BootInfo, mem_size) as u64;
    /// `kernel_end`.
    pub const KERNEL_END: u64 = offset_of!(BootInfo, kernel_end) as u64;
    /// `cpu_cycle_freq`.
    pub const CPU_CYCLE_FREQ: u64 = offset_of!(BootInfo, cpu_cycle_freq) as u64;
    /// `cmdline`.
    pub const CMDLINE: u64 = offset_of!(BootInfo, cmdline) as u64;
    /// `mft`.
    pub const MFT: u64 = offset_of!(BootInfo, mft) as u64;
    /// `host_features` (u32, ring I/O).
    pub const HOST_FEATURES: u64 = size_of::<BootInfo>() as u64;
    /// `guest_features` (u32, ring I/O).
    pub const GUEST_FEATURES: u64 = HOST_FEATURES + 4;
    /// `net_ring` (guest address, ring I/O).
    pub const NET_RING: u64 = GUEST_FEATURES + 4;
    /// Size of the whole structure the tender writes.
    pub const SIZE: u64 = NET_RING + 8;
}

/// `struct hvt_hc_walltime`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HcWalltime {
    /// OUT: wall clock, nanoseconds since the epoch.
    pub nsecs: u64,
}

/// `struct hvt_hc_puts`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HcPuts {
    /// IN: guest address of the bytes.
    pub data: u64,
    /// IN: their number.
    pub len: u64,
}

/// `struct hvt_hc_poll`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HcPoll {
    /// IN: how long to wait, relative to the call.
    pub timeout_nsecs: u64,
    /// OUT: readable handles, bit = manifest index.
    pub ready_set: u64,
    /// OUT: `solo5_result_t`.
    pub ret: i32,
}

/// `struct hvt_hc_block_write` and `struct hvt_hc_block_read` (one layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HcBlockIo {
    /// IN: manifest index of the device.
    pub handle: u64,
    /// IN: byte offset on the device.
    pub offset: u64,
    /// IN: guest address of the buffer.
    pub data: u64,
    /// IN: buffer length.
    pub len: u64,
    /// OUT: `solo5_result_t`.
    pub ret: i32,
}

/// `struct hvt_hc_net_write` and `struct hvt_hc_net_read` (one layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HcNetIo {
    /// IN: manifest index of the device.
    pub handle: u64,
    /// IN: guest address of the buffer.
    pub data: u64,
    /// IN: buffer length; OUT (read): the frame's length.
    pub len: u64,
    /// OUT: `solo5_result_t`.
    pub ret: i32,
}

/// `struct hvt_hc_halt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HcHalt {
    /// IN: guest address of [`HALT_COOKIE_MAX`] bytes for the tender, or 0.
    pub cookie: u64,
    /// IN: the exit status.
    pub exit_status: i32,
}

/// Byte offsets and sizes of the hypercall argument structures, derived
/// from the `repr(C)` structures above.
pub mod args {
    /// [`HcWalltime`](super::HcWalltime).
    pub mod walltime {
        use super::super::*;
        /// `nsecs`.
        pub const NSECS: u64 = offset_of!(HcWalltime, nsecs) as u64;
        /// Size.
        pub const SIZE: u64 = size_of::<HcWalltime>() as u64;
    }
    /// [`HcPuts`](super::HcPuts).
    pub mod puts {
        use super::super::*;
        /// `data`.
        pub const DATA: u64 = offset_of!(HcPuts, data) as u64;
        /// `len`.
        pub const LEN: u64 = offset_of!(HcPuts, len) as u64;
        /// Size.
        pub const SIZE: u64 = size_of::<HcPuts>() as u64;
    }
    /// [`HcPoll`](super::HcPoll).
    pub mod poll {
        use super::super::*;
        /// `timeout_nsecs`.
        pub const TIMEOUT_NSECS: u64 = offset_of!(HcPoll, timeout_nsecs) as u64;
        /// `ready_set`.
        pub const READY_SET: u64 = offset_of!(HcPoll, ready_set) as u64;
        /// `ret`.
        pub const RET: u64 = offset_of!(HcPoll, ret) as u64;
        /// Size.
        pub const SIZE: u64 = size_of::<HcPoll>() as u64;
    }
    /// [`HcBlockIo`](super::HcBlockIo).
    pub mod block {
        use super::super::*;
        /// `handle`.
        pub const HANDLE: u64 = offset_of!(HcBlockIo, handle) as u64;
        /// `offset`.
        pub const OFFSET: u64 = offset_of!(HcBlockIo, offset) as u64;
        /// `data`.
        pub const DATA: u64 = offset_of!(HcBlockIo, data) as u64;
        /// `len`.
        pub const LEN: u64 = offset_of!(HcBlockIo, len) as u64;
        /// `ret`.
        pub const RET: u64 = offset_of!(HcBlockIo, ret) as u64;
        /// Size.
        pub const SIZE: u64 = size_of::<HcBlockIo>() as u64;
    }
    /// [`HcNetIo`](super::HcNetIo).
    pub mod net {
        use super::super::*;
        /// `handle`.
        pub const HANDLE: u64 = offset_of!(HcNetIo, handle) as u64;
        /// `data`.
        pub const DATA: u64 = offset_of!(HcNetIo, data) as u64;
        /// `len`.
        pub const LEN: u64 = offset_of!(HcNetIo, len) as u64;
        /// `ret`.
        pub const RET: u64 = offset_of!(HcNetIo, ret) as u64;
        /// Size.
        pub const SIZE: u64 = size_of::<HcNetIo>() as u64;
    }
    /// [`HcHalt`](super::HcHalt).
    pub mod halt {
        use super::super::*;
        /// `cookie`.
        pub const COOKIE: u64 = offset_of!(HcHalt, cookie) as u64;
        /// `exit_status`.
        pub const EXIT_STATUS: u64 = offset_of!(HcHalt, exit_status) as u64;
        /// Size.
        pub const SIZE: u64 = size_of::<HcHalt>() as u64;
    }
}

// The C layouts under the x86_64 System V ABI (checked against gcc's
// offsetof when the tender was written): a change here breaks the ABI.
const _: () = {
    assert!(size_of::<BootInfo>() == 40 && boot_info::SIZE == 56);
    assert!(args::walltime::SIZE == 8);
    assert!(args::puts::LEN == 8 && args::puts::SIZE == 16);
    assert!(args::poll::RET == 16 && args::poll::SIZE == 24);
    assert!(args::block::RET == 32 && args::block::SIZE == 40);
    assert!(args::net::RET == 24 && args::net::SIZE == 32);
    assert!(args::halt::EXIT_STATUS == 8 && args::halt::SIZE == 16);
};

/// Solo5-owned ELF notes: `n_name` is "Solo5\0" (namesz 6, padded to 8).
pub const NOTE_NAME: &[u8; 6] = b"Solo5\0";
/// Size of a Solo5 note header: `Elf64_Nhdr` (12) + the padded name (8).
pub const NOTE_HDR_SIZE: usize = 20;
/// `ABI1_NOTE_TYPE` ("ABI1", include/elf_abi.h), in `.note.solo5.abi`.
pub const ABI1_NOTE_TYPE: u32 = 0x3149_4241;
/// `ABI1_NOTE_ALIGN`: internal alignment of `struct abi1_info`.
pub const ABI1_NOTE_ALIGN: usize = 4;
/// `ABI1_NOTE_MAX_SIZE`.
pub const ABI1_NOTE_MAX_SIZE: usize = 32;
/// Size of the whole ABI1 note: header and `struct abi1_info` (4 u32s).
pub const ABI1_NOTE_SIZE: usize = NOTE_HDR_SIZE + 16;
/// `MFT1_NOTE_TYPE` ("MFT1", include/mft_abi.h), in `.note.solo5.manifest`.
pub const MFT1_NOTE_TYPE: u32 = 0x3154_464d;
/// `MFT1_NOTE_ALIGN`: internal alignment of `struct mft` (it holds u64s).
pub const MFT1_NOTE_ALIGN: usize = 8;
/// `MFT1_NOTE_MAX_SIZE`: (sizeof(struct mft1_note) - sizeof(struct
/// mft1_nhdr)) + 64 entries.
pub const MFT1_NOTE_MAX_SIZE: usize = (32 - NOTE_HDR_SIZE) + crate::mft::MFT_MAX_ENTRIES * crate::mft::MFT_ENTRY_SIZE;

/// The bytes of the "ABI1" note (`struct abi1_note`, include/elf_abi.h):
/// note header (namesz 6, descsz 16, type "ABI1", name "Solo5" padded to
/// 8), then `struct abi1_info { abi_target, abi_version, reserved0,
/// reserved1 }`. The guest puts these in `.note.solo5.abi`.
pub const fn abi1_note(target: u32, version: u32) -> [u8; ABI1_NOTE_SIZE] {
    let words: [u32; 9] = [
        NOTE_NAME.len() as u32,
        16,
        ABI1_NOTE_TYPE,
        u32::from_le_bytes(*b"Solo"),
        u32::from_le_bytes(*b"5\0\0\0"),
        target,
        version,
        0,
        0,
    ];
    let mut out = [0u8; ABI1_NOTE_SIZE];
    let mut i = 0;
    while i < words.len() {
        let b = words[i].to_le_bytes();
        let mut j = 0;
        while j < 4 {
            out[i * 4 + j] = b[j];
            j += 1;
        }
        i += 1;
    }
    out
}

/// `struct abi1_info`: what the ABI note asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiInfo {
    /// `abi_target` (`enum abi_target`).
    pub target: u32,
    /// `abi_version`.
    pub version: u32,
}

impl AbiInfo {
    /// Reads the note's content (after the header and alignment padding).
    pub fn from_bytes(desc: &[u8]) -> Option<AbiInfo> {
        Some(AbiInfo { target: crate::bytes::u32_at(desc, 0)?, version: crate::bytes::u32_at(desc, 4)? })
    }
}

/// The x86_64 machine the tender sets up (tenders/hvt/hvt_cpu_x86_64.h,
/// hvt_kvm_x86_64.c): guest memory map, control registers, page table and
/// GDT bits.
pub mod x86 {
    /// The tender's GDT.
    pub const GDT_BASE: u64 = 0x1000;
    /// The tender's PML4.
    pub const PML4_BASE: u64 = 0x2000;
    /// The tender's PDPT.
    pub const PDPTE_BASE: u64 = 0x3000;
    /// Four page directories (one per GiB), 0x4000..0x8000.
    pub const PDE_BASE: u64 = 0x4000;
    /// The page table for the first 2 MiB (4 KiB pages).
    pub const PT0E_BASE: u64 = 0x8000;
    /// `X86_BOOT_INFO_BASE`: the boot info; the tender's read-only low
    /// memory (boot info, manifest, command line) is [this,
    /// `GUEST_MIN_BASE`).
    pub const BOOT_INFO_BASE: u64 = 0x1_0000;
    /// Pages below this are not mapped in the guest.
    pub const PT0_MAP_START: u64 = BOOT_INFO_BASE;
    /// 2 MiB pages; guest memory is a multiple of this.
    pub const GUEST_PAGE_SIZE: u64 = 0x20_0000;
    /// `X86_GUEST_MAX_MEM_SIZE`: four page directories, 4 GiB, so every
    /// guest address fits the 32-bit hypercall argument.
    pub const MAX_MEM_SIZE: u64 = 2048 * GUEST_PAGE_SIZE;

    /// CR0.PE.
    pub const CR0_PE: u64 = 1 << 0;
    /// CR0.NE.
    pub const CR0_NE: u64 = 1 << 5;
    /// CR0.WP.
    pub const CR0_WP: u64 = 1 << 16;
    /// CR0.PG.
    pub const CR0_PG: u64 = 1 << 31;
    /// CR0 at entry.
    pub const CR0_INIT: u64 = CR0_PE | CR0_PG | CR0_NE | CR0_WP;
    /// CR4.PAE.
    pub const CR4_PAE: u64 = 1 << 5;
    /// CR4.OSFXSR.
    pub const CR4_OSFXSR: u64 = 1 << 9;
    /// CR4.OSXMMEXCPT.
    pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
    /// CR4 at entry.
    pub const CR4_INIT: u64 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    /// EFER.LME.
    pub const EFER_LME: u64 = 1 << 8;
    /// EFER.LMA.
    pub const EFER_LMA: u64 = 1 << 10;
    /// EFER at entry (no NXE: the guest turns it on).
    pub const EFER_INIT: u64 = EFER_LME | EFER_LMA;
    /// CR3 at entry.
    pub const CR3_INIT: u64 = PML4_BASE;
    /// RFLAGS at entry (interrupts off).
    pub const RFLAGS_INIT: u64 = 0x2;

    /// Page table entry: present.
    pub const PTE_P: u64 = 1 << 0;
    /// Page table entry: writable.
    pub const PTE_RW: u64 = 1 << 1;
    /// Page table entry: large page.
    pub const PTE_PS: u64 = 1 << 7;

    /// GDT index of the code segment (`enum x86_gdt_selector`); selectors
    /// are index * 8.
    pub const GDT_CODE: u16 = 1;
    /// GDT index of the data segment.
    pub const GDT_DATA: u16 = 2;
    /// Number of GDT entries.
    pub const GDT_ENTRIES: u16 = 3;
}

/// The NUL-terminated command line at the start of `bytes` (at most
/// [`CMDLINE_SIZE`] bytes are looked at), without the NUL; `None` if there
/// is no NUL in range.
pub fn cmdline(bytes: &[u8]) -> Option<&[u8]> {
    let b = &bytes[..bytes.len().min(CMDLINE_SIZE)];
    let n = b.iter().position(|&c| c == 0)?;
    Some(&b[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_note_bytes() {
        let n = abi1_note(HVT_ABI_TARGET, HVT_ABI_VERSION);
        assert_eq!(&n[0..4], &6u32.to_le_bytes());
        assert_eq!(&n[4..8], &16u32.to_le_bytes());
        assert_eq!(&n[8..12], b"ABI1");
        assert_eq!(&n[12..20], b"Solo5\0\0\0");
        assert_eq!(AbiInfo::from_bytes(&n[20..]), Some(AbiInfo { target: 1, version: 2 }));
        assert_eq!(&n[28..36], &[0; 8]);
    }

    #[test]
    fn boot_info_reads_every_field_and_refuses_short_input() {
        let mut b = [0u8; 40];
        for (i, v) in [1u64, 2, 3, 4, 5].iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let bi = BootInfo::from_bytes(&b).unwrap();
        assert_eq!(bi, BootInfo { mem_size: 1, kernel_end: 2, cpu_cycle_freq: 3, cmdline: 4, mft: 5 });
        assert_eq!(BootInfo::from_bytes(&b[..39]), None);
    }

    #[test]
    fn command_line() {
        assert_eq!(cmdline(b"a b\0c"), Some(&b"a b"[..]));
        assert_eq!(cmdline(b"abc"), None);
        let mut long = [b'x'; CMDLINE_SIZE + 1];
        long[CMDLINE_SIZE] = 0;
        assert_eq!(cmdline(&long), None);
    }
}
