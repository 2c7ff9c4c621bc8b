//! Finding devices and registering them with the kernel.
use super::common::{IntKind, Ints};
use super::mmio::{self, Mmio};
use super::pci::{self as vpci, LegacyPci, ModernPci};
use super::transport::{Regs, Transport};
use super::{ProbeError, TYPE_BLOCK, TYPE_NET};
use super::{VirtioBlk, VirtioNet};
use crate::dlog;
use crate::irq::InterruptController;
use crate::pci;
use crate::pci::probe::{Slot, map_bar, map_mmio};
use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use unikit_io::{IoMem, PortRange};

static NET_COUNT: AtomicUsize = AtomicUsize::new(0);
static BLK_COUNT: AtomicUsize = AtomicUsize::new(0);

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

/// One virtio PCI function (offered by `pci::probe::probe_all`): `None` if
/// it is not a net or block device, else whether it came up.
#[cfg_attr(not(feature = "virtio"), allow(dead_code))]
pub fn probe_pci_function(mut slot: Slot<'_>) -> Option<Result<(), &'static str>> {
    let ty = vpci::device_type(slot.cfg, slot.func).map(u32::from)?;
    if ty != TYPE_NET && ty != TYPE_BLOCK {
        return None;
    }
    Some(setup_pci(&mut slot, ty))
}

fn setup_pci(slot: &mut Slot<'_>, ty: u32) -> Result<(), &'static str> {
    let (cfg, addr, irq) = (slot.cfg, slot.func.addr, slot.irq);
    let caps = pci::capabilities(cfg, addr);
    // Decide legacy vs modern on the BARs as read; the legacy interface
    // needs I/O decoding.
    let bars = pci::read_bars(cfg, addr);
    let use_io = vpci::modern_caps(cfg, addr, &caps, &bars).is_none();
    let bars = slot.assign_bars(use_io)?;
    let modern = vpci::modern_caps(cfg, addr, &caps, &bars);
    let region = |bar: u8, off: u64, len: u64| map_bar(&bars, bar, off, len).map(Regs);

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
