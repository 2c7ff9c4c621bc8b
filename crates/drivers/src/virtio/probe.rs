//! Finding devices and registering them with the kernel.
use super::common::{IntKind, Ints};
use super::mmio::{self, Mmio};
use super::pci::{self as vpci, LegacyPci, ModernPci};
use super::transport::{Regs, Transport};
use super::{PCI_IO_WINDOW, PCI_MEM_WINDOW, ProbeError, TYPE_BLOCK, TYPE_NET};
use super::{VirtioBlk, VirtioNet};
use crate::irq::InterruptController;
use crate::pci::{self, Bar, ConfigAccess, PORT_CONFIG, Window};
use crate::{dlog, dwarn};
use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use unikit_io::{IoMem, PortRange};

static NET_COUNT: AtomicUsize = AtomicUsize::new(0);
static BLK_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Makes `[base, base + len)` accessible: the platform maps it, or it is
/// already identity mapped.
fn map_mmio(base: u64, len: u64) -> bool {
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

/// Brings up a transport as the device type says and registers it.
fn attach(ty: u32, t: &'static dyn Transport, ints: &Ints, place: &dyn core::fmt::Display) -> Result<(), &'static str> {
    match ty {
        TYPE_NET => {
            let n = NET_COUNT.load(Ordering::Relaxed);
            let dev = VirtioNet::new(format!("virtio-net{n}"), t, ints)?;
            NET_COUNT.store(n + 1, Ordering::Relaxed);
            dlog!(
                "virtio-net{n}: {} at {place}, mac {}, {}",
                dev.transport_kind(),
                crate::Mac(unikit_kernel::dev::NetDevice::mac(&dev)),
                if unikit_kernel::dev::NetDevice::has_interrupts(&dev) { "interrupts" } else { "polled" }
            );
            unikit_kernel::dev::register_net(Arc::new(dev));
        }
        TYPE_BLOCK => {
            let n = BLK_COUNT.load(Ordering::Relaxed);
            let dev = VirtioBlk::new(format!("virtio-blk{n}"), t, ints)?;
            BLK_COUNT.store(n + 1, Ordering::Relaxed);
            use unikit_kernel::dev::BlockDevice;
            dlog!(
                "virtio-blk{n}: {} at {place}, {} sectors{}, {}",
                dev.transport_kind(),
                dev.num_blocks(),
                if dev.read_only() { " (read-only)" } else { "" },
                if dev.has_irq() { "interrupts" } else { "polled" }
            );
            unikit_kernel::dev::register_block(Arc::new(dev));
        }
        _ => return Err("unsupported device type"),
    }
    Ok(())
}

/// One virtio-mmio device at `[base, base + size)` raising `gsi`.
pub fn probe_mmio(
    base: u64,
    size: u64,
    gsi: u32,
    irq: Option<&'static dyn InterruptController>,
) -> Result<(), ProbeError> {
    if size < 0x100 {
        return Err(ProbeError::NotVirtio);
    }
    let size = size.min(0x1000);
    if !map_mmio(base, size) {
        return Err(ProbeError::NotMapped);
    }
    // SAFETY: `map_mmio` just made `[base, base + size)` accessible
    // (uncached) and it is this device's register window.
    let regs = Regs(unsafe { IoMem::new(base as usize, size as usize) });
    if regs.r32(mmio::MAGIC) != mmio::MAGIC_VALUE {
        return Err(ProbeError::NotVirtio);
    }
    let version = regs.r32(mmio::VERSION);
    if version != 1 && version != 2 {
        return Err(ProbeError::Failed("unknown virtio-mmio version"));
    }
    let ty = regs.r32(mmio::DEVICE_ID);
    match ty {
        0 => return Err(ProbeError::NoDevice),
        TYPE_NET | TYPE_BLOCK => {}
        t => return Err(ProbeError::Unsupported(t)),
    }
    let t: &'static Mmio = Box::leak(Box::new(Mmio { regs, version }));
    let ints = Ints { ctrl: irq, kind: IntKind::Gsi(gsi) };
    attach(ty, t, &ints, &format_args!("mmio {base:#x} irq {gsi}")).map_err(ProbeError::Failed)
}

/// Enumerates PCI and brings up every virtio net and block function.
pub fn probe_pci(irq: Option<&'static dyn InterruptController>) -> usize {
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
    for f in &funcs {
        count += crate::tulip::probe_function(cfg, f, &mut io, irq);
        let Some(ty) = vpci::device_type(cfg, f).map(u32::from) else { continue };
        if ty != TYPE_NET && ty != TYPE_BLOCK || f.header_type & 0x7f != 0 {
            continue;
        }
        match setup_pci(cfg, f, ty, &mut mem, &mut io, irq) {
            Ok(()) => count += 1,
            Err(why) => dwarn!("virtio: pci {}: {why}; skipped", f.addr),
        }
    }
    count += crate::ata::probe(cfg, &funcs, &mut io);
    count
}

fn setup_pci(
    cfg: &'static dyn ConfigAccess,
    f: &pci::Function,
    ty: u32,
    mem: &mut Window,
    io: &mut Window,
    irq: Option<&'static dyn InterruptController>,
) -> Result<(), &'static str> {
    let addr = f.addr;
    let mut bars = pci::read_bars(cfg, addr);
    let caps = pci::capabilities(cfg, addr);
    // Assign what the firmware left at 0 (only on bus 0: behind a bridge
    // the address would also need the bridge's window).
    let cmd = cfg.read16(addr, pci::COMMAND);
    cfg.write16(addr, pci::COMMAND, cmd & !(pci::CMD_IO | pci::CMD_MEMORY));
    for b in bars.iter_mut().flatten().filter(|b| b.base == 0) {
        if addr.bus != 0 {
            return Err("unassigned BAR behind a bridge");
        }
        let base = if b.is_io() { io.alloc(b.size.max(4)) } else { mem.alloc(b.size.max(4096)) };
        let base = base.ok_or("no room to assign a BAR")?;
        pci::set_bar(cfg, addr, b, base);
    }
    let modern = vpci::modern_caps(cfg, addr, &caps, &bars);
    let use_io = modern.is_none();
    let mut enable = pci::CMD_MEMORY | pci::CMD_BUS_MASTER;
    if use_io {
        enable |= pci::CMD_IO;
    }
    cfg.write16(addr, pci::COMMAND, cmd & !(pci::CMD_IO | pci::CMD_MEMORY) | enable);

    let region = |bar: u8, off: u64, len: u64| -> Result<Regs, &'static str> {
        let b: Bar = bars[bar as usize].ok_or("missing BAR")?;
        if b.is_io() || off.checked_add(len).is_none_or(|e| e > b.size) {
            return Err("region outside its BAR");
        }
        let start = b.base + off;
        if !map_mmio(start, len) {
            return Err("cannot map BAR (Platform::map_device unsupported and not identity mapped)");
        }
        // SAFETY: `map_mmio` just made `[start, start + len)` accessible
        // (uncached); it lies inside the device's memory BAR (checked above).
        Ok(Regs(unsafe { IoMem::new(start as usize, len as usize) }))
    };

    let t: &'static dyn Transport = match modern {
        Some(m) => {
            let notify = region(m.notify.bar, m.notify.offset, m.notify.len)?;
            let t = ModernPci {
                common: region(m.common.bar, m.common.offset, m.common.len)?,
                notify,
                notify_multiplier: m.notify_multiplier,
                isr: region(m.isr.bar, m.isr.offset, m.isr.len)?,
                device: match m.device {
                    Some(d) => Some(region(d.bar, d.offset, d.len.min(0x1000))?),
                    None => None,
                },
            };
            Box::leak(Box::new(t))
        }
        None => {
            let b = bars[0]
                .filter(|b| b.is_io() && b.base != 0)
                .ok_or("neither virtio 1.0 capabilities nor a legacy I/O BAR 0")?;
            if b.size < 0x14 || b.base + b.size > 0x1_0000 {
                return Err("legacy I/O BAR has a bad size");
            }
            // SAFETY: the ports are this device's I/O BAR 0 (checked to be
            // inside the 64 KiB I/O space above).
            let io = unsafe { PortRange::new(b.base as u16, b.size as u16) }.ok_or("legacy I/O BAR has a bad size")?;
            Box::leak(Box::new(LegacyPci { io, msix: AtomicBool::new(false) }))
        }
    };

    // MSI-X: table in a memory BAR, at least one entry.
    let mut kind = IntKind::None;
    if irq.is_some()
        && let Some(&(_, cap)) = caps.iter().find(|c| c.0 == pci::CAP_MSIX)
        && let Some(info) = pci::msix_info(cfg, addr, cap)
        && let Ok(table) = region(info.table_bar, info.table_offset as u64, 16)
    {
        kind = IntKind::Msix { cfg, addr, info, table: table.0 };
    }
    let ints = Ints { ctrl: irq, kind };
    attach(ty, t, &ints, &format_args!("{addr}"))
}
