//! PVH boot: `struct hvm_start_info` and the tables it points to
//! (xen/include/public/arch-x86/hvm/start_info.h). QEMU (`-kernel` with a
//! PVH note), Firecracker, cloud-hypervisor and Xen PVH hand the 32-bit
//! entry point a `hvm_start_info` in `ebx`.
//!
//! The structures are `repr(C)` (the header gives their canonical byte
//! layout, which the assertions below pin) so that a guest may read them in
//! place; `from_bytes` reads them from a byte slice instead, checked.
//! Everything in them is the hypervisor's word: addresses and counts must
//! be bounds-checked by the reader.

use core::mem::size_of;

use crate::bytes::{u32_at, u64_at};

/// `XEN_HVM_START_MAGIC_VALUE` ("xEn3" with the 0x80 bit of the "E" set).
pub const START_MAGIC: u32 = 0x336e_c578;
/// `XEN_HVM_MEMMAP_TYPE_RAM`.
pub const MEMMAP_TYPE_RAM: u32 = 1;
/// `XEN_HVM_MEMMAP_TYPE_RESERVED`.
pub const MEMMAP_TYPE_RESERVED: u32 = 2;
/// `XEN_HVM_MEMMAP_TYPE_ACPI`.
pub const MEMMAP_TYPE_ACPI: u32 = 3;
/// `XEN_HVM_MEMMAP_TYPE_NVS`.
pub const MEMMAP_TYPE_NVS: u32 = 4;
/// `XEN_HVM_MEMMAP_TYPE_UNUSABLE`.
pub const MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// `XEN_HVM_MEMMAP_TYPE_DISABLED`.
pub const MEMMAP_TYPE_DISABLED: u32 = 6;
/// `XEN_HVM_MEMMAP_TYPE_PMEM`.
pub const MEMMAP_TYPE_PMEM: u32 = 7;

/// `struct hvm_start_info` (version 1 layout; version 0 ends at
/// `memmap_paddr`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartInfo {
    /// [`START_MAGIC`].
    pub magic: u32,
    /// Version of the structure (1 has the memory map fields).
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of [`ModlistEntry`]s at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of the module list (0: none).
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0: none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP (0: none).
    pub rsdp_paddr: u64,
    /// Physical address of the [`MemmapEntry`] table (version >= 1).
    pub memmap_paddr: u64,
    /// Entries in the memory map (version >= 1; 0: no map).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_memmap_table_entry` (an E820 entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemmapEntry {
    /// Base address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*`.
    pub kind: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_modlist_entry` (QEMU `-initrd` is module 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of its command line (0: none).
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}

const _: () = {
    assert!(size_of::<StartInfo>() == 56);
    assert!(size_of::<MemmapEntry>() == 24);
    assert!(size_of::<ModlistEntry>() == 32);
};

impl StartInfo {
    /// Size of the version 1 structure.
    pub const SIZE: usize = size_of::<StartInfo>();

    /// Reads the structure (version 1 layout) from `b`.
    pub fn from_bytes(b: &[u8]) -> Option<StartInfo> {
        Some(StartInfo {
            magic: u32_at(b, 0)?,
            version: u32_at(b, 4)?,
            flags: u32_at(b, 8)?,
            nr_modules: u32_at(b, 12)?,
            modlist_paddr: u64_at(b, 16)?,
            cmdline_paddr: u64_at(b, 24)?,
            rsdp_paddr: u64_at(b, 32)?,
            memmap_paddr: u64_at(b, 40)?,
            memmap_entries: u32_at(b, 48)?,
            reserved: u32_at(b, 52)?,
        })
    }

    /// Whether the structure carries a memory map: version >= 1 and a
    /// non-zero address and count (the header says to check both).
    pub fn has_memmap(&self) -> bool {
        self.version >= 1 && self.memmap_paddr != 0 && self.memmap_entries != 0
    }
}

impl MemmapEntry {
    /// Size of one entry.
    pub const SIZE: usize = size_of::<MemmapEntry>();

    /// Reads one entry from `b`.
    pub fn from_bytes(b: &[u8]) -> Option<MemmapEntry> {
        Some(MemmapEntry { addr: u64_at(b, 0)?, size: u64_at(b, 8)?, kind: u32_at(b, 16)?, reserved: u32_at(b, 20)? })
    }

    /// End of the range, or `None` if it wraps.
    pub fn end(&self) -> Option<u64> {
        self.addr.checked_add(self.size)
    }
}

impl ModlistEntry {
    /// Size of one entry.
    pub const SIZE: usize = size_of::<ModlistEntry>();

    /// Reads one entry from `b`.
    pub fn from_bytes(b: &[u8]) -> Option<ModlistEntry> {
        Some(ModlistEntry {
            paddr: u64_at(b, 0)?,
            size: u64_at(b, 8)?,
            cmdline_paddr: u64_at(b, 16)?,
            reserved: u64_at(b, 24)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_canonical_layout() {
        let mut b = [0u8; 56];
        b[0..4].copy_from_slice(&START_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[16..24].copy_from_slice(&0x5000u64.to_le_bytes());
        b[24..32].copy_from_slice(&0x6000u64.to_le_bytes());
        b[40..48].copy_from_slice(&0x7000u64.to_le_bytes());
        b[48..52].copy_from_slice(&3u32.to_le_bytes());
        let si = StartInfo::from_bytes(&b).unwrap();
        assert_eq!(si.magic, START_MAGIC);
        assert_eq!((si.nr_modules, si.modlist_paddr, si.cmdline_paddr), (1, 0x5000, 0x6000));
        assert_eq!((si.memmap_paddr, si.memmap_entries), (0x7000, 3));
        assert!(si.has_memmap());
        assert!(!StartInfo { version: 0, ..si }.has_memmap());
        assert_eq!(StartInfo::from_bytes(&b[..55]), None);

        let mut e = [0u8; 24];
        e[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        e[8..16].copy_from_slice(&2u64.to_le_bytes());
        e[16..20].copy_from_slice(&MEMMAP_TYPE_RAM.to_le_bytes());
        let m = MemmapEntry::from_bytes(&e).unwrap();
        assert_eq!((m.kind, m.end()), (MEMMAP_TYPE_RAM, None));
        assert_eq!(ModlistEntry::from_bytes(&[0; 31]), None);
    }
}
