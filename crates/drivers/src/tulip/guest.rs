//! The guest side: the PCI function, the I/O BAR, the `NetDevice`.
#![allow(unsafe_code)]
use super::{Csr, REGION_LEN, Rx, TulipError, Tx};
use crate::irq::{InterruptController, IrqHandler};
use crate::pci::{self, ConfigAccess, PciAddress, Window};
use crate::{dlog, dwarn};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use unikit_io::{Broken, DmaRegion, PortRange};
use unikit_kernel::dev::{DevError, Doorbell, NetDevice};
use unikit_kernel::event::Event;

pub(super) fn lend_rx(region: &DmaRegion, off: usize, len: usize, f: &mut dyn FnMut(&[u8])) {
    // SAFETY: the caller saw the descriptor's OWN bit clear, so the device
    // does not write this buffer until the descriptor is given back, which
    // happens after `f` returns, under the rx lock; the range is inside
    // the buffer (the length was checked against it) and the region
    // (checked by `lend`).
    f(unsafe { region.lend(off, len) })
}

pub(super) fn lend_tx(region: &DmaRegion, off: usize, len: usize, f: &mut dyn FnMut(&mut [u8])) {
    // SAFETY: the buffer belongs to a descriptor the device does not own
    // (reclaimed or never posted), which is posted only after `f` returns,
    // under the tx lock; the range is inside the buffer (len <= BUF).
    f(unsafe { region.lend_mut(off, len) })
}

/// CSRs through the I/O BAR.
#[derive(Clone, Copy)]
struct Ports(PortRange);

impl Csr for Ports {
    fn read(&self, n: u16) -> u32 {
        self.0.read::<u32>(n * 8)
    }
    fn write(&self, n: u16, v: u32) {
        self.0.write::<u32>(n * 8, v)
    }
    fn now_ns(&self) -> u64 {
        unikit_kernel::time::monotonic_ns()
    }
}

struct TulipNet {
    name: String,
    mac: [u8; 6],
    csr: Ports,
    region: DmaRegion,
    rx: spin::Mutex<Rx>,
    tx: spin::Mutex<Tx>,
    broken: Broken,
    event: &'static Event,
    irq: bool,
}

impl TulipNet {
    fn err(&self, e: TulipError) -> DevError {
        match e {
            TulipError::WouldBlock => DevError::WouldBlock,
            TulipError::BadLength => DevError::BadLength,
            TulipError::Broken(why) => DevError::Broken(self.broken.set(why)),
        }
    }
    fn check(&self) -> Result<(), DevError> {
        self.broken.check().map_err(DevError::Broken)
    }
}

impl NetDevice for TulipNet {
    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn rx_pending(&self) -> Result<bool, DevError> {
        self.check()?;
        Ok(self.rx.lock().pending(&self.region))
    }
    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError> {
        self.check()?;
        self.rx.lock().receive_with(&self.csr, &self.region, f).map_err(|e| self.err(e))
    }
    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError> {
        self.check()?;
        self.tx.lock().transmit_with(&self.csr, &self.region, len, f).map_err(|e| self.err(e))
    }
    fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
        self.event.forward_to(doorbell);
    }
    fn has_interrupts(&self) -> bool {
        self.irq
    }
}

/// The INTx handler: acknowledges the device, wakes the stack.
struct IntxHandler {
    csr: Ports,
    event: &'static Event,
    hits: AtomicU32,
}

impl IrqHandler for IntxHandler {
    fn handle(&self) {
        if super::ack(&self.csr) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.event.signal();
        }
    }
}

/// Whether the routed interrupt line really reaches us: one frame to our
/// own address in internal loopback, whose receive interrupt must arrive
/// within 50 ms. The routing is the firmware's or a guess about the
/// chipset; a wrong one would leave the stack waiting for interrupts that
/// never come, so it is tested rather than believed.
fn interrupt_arrives(
    csr: &Ports,
    region: &DmaRegion,
    rx: &mut Rx,
    tx: &mut Tx,
    mac: [u8; 6],
    hits: &AtomicU32,
) -> bool {
    const OM_INTERNAL_LOOPBACK: u32 = 1 << 10;
    let mode = csr.read(6);
    let stopped = mode & !(super::CSR6_SR | super::CSR6_ST);
    // The operating mode changes only while both processes are stopped.
    csr.write(6, stopped);
    csr.write(6, mode & !super::CSR6_OM | OM_INTERNAL_LOOPBACK);
    let before = hits.load(Ordering::Relaxed);
    let sent = tx.transmit_with(csr, region, 60, &mut |b| {
        b.fill(0);
        b[..6].copy_from_slice(&mac);
        b[6..12].copy_from_slice(&mac);
    });
    let t0 = csr.now_ns();
    while sent.is_ok() && hits.load(Ordering::Relaxed) == before && csr.now_ns().wrapping_sub(t0) < 50_000_000 {
        core::hint::spin_loop();
    }
    let ok = sent.is_ok() && hits.load(Ordering::Relaxed) != before;
    csr.write(6, stopped);
    csr.write(6, mode);
    // Whatever came in meanwhile (the looped frame) is dropped.
    for _ in 0..super::RX_COUNT {
        if !rx.pending(region) {
            break;
        }
        let _ = rx.receive_with(csr, region, &mut |_| {});
    }
    ok
}

/// PCI configuration registers: interrupt line and pin.
const INTERRUPT_LINE: u16 = 0x3c;
const INTERRUPT_PIN: u16 = 0x3d;
/// The PIIX3 PCI-to-ISA bridge (00:01.0 on QEMU's pc) and its PIRQA-D
/// route control registers (0x60..0x63; bit 7 = routing disabled).
const PIIX3: (u16, u16) = (0x8086, 0x7000);
const PIRQRC: u16 = 0x60;
/// The ISA IRQ we route an unrouted PIRQ to.
const OUR_IRQ: u8 = 11;

/// The ISA IRQ (= I/O APIC pin on a PC) the function's INTx arrives on.
/// On QEMU's PIIX3 the chipset's own routing is read (and set up where
/// disabled): the i440fx swizzle is PIRQ = (slot + pin - 2) mod 4, and
/// qboot's interrupt line values do not match it. Elsewhere (Hyper-V's
/// PIIX4, other firmware) the interrupt line register the firmware wrote
/// is tried. Either way [`interrupt_arrives`] checks the result.
fn intx_irq(cfg: &dyn ConfigAccess, addr: PciAddress) -> Option<u8> {
    let pin = cfg.read8(addr, INTERRUPT_PIN);
    if !(1..=4).contains(&pin) {
        return None;
    }
    let isa = PciAddress { bus: 0, device: 1, function: 0 };
    if addr.bus != 0 || (cfg.read16(isa, pci::VENDOR_ID), cfg.read16(isa, pci::DEVICE_ID)) != PIIX3 {
        let line = cfg.read8(addr, INTERRUPT_LINE);
        return (3..=15).contains(&line).then_some(line);
    }
    let pirq = (addr.device + pin + 2) & 3;
    let shift = 8 * pirq as u32;
    let regs = cfg.read32(isa, PIRQRC);
    let cur = (regs >> shift) as u8;
    let irq = if cur & 0x80 == 0 && (3..=15).contains(&(cur & 0x0f)) {
        cur & 0x0f
    } else {
        cfg.write32(isa, PIRQRC, regs & !(0xff << shift) | (OUR_IRQ as u32) << shift);
        OUR_IRQ
    };
    let v = cfg.read32(addr, INTERRUPT_LINE & !3);
    cfg.write32(addr, INTERRUPT_LINE & !3, v & !0xff | irq as u32);
    Some(irq)
}

static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Brings up `f` if it is a DEC 21140 or 21143 and registers it; returns
/// how many devices it registered (0 or 1). Assigns the I/O BAR from `io`
/// if the firmware left it unassigned.
pub fn probe_function(
    cfg: &dyn ConfigAccess,
    f: &pci::Function,
    io: &mut Window,
    irq: Option<&'static dyn InterruptController>,
) -> usize {
    if f.vendor != super::VENDOR_DEC || !super::DEVICES.contains(&f.device) || f.header_type & 0x7f != 0 {
        return 0;
    }
    match setup(cfg, f, io, irq) {
        Ok(()) => 1,
        Err(why) => {
            dwarn!("tulip: pci {}: {why}; skipped", f.addr);
            0
        }
    }
}

fn setup(
    cfg: &dyn ConfigAccess,
    f: &pci::Function,
    io: &mut Window,
    ctrl: Option<&'static dyn InterruptController>,
) -> Result<(), &'static str> {
    let addr = f.addr;
    let bars = pci::read_bars(cfg, addr);
    let mut bar = bars[0].filter(|b| b.is_io()).ok_or("no I/O BAR 0")?;
    if bar.size < 0x80 || bar.size > 0x1_0000 {
        return Err("I/O BAR 0 has a bad size");
    }
    if bar.base == 0 {
        if addr.bus != 0 {
            return Err("unassigned BAR behind a bridge");
        }
        let base = io.alloc(bar.size).ok_or("no room to assign the I/O BAR")?;
        pci::set_bar(cfg, addr, &mut bar, base);
    }
    if bar.base + 0x80 > 0x1_0000 {
        return Err("I/O BAR 0 outside the I/O space");
    }
    pci::enable(cfg, addr, pci::CMD_IO | pci::CMD_BUS_MASTER);
    // SAFETY: the 128 ports are the tulip's own CSRs (its I/O BAR 0,
    // checked to lie inside the I/O space); the DMA they start goes to the
    // region handed over below.
    let ports = unsafe { PortRange::new(bar.base as u16, 0x80) }.ok_or("I/O BAR 0 outside the I/O space")?;
    let csr = Ports(ports);
    let region = DmaRegion::alloc(REGION_LEN, 4096).ok_or("out of memory for the rings")?;
    let to32: super::Dma32 = |a| u32::try_from(a).ok();
    let (mac, mut rx, mut tx) = super::start(&csr, &region, to32).map_err(|e| match e {
        TulipError::Broken(why) => why,
        _ => "set-up failed",
    })?;
    let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
    let mut line = None;
    let mut ints = String::from("polled");
    if let Some(ctrl) = ctrl
        && let Some(isa_irq) = intx_irq(cfg, addr)
    {
        let h: &'static IntxHandler =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(IntxHandler { csr, event, hits: AtomicU32::new(0) }));
        // PCI INTx: level-triggered.
        if ctrl.route_gsi(isa_irq as u32, true, h) {
            super::enable_interrupts(&csr);
            if interrupt_arrives(&csr, &region, &mut rx, &mut tx, mac, &h.hits) {
                line = Some(isa_irq);
                ints = format!("interrupts (INTx, irq {isa_irq})");
            } else {
                // A line routed wrongly must not leave the device unheard.
                csr.write(7, 0);
                super::ack(&csr);
                ints = format!("polled (no interrupt arrived on irq {isa_irq})");
            }
        }
    }
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let name = format!("tulip{n}");
    dlog!(
        "{name}: DEC {} at pci {addr}, io {:#x}, mac {}, {ints}",
        if f.device == 0x0009 { "21140" } else { "21143" },
        bar.base,
        crate::Mac(mac)
    );
    let dev = TulipNet {
        name,
        mac,
        csr,
        region,
        rx: spin::Mutex::new(rx),
        tx: spin::Mutex::new(tx),
        broken: Broken::new(),
        event,
        irq: line.is_some(),
    };
    unikit_kernel::dev::register_net(Arc::new(dev));
    Ok(())
}
