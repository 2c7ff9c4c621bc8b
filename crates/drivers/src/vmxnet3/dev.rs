//! The vmxnet3 device: bring-up over PCI and the `NetDevice` it registers.
use super::ring::{RxEvent, RxRing, TxRing};
use super::*;
use crate::irq::IrqHandler;
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

/// Bytes per packet buffer: a 1500-byte MTU frame fits one.
const SLOT: usize = 2048;
const RX_SIZE: u32 = 64;
/// Ring 1 (body buffers) is handed over empty; the size must still be a
/// multiple of 32.
const RX1_SIZE: u32 = RING_ALIGN;
const TX_SIZE: u32 = 64;
const ETH_HEADER: usize = 14;
const MTU: usize = 1500;

struct Rx {
    ring: RxRing,
    slots: DmaRegion,
    /// A frame taken off the completion ring by `rx_pending`, not yet lent.
    held: Option<super::ring::RxFrame>,
}

struct Tx {
    ring: TxRing,
    slots: DmaRegion,
}

pub struct Vmxnet3 {
    name: String,
    mac: [u8; 6],
    pt: IoMem,
    vd: IoMem,
    // The device reads these for as long as it is active.
    _shared: DmaRegion,
    queues: DmaRegion,
    _data_ring: DmaRegion,
    _rx1: DmaRegion,
    rx: spin::Mutex<Rx>,
    tx: spin::Mutex<Tx>,
    event: &'static Event,
    irq: bool,
    broken: Broken,
}

struct Handler {
    event: &'static Event,
}

impl IrqHandler for Handler {
    fn handle(&self) {
        // MSI-X without auto-masking: nothing to acknowledge.
        self.event.signal();
    }
}

/// Issues a command that changes state (no result to read).
fn command(vd: &IoMem, cmd: u32) {
    vd.write::<u32>(REG_CMD, cmd);
}

/// Issues a command whose result is read back from the command register
/// (activation's status, the GET commands).
fn query(vd: &IoMem, cmd: u32) -> u32 {
    vd.write::<u32>(REG_CMD, cmd);
    vd.read::<u32>(REG_CMD).unwrap_or(u32::MAX)
}

/// Brings up one vmxnet3 function and registers it as `vmxnet3N`.
pub fn attach(mut slot: Slot<'_>) -> Result<(), &'static str> {
    let (cfg, addr) = (slot.cfg, slot.func.addr);
    let bars = slot.assign_bars(false)?;
    let pt = pci::probe::map_bar(&bars, 0, 0, 0x1000)?;
    let vd = pci::probe::map_bar(&bars, 1, 0, 0x1000)?;
    // Revision 1 of the device interface and of UPT (the lowest; every
    // vmxnet3 offers it), selected by writing the bit back.
    if vd.read::<u32>(REG_VRRS).unwrap_or(0) & 1 == 0 {
        return Err("device does not offer vmxnet3 revision 1");
    }
    vd.write::<u32>(REG_VRRS, 1);
    if vd.read::<u32>(REG_UVRS).unwrap_or(0) & 1 == 0 {
        return Err("device does not offer UPT revision 1");
    }
    vd.write::<u32>(REG_UVRS, 1);
    command(&vd, CMD_RESET_DEV);
    let lo = vd.read::<u32>(REG_MACL).unwrap_or(0).to_le_bytes();
    let hi = vd.read::<u32>(REG_MACH).unwrap_or(0).to_le_bytes();
    let mac = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]];

    let oom = "out of memory for rings";
    let rx_slots = DmaRegion::alloc(RX_SIZE as usize * SLOT, 4096).ok_or(oom)?;
    let rx = RxRing::new(RX_SIZE, RX_SIZE + RX1_SIZE, SLOT, |i| rx_slots.dma_addr(i * SLOT)).ok_or(oom)?;
    let rx1 = DmaRegion::alloc(RX1_SIZE as usize * DESC, 512).ok_or(oom)?;
    let tx = TxRing::new(TX_SIZE).ok_or(oom)?;
    let tx_slots = DmaRegion::alloc(TX_SIZE as usize * SLOT, 4096).ok_or(oom)?;
    let data_ring = DmaRegion::alloc(TX_SIZE as usize * DATA_DESC, 512).ok_or(oom)?;
    let queues = DmaRegion::alloc(txq::LEN + rxq::LEN, 128).ok_or(oom)?;
    let shared = DmaRegion::alloc(shared::LEN, 64).ok_or(oom)?;

    let q = &queues;
    q.write::<u64>(txq::RING_PA, tx.region().dma_addr(0));
    q.write::<u64>(txq::DATA_RING_PA, data_ring.dma_addr(0));
    q.write::<u64>(txq::COMP_RING_PA, tx.comp.region().dma_addr(0));
    q.write::<u32>(txq::RING_SIZE, TX_SIZE);
    q.write::<u32>(txq::DATA_RING_SIZE, TX_SIZE);
    q.write::<u32>(txq::COMP_RING_SIZE, tx.comp.size());
    q.write::<u16>(txq::DATA_DESC_SIZE, DATA_DESC as u16);
    let r = txq::LEN;
    q.write::<u64>(r + rxq::RING0_PA, rx.region().dma_addr(0));
    q.write::<u64>(r + rxq::RING1_PA, rx1.dma_addr(0));
    q.write::<u64>(r + rxq::COMP_RING_PA, rx.comp.region().dma_addr(0));
    q.write::<u32>(r + rxq::RING0_SIZE, RX_SIZE);
    q.write::<u32>(r + rxq::RING1_SIZE, RX1_SIZE);
    q.write::<u32>(r + rxq::COMP_RING_SIZE, rx.comp.size());
    // Interrupt index 0 for both queues (and for events).
    q.write::<u8>(txq::INTR_IDX, 0);
    q.write::<u8>(r + rxq::INTR_IDX, 0);

    let s = &shared;
    s.write::<u32>(shared::MAGIC, SHARED_MAGIC);
    s.write::<u32>(shared::DRIVER_VERSION, 1);
    // Guest OS info: 64-bit (gosBits = 2), type unknown.
    s.write::<u32>(shared::GOS, 2);
    s.write::<u32>(shared::REV_SUPPORTED, 1);
    s.write::<u32>(shared::UPT_SUPPORTED, 1);
    s.write::<u64>(shared::UPT_FEATURES, 0);
    s.write::<u64>(shared::QUEUE_DESC_PA, queues.dma_addr(0));
    s.write::<u32>(shared::QUEUE_DESC_LEN, (txq::LEN + rxq::LEN) as u32);
    s.write::<u32>(shared::MTU, MTU as u32);
    s.write::<u16>(shared::MAX_RX_SG, 1);
    s.write::<u8>(shared::NUM_TX_QUEUES, 1);
    s.write::<u8>(shared::NUM_RX_QUEUES, 1);
    s.write::<u8>(shared::NUM_INTRS, 1);
    s.write::<u8>(shared::EVENT_INTR_IDX, 0);
    s.write::<u8>(shared::AUTO_MASK, 0);
    s.write::<u8>(shared::MOD_LEVELS, 0); // no moderation: lowest latency
    s.write::<u32>(shared::RX_MODE, RXM_UCAST | RXM_BCAST | RXM_ALL_MULTI);
    // VLAN filter: untagged (VLAN 0) frames pass.
    s.write::<u32>(shared::VF_TABLE, 1);

    // MSI-X with one vector, else polled.
    let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
    let mut irq = false;
    if let Some(ctrl) = slot.irq
        && let Some(&(_, cap)) = pci::capabilities(cfg, addr).iter().find(|c| c.0 == pci::CAP_MSIX)
        && let Some(info) = pci::msix_info(cfg, addr, cap)
        && let Ok(table) = pci::probe::map_bar(&bars, info.table_bar, info.table_offset as u64, 16)
        && let Some(msg) = ctrl.alloc_msi(alloc::boxed::Box::leak(alloc::boxed::Box::new(Handler { event })))
        && pci::msix_write_entry(&table, 0, msg)
    {
        pci::msix_enable(cfg, addr, &info, true);
        irq = true;
    }
    s.write::<u32>(shared::INTR_CTRL, if irq { 0 } else { IC_DISABLE_ALL });

    let pa = shared.dma_addr(0);
    vd.write::<u32>(REG_DSAL, pa as u32);
    vd.write::<u32>(REG_DSAH, (pa >> 32) as u32);
    if query(&vd, CMD_ACTIVATE_DEV) != 0 {
        command(&vd, CMD_RESET_DEV);
        return Err("device refused activation");
    }
    pt.write::<u32>(REG_RXPROD, 0);
    command(&vd, CMD_UPDATE_RX_MODE);
    command(&vd, CMD_UPDATE_VLAN_FILTERS);
    // Unmask interrupt 0 (masked: 1).
    pt.write::<u32>(REG_IMR, if irq { 0 } else { 1 });
    let link = query(&vd, CMD_GET_LINK);

    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dev = Vmxnet3 {
        name: format!("vmxnet3-{n}"),
        mac,
        pt,
        vd,
        _shared: shared,
        queues,
        _data_ring: data_ring,
        _rx1: rx1,
        rx: spin::Mutex::new(Rx { ring: rx, slots: rx_slots, held: None }),
        tx: spin::Mutex::new(Tx { ring: tx, slots: tx_slots }),
        event,
        irq,
        broken: Broken::new(),
    };
    dlog!(
        "vmxnet3-{n}: pci {addr}, mac {}, link {}, {}",
        crate::Mac(mac),
        if link & 1 != 0 { "up" } else { "down" },
        if irq { "interrupts (msi-x)" } else { "polled" }
    );
    unikit_kernel::dev::register_net(Arc::new(dev));
    Ok(())
}

impl Vmxnet3 {
    /// The first protocol violation: reset the device (it stops using our
    /// memory) and refuse every later call.
    fn fail(&self, why: &'static str) -> DevError {
        let (why, first) = self.broken.set_first(why);
        if first {
            command(&self.vd, CMD_RESET_DEV);
            dwarn!("{}: device broken ({why}); it is no longer used", self.name);
        }
        DevError::Broken(why)
    }

    fn check(&self) -> Result<(), DevError> {
        self.broken.check().map_err(DevError::Broken)
    }

    /// The next whole frame, re-arming buffers of dropped ones on the way.
    fn next_frame(&self, rx: &mut Rx) -> Result<Option<super::ring::RxFrame>, DevError> {
        loop {
            match rx.ring.pop().map_err(|e| self.fail(e))? {
                None => return Ok(None),
                Some(RxEvent::Frame(f)) if f.len >= ETH_HEADER => return Ok(Some(f)),
                Some(_) => self.rearm(rx),
            }
        }
    }

    fn rearm(&self, rx: &mut Rx) {
        let prod = rx.ring.rearm();
        if self.queues.read::<u8>(txq::LEN + rxq::UPDATE_PROD) != 0 {
            self.pt.write::<u32>(REG_RXPROD, prod);
        }
    }
}

impl NetDevice for Vmxnet3 {
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
        let Some(frame) = frame else { return Ok(false) };
        // The ring checked slot < RX_SIZE and len <= SLOT.
        let off = frame.slot * SLOT;
        if off + frame.len > rx.slots.len() {
            return Err(self.fail("received frame outside the receive buffers"));
        }
        // SAFETY: the device returned this descriptor (its completion was
        // taken in order), so it no longer writes the slot until it is
        // re-armed below; the range is inside the slot (checked by the ring
        // and above). The rx lock is held meanwhile.
        let bytes = unsafe { rx.slots.lend(off, frame.len) };
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
        tx.ring.reclaim().map_err(|e| self.fail(e))?;
        let Some(slot) = tx.ring.free_slot() else { return Err(DevError::WouldBlock) };
        let off = slot * SLOT;
        // SAFETY: a free slot's descriptor is not with the device, so the
        // device does not read the slot; the range is inside it (len <=
        // SLOT). The tx lock is held until it is posted.
        let bytes = unsafe { tx.slots.lend_mut(off, len) };
        f(bytes);
        let addr = tx.slots.dma_addr(off);
        let prod = tx.ring.post(addr, len).ok_or(DevError::BadLength)?;
        self.pt.write::<u32>(REG_TXPROD, prod);
        Ok(())
    }

    fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
        self.event.forward_to(doorbell);
    }

    fn has_interrupts(&self) -> bool {
        self.irq
    }
}
