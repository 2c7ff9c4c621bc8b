//! PCI: configuration space, bus enumeration, BARs (sizing and, where the
//! firmware left them unassigned, assignment), the capability list and MSI-X.
//!
//! Everything read from configuration space is treated as untrusted: the
//! capability walk is bounded, BAR sizes are checked, bridges' bus numbers
//! are visited once.
#![deny(unsafe_code)]
mod config;
// Maps BARs (`IoMem::new`); guest only (needs the kernel's HAL).
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod probe;
mod window;

pub use config::{ConfigAccess, PORT_CONFIG, PortConfig};
pub use window::Window;

use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

// Configuration header registers.
pub const VENDOR_ID: u16 = 0x00;
pub const DEVICE_ID: u16 = 0x02;
pub const COMMAND: u16 = 0x04;
pub const STATUS: u16 = 0x06;
pub const CLASS_REV: u16 = 0x08;
pub const HEADER_TYPE: u16 = 0x0e;
pub const BAR0: u16 = 0x10;
pub const SUBSYSTEM_ID: u16 = 0x2e;
pub const CAP_PTR: u16 = 0x34;
pub const SECONDARY_BUS: u16 = 0x19;

pub const CMD_IO: u16 = 1 << 0;
pub const CMD_MEMORY: u16 = 1 << 1;
pub const CMD_BUS_MASTER: u16 = 1 << 2;
pub const CMD_INTX_DISABLE: u16 = 1 << 10;
const STATUS_CAP_LIST: u16 = 1 << 4;

/// 32-bit memory window unassigned BARs are placed in: above q35's ECAM
/// (0xb000_0000..0xc000_0000), below the IOAPIC (0xfec0_0000). SeaBIOS uses
/// the same window on q35; QEMU's q35 PCI hole covers it.
pub const PCI_MEM_WINDOW: (u64, u64) = (0xc000_0000, 0xfec0_0000);
/// I/O window for unassigned I/O BARs (SeaBIOS uses the same).
pub const PCI_IO_WINDOW: (u64, u64) = (0xc000, 0x1_0000);

pub const CAP_MSIX: u8 = 0x11;
pub const CAP_VENDOR: u8 = 0x09;

/// One function found on the bus.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub addr: PciAddress,
    pub vendor: u16,
    pub device: u16,
    /// Class, subclass, prog-if, revision (the dword at 0x08).
    pub class_rev: u32,
    pub header_type: u8,
}

/// Enumerates bus 0 and, through PCI-PCI bridges the firmware configured,
/// their secondary buses (each bus visited once, so a bogus bridge cannot
/// make this loop).
pub fn enumerate(cfg: &dyn ConfigAccess) -> Vec<Function> {
    let mut found = Vec::new();
    let mut visited = [false; 256];
    let mut todo: Vec<u8> = alloc::vec![0];
    while let Some(bus) = todo.pop() {
        if core::mem::replace(&mut visited[bus as usize], true) {
            continue;
        }
        for device in 0..32u8 {
            for function in 0..8u8 {
                let addr = PciAddress { bus, device, function };
                let id = cfg.read32(addr, VENDOR_ID);
                if id & 0xffff == 0xffff || id & 0xffff == 0 {
                    if function == 0 {
                        break;
                    }
                    continue;
                }
                let header_type = cfg.read8(addr, HEADER_TYPE);
                found.push(Function {
                    addr,
                    vendor: id as u16,
                    device: (id >> 16) as u16,
                    class_rev: cfg.read32(addr, CLASS_REV),
                    header_type,
                });
                if header_type & 0x7f == 1 {
                    let secondary = cfg.read8(addr, SECONDARY_BUS);
                    if secondary != 0 && !visited[secondary as usize] {
                        todo.push(secondary);
                    }
                }
                if function == 0 && header_type & 0x80 == 0 {
                    break; // single-function device
                }
            }
        }
    }
    found
}

/// Capabilities of a function as (id, offset) pairs. The walk stops at 48
/// entries, at a pointer outside 0x40..0x100 or at a repeated pointer.
pub fn capabilities(cfg: &dyn ConfigAccess, addr: PciAddress) -> Vec<(u8, u16)> {
    let mut caps = Vec::new();
    if cfg.read16(addr, STATUS) & STATUS_CAP_LIST == 0 {
        return caps;
    }
    let mut ptr = (cfg.read8(addr, CAP_PTR) & 0xfc) as u16;
    let mut seen = [false; 64];
    while (0x40..0x100).contains(&ptr) && caps.len() < 48 {
        let slot = (ptr / 4) as usize;
        if core::mem::replace(&mut seen[slot], true) {
            break;
        }
        let id = cfg.read8(addr, ptr);
        caps.push((id, ptr));
        ptr = (cfg.read8(addr, ptr + 1) & 0xfc) as u16;
    }
    caps
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Mem32,
    Mem64,
}

/// A base address register: its current base (0 = unassigned) and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    pub index: u8,
    pub kind: BarKind,
    pub prefetchable: bool,
    pub base: u64,
    pub size: u64,
}

impl Bar {
    pub fn is_io(&self) -> bool {
        self.kind == BarKind::Io
    }
}

/// Reads and sizes the six BARs of a type-0 function. Decoding is switched
/// off while sizing and restored afterwards. Returns `[None; 6]` slots for
/// unimplemented BARs (and for the upper half of a 64-bit one).
pub fn read_bars(cfg: &dyn ConfigAccess, addr: PciAddress) -> [Option<Bar>; 6] {
    let mut bars = [None; 6];
    let cmd = cfg.read16(addr, COMMAND);
    cfg.write16(addr, COMMAND, cmd & !(CMD_IO | CMD_MEMORY));
    let mut i = 0u8;
    while i < 6 {
        let off = BAR0 + 4 * i as u16;
        let orig = cfg.read32(addr, off);
        cfg.write32(addr, off, !0);
        let mask = cfg.read32(addr, off);
        cfg.write32(addr, off, orig);
        if orig & 1 == 1 {
            // I/O: 32-bit register, only 16 bits decoded on x86.
            let m = mask & !3 & 0xffff;
            if m != 0 {
                let size = (!m & 0xffff) + 1;
                bars[i as usize] = Some(Bar {
                    index: i,
                    kind: BarKind::Io,
                    prefetchable: false,
                    base: (orig & !3 & 0xffff) as u64,
                    size: size as u64,
                });
            }
            i += 1;
            continue;
        }
        let prefetchable = orig & 8 != 0;
        let is64 = (orig >> 1) & 3 == 2 && i < 5;
        let lo_mask = mask & !0xf;
        let (base, full_mask, implemented) = if is64 {
            let off_hi = off + 4;
            let orig_hi = cfg.read32(addr, off_hi);
            cfg.write32(addr, off_hi, !0);
            let mask_hi = cfg.read32(addr, off_hi);
            cfg.write32(addr, off_hi, orig_hi);
            (
                (orig_hi as u64) << 32 | (orig & !0xf) as u64,
                (mask_hi as u64) << 32 | lo_mask as u64,
                lo_mask != 0 || mask_hi != 0,
            )
        } else {
            ((orig & !0xf) as u64, 0xffff_ffff_0000_0000 | lo_mask as u64, lo_mask != 0)
        };
        if implemented {
            let size = (!full_mask).wrapping_add(1);
            if size.is_power_of_two() && size >= 16 {
                let kind = if is64 { BarKind::Mem64 } else { BarKind::Mem32 };
                bars[i as usize] = Some(Bar { index: i, kind, prefetchable, base, size });
            }
        }
        i += if is64 { 2 } else { 1 };
    }
    cfg.write16(addr, COMMAND, cmd);
    bars
}

/// Programs a BAR's base address (decoding should be off).
pub fn set_bar(cfg: &dyn ConfigAccess, addr: PciAddress, bar: &mut Bar, base: u64) {
    let off = BAR0 + 4 * bar.index as u16;
    let low_flags = cfg.read32(addr, off) & if bar.is_io() { 3 } else { 0xf };
    cfg.write32(addr, off, base as u32 & !0xf | low_flags);
    if bar.kind == BarKind::Mem64 {
        cfg.write32(addr, off + 4, (base >> 32) as u32);
    }
    bar.base = base;
}

/// Sets command-register bits (decoding, bus mastering, INTx disable).
pub fn enable(cfg: &dyn ConfigAccess, addr: PciAddress, bits: u16) {
    let cmd = cfg.read16(addr, COMMAND);
    cfg.write16(addr, COMMAND, cmd | bits);
}

/// Where a function's MSI-X table is and how big it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixInfo {
    pub cap: u16,
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
}

pub fn msix_info(cfg: &dyn ConfigAccess, addr: PciAddress, cap: u16) -> Option<MsixInfo> {
    let ctrl = cfg.read16(addr, cap + 2);
    let table = cfg.read32(addr, cap + 4);
    let bar = (table & 7) as u8;
    (bar < 6).then_some(MsixInfo { cap, table_size: (ctrl & 0x7ff) + 1, table_bar: bar, table_offset: table & !7 })
}

/// Enables MSI-X (function mask off) and masks legacy INTx.
pub fn msix_enable(cfg: &dyn ConfigAccess, addr: PciAddress, info: &MsixInfo, on: bool) {
    let ctrl = cfg.read16(addr, info.cap + 2);
    let ctrl = if on { (ctrl | 1 << 15) & !(1 << 14) } else { ctrl & !(1 << 15) };
    cfg.write16(addr, info.cap + 2, ctrl);
    if on {
        enable(cfg, addr, CMD_INTX_DISABLE);
    }
}

/// Writes MSI-X table entry `entry` of `table` (the mapped table) and
/// unmasks it. `false` (nothing written) if the entry is outside the window.
pub fn msix_write_entry(table: &unikit_io::IoMem, entry: u16, msg: crate::irq::MsiMessage) -> bool {
    let Some(e) = table.sub(16 * entry as usize, 16) else { return false };
    e.write::<u32>(12, 1); // mask while changing
    e.write::<u32>(0, msg.address as u32);
    e.write::<u32>(4, (msg.address >> 32) as u32);
    e.write::<u32>(8, msg.data);
    e.write::<u32>(12, 0);
    true
}

#[cfg(test)]
mod tests;
