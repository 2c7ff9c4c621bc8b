//! The e1000 device: bring-up over PCI and the `NetDevice` it registers.
//! The 82574 (e1000e) interrupts through MSI-X (one vector for receive and
//! transmit). The 8254x are polled: they have no MSI/MSI-X, and PCI INTx
//! routing is not plumbed through the platform yet; the stack then polls
//! every millisecond.
use super::ring::{RxEvent, RxRing, TxRing};
use super::*;
use crate::pci::{self, probe::Slot};
use crate::{dlog, dwarn};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use unikit_io::{Broken, DmaRegion, IoMem};
use unikit_kernel::dev::{DevError, Doorbell, NetDevice};
use unikit_kernel::event::Event;

static COUNT: AtomicUsize = AtomicUsize::new(0);

/// RCTL.BSIZE 0 (without BSEX): 2048-byte receive buffers.
const SLOT: usize = 2048;
const RX_SIZE: u32 = 64;
const TX_SIZE: u32 = 64;
const ETH_HEADER: usize = 14;
const MTU: usize = 1500;
/// Spins allowed for a reset or an EEPROM read to finish.
const SPIN: u32 = 1_000_000;

struct Rx {
    ring: RxRing,
    slots: DmaRegion,
    held: Option<(usize, usize)>,
}

struct Tx {
    ring: TxRing,
    slots: DmaRegion,
}

pub struct E1000 {
    name: String,
    mac: [u8; 6],
    regs: IoMem,
    rx: spin::Mutex<Rx>,
    tx: spin::Mutex<Tx>,
    event: &'static Event,
    irq: bool,
    broken: Broken,
}

struct Handler {
    event: &'static Event,
}

impl crate::irq::IrqHandler for Handler {
    fn handle(&self) {
        // The causes were auto-cleared (EIAC) when the vector fired.
        self.event.signal();
    }
}

fn r32(regs: &IoMem, off: usize) -> u32 {
    regs.read::<u32>(off).unwrap_or(0)
}

fn w32(regs: &IoMem, off: usize, v: u32) {
    regs.write::<u32>(off, v);
}

/// EEPROM word `word` through EERD (the 82574 moved its bits).
fn eeprom_read(regs: &IoMem, word: u32, i82574: bool) -> Option<u16> {
    let (shift, done) = if i82574 { (EERD_ADDR_SHIFT_82574, EERD_DONE_82574) } else { (EERD_ADDR_SHIFT, EERD_DONE) };
    w32(regs, EERD, word << shift | EERD_START);
    for _ in 0..SPIN {
        let v = r32(regs, EERD);
        if v & done != 0 {
            return Some((v >> 16) as u16);
        }
        core::hint::spin_loop();
    }
    None
}

/// Brings up one e1000 function and registers it as `e1000-N`.
pub fn attach(mut slot: Slot<'_>) -> Result<(), &'static str> {
    let addr = slot.func.addr;
    let bars = slot.assign_bars(false)?;
    let regs = pci::probe::map_bar(&bars, 0, 0, REGS_LEN as u64)?;
    // Quiet and reset the device; the reset bit clears itself.
    w32(&regs, IMC, u32::MAX);
    w32(&regs, CTRL, r32(&regs, CTRL) | CTRL_RST);
    let mut spins = 0;
    while r32(&regs, CTRL) & CTRL_RST != 0 {
        spins += 1;
        if spins == SPIN {
            return Err("device reset did not finish");
        }
        core::hint::spin_loop();
    }
    w32(&regs, IMC, u32::MAX);
    let _ = r32(&regs, ICR);
    w32(&regs, CTRL, r32(&regs, CTRL) | CTRL_SLU | CTRL_ASDE);

    // The MAC: receive address 0 if the EEPROM load filled it, else the
    // EEPROM's first three words.
    let (ral, rah) = (r32(&regs, RAL0), r32(&regs, RAH0));
    let mac = if rah & RAH_AV != 0 {
        let (l, h) = (ral.to_le_bytes(), rah.to_le_bytes());
        [l[0], l[1], l[2], l[3], h[0], h[1]]
    } else {
        let mut m = [0u8; 6];
        for w in 0..3 {
            let v = eeprom_read(&regs, w, slot.func.device == E1000E).ok_or("EEPROM read timed out")?.to_le_bytes();
            m[2 * w as usize] = v[0];
            m[2 * w as usize + 1] = v[1];
        }
        w32(&regs, RAL0, u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        w32(&regs, RAH0, u32::from(m[4]) | u32::from(m[5]) << 8 | RAH_AV);
        m
    };
    for i in 0..128 {
        w32(&regs, MTA + 4 * i, 0);
    }

    let oom = "out of memory for rings";
    let rx_slots = DmaRegion::alloc(RX_SIZE as usize * SLOT, 4096).ok_or(oom)?;
    let rx = RxRing::new(RX_SIZE, SLOT, |i| rx_slots.dma_addr(i * SLOT)).ok_or(oom)?;
    let tx = TxRing::new(TX_SIZE).ok_or(oom)?;
    let tx_slots = DmaRegion::alloc(TX_SIZE as usize * SLOT, 4096).ok_or(oom)?;

    let pa = rx.region().dma_addr(0);
    w32(&regs, RDBAL, pa as u32);
    w32(&regs, RDBAH, (pa >> 32) as u32);
    w32(&regs, RDLEN, RX_SIZE * DESC as u32);
    w32(&regs, RDH, 0);
    w32(&regs, RDT, rx.initial_tail());
    w32(&regs, RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);
    let pa = tx.region().dma_addr(0);
    w32(&regs, TDBAL, pa as u32);
    w32(&regs, TDBAH, (pa >> 32) as u32);
    w32(&regs, TDLEN, TX_SIZE * DESC as u32);
    w32(&regs, TDH, 0);
    w32(&regs, TDT, 0);
    w32(&regs, TIPG, TIPG_VALUE);
    w32(&regs, TCTL, TCTL_EN | TCTL_PSP | TCTL_CT_COLD);
    let link = r32(&regs, STATUS) & STATUS_LU != 0;

    let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
    let (cfg, mut irq) = (slot.cfg, false);
    if slot.func.device == E1000E
        && let Some(ctrl) = slot.irq
        && let Some(&(_, cap)) = pci::capabilities(cfg, addr).iter().find(|c| c.0 == pci::CAP_MSIX)
        && let Some(info) = pci::msix_info(cfg, addr, cap)
        && let Ok(table) = pci::probe::map_bar(&bars, info.table_bar, info.table_offset as u64, 16)
        && let Some(msg) = ctrl.alloc_msi(alloc::boxed::Box::leak(alloc::boxed::Box::new(Handler { event })))
        && pci::msix_write_entry(&table, 0, msg)
    {
        pci::msix_enable(cfg, addr, &info, true);
        w32(&regs, IVAR, IVAR_VALID | IVAR_VALID << 8 | IVAR_VALID << 16 | IVAR_TX_EVERY_WB);
        w32(&regs, EIAC_82574, ICR_RXQ0 | ICR_TXQ0);
        w32(&regs, CTRL_EXT, r32(&regs, CTRL_EXT) | CTRL_EXT_IAME | CTRL_EXT_PBA_CLR);
        w32(&regs, IMS, ICR_RXQ0 | ICR_TXQ0);
        irq = true;
    }

    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dev = E1000 {
        name: format!("e1000-{n}"),
        mac,
        regs,
        rx: spin::Mutex::new(Rx { ring: rx, slots: rx_slots, held: None }),
        tx: spin::Mutex::new(Tx { ring: tx, slots: tx_slots }),
        event,
        irq,
        broken: Broken::new(),
    };
    dlog!(
        "e1000-{n}: pci {addr} ({:04x}), mac {}, link {}, {}",
        slot.func.device,
        crate::Mac(mac),
        if link { "up" } else { "down" },
        if irq { "interrupts (msi-x)" } else { "polled" }
    );
    unikit_kernel::dev::register_net(Arc::new(dev));
    Ok(())
}

impl E1000 {
    /// The first protocol violation: stop the device's DMA and refuse
    /// every later call.
    fn fail(&self, why: &'static str) -> DevError {
        let (why, first) = self.broken.set_first(why);
        if first {
            w32(&self.regs, IMC, u32::MAX);
            w32(&self.regs, RCTL, 0);
            w32(&self.regs, TCTL, 0);
            w32(&self.regs, CTRL, CTRL_RST);
            dwarn!("{}: device broken ({why}); it is no longer used", self.name);
        }
        DevError::Broken(why)
    }

    fn check(&self) -> Result<(), DevError> {
        self.broken.check().map_err(DevError::Broken)
    }

    fn next_frame(&self, rx: &mut Rx) -> Result<Option<(usize, usize)>, DevError> {
        loop {
            match rx.ring.pop().map_err(|e| self.fail(e))? {
                None => return Ok(None),
                Some(RxEvent::Frame { slot, len }) if len >= ETH_HEADER => return Ok(Some((slot, len))),
                Some(_) => self.rearm(rx),
            }
        }
    }

    fn rearm(&self, rx: &mut Rx) {
        if let Some(tail) = rx.ring.rearm() {
            w32(&self.regs, RDT, tail);
        }
    }
}

impl NetDevice for E1000 {
    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        MTU
    }

    fn rx_pending(&self) -> Result<bool, DevError> {
        self.check()?;
        let mut rx = self.rx.lock();
        if rx.held.is_none() {
            rx.held = self.next_frame(&mut rx)?;
        }
        Ok(rx.held.is_some())
    }

    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError> {
        self.check()?;
        let mut rx = self.rx.lock();
        let frame = match rx.held.take() {
            Some(h) => Some(h),
            None => self.next_frame(&mut rx)?,
        };
        let Some((slot, len)) = frame else { return Ok(false) };
        let off = slot * SLOT;
        if off + len > rx.slots.len() {
            return Err(self.fail("received frame outside the receive buffers"));
        }
        // SAFETY: the device set DD on this descriptor, which is now
        // outside [RDH, RDT) until `rearm` moves RDT past it, so it does not
        // write the slot meanwhile; the range is inside the slot (len <=
        // SLOT checked by the ring). The rx lock is held.
        let bytes = unsafe { rx.slots.lend(off, len) };
        f(bytes);
        self.rearm(&mut rx);
        Ok(true)
    }

    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError> {
        self.check()?;
        if !(ETH_HEADER..=SLOT).contains(&len) {
            return Err(DevError::BadLength);
        }
        let mut tx = self.tx.lock();
        tx.ring.reclaim();
        let Some(slot) = tx.ring.free_slot() else { return Err(DevError::WouldBlock) };
        let off = slot * SLOT;
        // SAFETY: a free slot's descriptor is outside [TDH, TDT), so the
        // device does not read the slot; the range is inside it (len <=
        // SLOT). The tx lock is held until it is posted.
        let bytes = unsafe { tx.slots.lend_mut(off, len) };
        f(bytes);
        let addr = tx.slots.dma_addr(off);
        let tail = tx.ring.post(addr, len).ok_or(DevError::BadLength)?;
        w32(&self.regs, TDT, tail);
        Ok(())
    }

    fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
        self.event.forward_to(doorbell);
    }

    fn has_interrupts(&self) -> bool {
        self.irq
    }
}
