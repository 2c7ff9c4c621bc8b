//! One pass over PCI for every driver family: enumerate once, reserve the
//! BARs the firmware assigned, then offer each function to the family that
//! drives its vendor/device id (a plain `match`, one arm per family).
use super::{Bar, ConfigAccess, Function, PCI_IO_WINDOW, PCI_MEM_WINDOW, PORT_CONFIG, Window};
use crate::irq::InterruptController;
use crate::pci;
use unikit_io::IoMem;

/// What a driver gets for one function: configuration access and the
/// windows to place BARs the firmware left unassigned.
pub struct Slot<'a> {
    pub cfg: &'static dyn ConfigAccess,
    pub func: &'a Function,
    pub mem: &'a mut Window,
    pub io: &'a mut Window,
    pub irq: Option<&'static dyn InterruptController>,
}

impl Slot<'_> {
    /// Reads the BARs, assigns those left at 0 (bus 0 only: behind a bridge
    /// the address would also need the bridge's window) and turns on memory
    /// decoding, bus mastering and, if `io`, I/O decoding.
    pub fn assign_bars(&mut self, io: bool) -> Result<[Option<Bar>; 6], &'static str> {
        let (cfg, addr) = (self.cfg, self.func.addr);
        let mut bars = pci::read_bars(cfg, addr);
        let cmd = cfg.read16(addr, pci::COMMAND);
        cfg.write16(addr, pci::COMMAND, cmd & !(pci::CMD_IO | pci::CMD_MEMORY));
        for b in bars.iter_mut().flatten().filter(|b| b.base == 0) {
            if addr.bus != 0 {
                return Err("unassigned BAR behind a bridge");
            }
            let base = if b.is_io() { self.io.alloc(b.size.max(4)) } else { self.mem.alloc(b.size.max(4096)) };
            let base = base.ok_or("no room to assign a BAR")?;
            pci::set_bar(cfg, addr, b, base);
        }
        let mut enable = pci::CMD_MEMORY | pci::CMD_BUS_MASTER;
        if io {
            enable |= pci::CMD_IO;
        }
        cfg.write16(addr, pci::COMMAND, cmd & !(pci::CMD_IO | pci::CMD_MEMORY) | enable);
        Ok(bars)
    }
}

/// `[off, off + len)` of memory BAR `bar`, mapped uncached.
pub fn map_bar(bars: &[Option<Bar>; 6], bar: u8, off: u64, len: u64) -> Result<IoMem, &'static str> {
    let b: Bar = bars.get(bar as usize).copied().flatten().ok_or("missing BAR")?;
    if b.is_io() || b.base == 0 || off.checked_add(len).is_none_or(|e| e > b.size) {
        return Err("region outside its BAR");
    }
    let start = b.base + off;
    if !map_mmio(start, len) {
        return Err("cannot map BAR (Platform::map_device unsupported and not identity mapped)");
    }
    // SAFETY: `map_mmio` just made `[start, start + len)` accessible
    // (uncached); it lies inside the device's memory BAR (checked above).
    Ok(unsafe { IoMem::new(start as usize, len as usize) })
}

/// Makes `[base, base + len)` accessible: the platform maps it, or it is
/// already identity mapped.
pub(crate) fn map_mmio(base: u64, len: u64) -> bool {
    let p = unikit_kernel::hal().memory;
    if len == 0 || base.checked_add(len).is_none() {
        return false;
    }
    if p.map_device(base, len) {
        return true;
    }
    let start = base & !0xfff;
    let end = (base + len).next_multiple_of(0x1000);
    (start..end).step_by(0x1000).all(|a| p.virt_to_phys(a) == Some(a))
}

/// Enumerates PCI once and brings up every function a compiled-in driver
/// family claims (cargo features `virtio`, `vmxnet3`, `e1000`, `pvscsi`,
/// `tulip`, `ata`). Returns how
/// many devices were registered. A device that fails is skipped with one
/// warning line.
pub fn probe_all(irq: Option<&'static dyn InterruptController>) -> usize {
    let cfg: &'static dyn ConfigAccess = &PORT_CONFIG;
    let funcs = pci::enumerate(cfg);
    // Everything the firmware assigned is taken; unassigned BARs go around it.
    let mut mem = Window::new(PCI_MEM_WINDOW.0, PCI_MEM_WINDOW.1);
    let mut io = Window::new(PCI_IO_WINDOW.0, PCI_IO_WINDOW.1);
    for f in funcs.iter().filter(|f| f.header_type & 0x7f == 0) {
        for b in pci::read_bars(cfg, f.addr).iter().flatten().filter(|b| b.base != 0) {
            if b.is_io() { io.reserve(b.base, b.size) } else { mem.reserve(b.base, b.size) }
        }
    }
    let mut count = 0;
    for f in funcs.iter().filter(|f| f.header_type & 0x7f == 0) {
        let slot = Slot { cfg, func: f, mem: &mut mem, io: &mut io, irq };
        // One arm per driver family; `None`: not this family's device.
        let result: Option<(&str, Result<(), &'static str>)> = match (f.vendor, f.device) {
            #[cfg(feature = "virtio")]
            (crate::virtio::pci::VENDOR, _) => crate::virtio::probe::probe_pci_function(slot).map(|r| ("virtio", r)),
            #[cfg(feature = "vmxnet3")]
            (crate::vmxnet3::VENDOR, crate::vmxnet3::DEVICE) => Some(("vmxnet3", crate::vmxnet3::attach(slot))),
            #[cfg(feature = "e1000")]
            (crate::e1000::VENDOR, d) if crate::e1000::DEVICES.contains(&d) => {
                Some(("e1000", crate::e1000::attach(slot)))
            }
            #[cfg(feature = "tulip")]
            (crate::tulip::VENDOR_DEC, d) if crate::tulip::DEVICES.contains(&d) => {
                // It registers its NIC itself and says why when it cannot.
                count += crate::tulip::probe_function(slot.cfg, slot.func, slot.io, slot.irq);
                None
            }
            #[cfg(feature = "pvscsi")]
            (crate::pvscsi::VENDOR_VMWARE, crate::pvscsi::DEVICE_PVSCSI) => {
                // It registers its disks itself, one per target it finds.
                Some(("pvscsi", crate::pvscsi::probe_function(slot.cfg, slot.func, slot.mem, slot.io, slot.irq)))
            }
            _ => {
                let _ = slot;
                None
            }
        };
        match result {
            Some((_, Ok(()))) => count += 1,
            Some((family, Err(why))) => crate::dwarn!("{family}: pci {}: {why}; skipped", f.addr),
            None => {}
        }
    }
    // ATA disks hang off the legacy IDE ports of a PCI IDE controller.
    #[cfg(feature = "ata")]
    {
        count += crate::ata::probe(cfg, &funcs, &mut io);
    }
    count
}
