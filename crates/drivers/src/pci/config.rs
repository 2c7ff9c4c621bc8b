//! Configuration space access. [`PortConfig`] is PCI configuration
//! mechanism #1 (ports 0xCF8/0xCFC), which every PC-shaped VM has; ECAM
//! (memory-mapped, from the ACPI MCFG table) can implement [`ConfigAccess`]
//! later without touching the rest of the bus code.
#![deny(unsafe_code)]
use super::PciAddress;
use unikit_io::pc::PCI_CONFIG;

/// Reads and writes one function's configuration space. Offsets are in
/// bytes (0..256 for mechanism #1, 0..4096 for ECAM); reads of absent
/// functions return all ones.
pub trait ConfigAccess: Sync {
    fn read32(&self, addr: PciAddress, offset: u16) -> u32;
    fn write32(&self, addr: PciAddress, offset: u16, value: u32);

    fn read16(&self, addr: PciAddress, offset: u16) -> u16 {
        (self.read32(addr, offset & !3) >> ((offset & 2) * 8)) as u16
    }
    fn read8(&self, addr: PciAddress, offset: u16) -> u8 {
        (self.read32(addr, offset & !3) >> ((offset & 3) * 8)) as u8
    }
    /// 16-bit write. The default read-modify-writes the dword, which is wrong
    /// for registers next to write-1-to-clear bits (the status register):
    /// implementations should do a real 16-bit access.
    fn write16(&self, addr: PciAddress, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(addr, offset & !3) & !(0xffff << shift);
        self.write32(addr, offset & !3, old | (value as u32) << shift);
    }
}

/// Configuration mechanism #1: address to port 0xCF8, data at 0xCFC..0xCFF.
/// Register offsets 0..256 only.
pub struct PortConfig {
    lock: spin::Mutex<()>,
}

pub static PORT_CONFIG: PortConfig = PortConfig { lock: spin::Mutex::new(()) };

/// Offsets in [`PCI_CONFIG`] (ports 0xCF8 and 0xCFC).
const ADDRESS_PORT: u16 = 0;
const DATA_PORT: u16 = 4;

fn cf8(addr: PciAddress, offset: u16) -> u32 {
    0x8000_0000
        | (addr.bus as u32) << 16
        | ((addr.device & 0x1f) as u32) << 11
        | ((addr.function & 7) as u32) << 8
        | (offset & 0xfc) as u32
}

impl ConfigAccess for PortConfig {
    fn read32(&self, addr: PciAddress, offset: u16) -> u32 {
        if offset >= 256 {
            return !0;
        }
        let _g = self.lock.lock();
        // The lock keeps address and data accesses paired.
        PCI_CONFIG.write::<u32>(ADDRESS_PORT, cf8(addr, offset));
        PCI_CONFIG.read::<u32>(DATA_PORT)
    }

    fn write32(&self, addr: PciAddress, offset: u16, value: u32) {
        if offset >= 256 {
            return;
        }
        let _g = self.lock.lock();
        PCI_CONFIG.write::<u32>(ADDRESS_PORT, cf8(addr, offset));
        PCI_CONFIG.write::<u32>(DATA_PORT, value);
    }

    fn read16(&self, addr: PciAddress, offset: u16) -> u16 {
        if offset >= 256 {
            return !0;
        }
        let _g = self.lock.lock();
        // A 16-bit access at 0xCFC + (offset & 2).
        PCI_CONFIG.write::<u32>(ADDRESS_PORT, cf8(addr, offset));
        PCI_CONFIG.read::<u16>(DATA_PORT + (offset & 2))
    }

    fn write16(&self, addr: PciAddress, offset: u16, value: u16) {
        if offset >= 256 {
            return;
        }
        let _g = self.lock.lock();
        PCI_CONFIG.write::<u32>(ADDRESS_PORT, cf8(addr, offset));
        PCI_CONFIG.write::<u16>(DATA_PORT + (offset & 2), value);
    }
}
