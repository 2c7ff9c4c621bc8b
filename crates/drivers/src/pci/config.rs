//! Configuration space access. [`PortConfig`] is PCI configuration
//! mechanism #1 (ports 0xCF8/0xCFC), which every PC-shaped VM has; ECAM
//! (memory-mapped, from the ACPI MCFG table) can implement [`ConfigAccess`]
//! later without touching the rest of the bus code.
use super::PciAddress;

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

const ADDRESS_PORT: u16 = 0xcf8;
const DATA_PORT: u16 = 0xcfc;

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
        // SAFETY: the 0xCF8/0xCFC pair is the PCI configuration mechanism
        // on every PC; the lock keeps address and data accesses paired.
        unsafe {
            crate::port::outl(ADDRESS_PORT, cf8(addr, offset));
            crate::port::inl(DATA_PORT)
        }
    }

    fn write32(&self, addr: PciAddress, offset: u16, value: u32) {
        if offset >= 256 {
            return;
        }
        let _g = self.lock.lock();
        // SAFETY: as in `read32`.
        unsafe {
            crate::port::outl(ADDRESS_PORT, cf8(addr, offset));
            crate::port::outl(DATA_PORT, value);
        }
    }

    fn read16(&self, addr: PciAddress, offset: u16) -> u16 {
        if offset >= 256 {
            return !0;
        }
        let _g = self.lock.lock();
        // SAFETY: as in `read32`; a 16-bit access at 0xCFC + (offset & 2).
        unsafe {
            crate::port::outl(ADDRESS_PORT, cf8(addr, offset));
            crate::port::inw(DATA_PORT + (offset & 2))
        }
    }

    fn write16(&self, addr: PciAddress, offset: u16, value: u16) {
        if offset >= 256 {
            return;
        }
        let _g = self.lock.lock();
        // SAFETY: as in `read32`; a 16-bit access at 0xCFC + (offset & 2).
        unsafe {
            crate::port::outl(ADDRESS_PORT, cf8(addr, offset));
            crate::port::outw(DATA_PORT + (offset & 2), value);
        }
    }
}
