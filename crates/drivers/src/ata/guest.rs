//! The guest side: port I/O, the PCI IDE controller, `BlockDevice`s.
#![allow(unsafe_code)]
use super::{AtaError, AtaIo, Channel, DMA_ALIGN, DMA_BUF, DMA_REGION_LEN, DiskInfo, Dma, SECTOR};
use crate::pci::{self, ConfigAccess, Window};
use crate::{dlog, dwarn};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use unikit_io::{DmaRegion, Port, PortRange};
use unikit_kernel::dev::{BlockDevice, DevError};

/// One channel's ports: the 8-port command block and the control port.
struct Ports {
    cmd: PortRange,
    ctl: Port<u8>,
    /// This channel's 8 bus-master registers (BAR 4), if usable.
    bm: Option<PortRange>,
}

impl AtaIo for Ports {
    fn read8(&self, reg: u16) -> u8 {
        self.cmd.read::<u8>(reg)
    }
    fn write8(&self, reg: u16, v: u8) {
        self.cmd.write::<u8>(reg, v)
    }
    fn read_data(&self) -> u16 {
        self.cmd.read::<u16>(super::REG_DATA)
    }
    fn write_data(&self, v: u16) {
        self.cmd.write::<u16>(super::REG_DATA, v)
    }
    fn alt_status(&self) -> u8 {
        self.ctl.read()
    }
    fn write_ctl(&self, v: u8) {
        self.ctl.write(v)
    }
    fn now_ns(&self) -> u64 {
        unikit_kernel::time::monotonic_ns()
    }
    fn bm_read8(&self, off: u16) -> u8 {
        self.bm.map_or(0, |b| b.read::<u8>(off))
    }
    fn bm_write8(&self, off: u16, v: u8) {
        if let Some(b) = self.bm {
            b.write::<u8>(off, v)
        }
    }
    fn bm_write_prdt(&self, addr: u32) {
        if let Some(b) = self.bm {
            b.write::<u32>(4, addr)
        }
    }
}

type SharedChannel = Arc<spin::Mutex<Channel<Ports>>>;

struct AtaDisk {
    name: String,
    info: DiskInfo,
    chan: SharedChannel,
}

fn dev_err(e: AtaError) -> DevError {
    match e {
        AtaError::Device(_) => DevError::Io,
        AtaError::BadRequest => DevError::OutOfRange,
        AtaError::Broken(why) => DevError::Broken(why),
        AtaError::NoDevice => DevError::Broken("ATA disk no longer answers"),
        AtaError::NotAta => DevError::Broken("ATA disk changed its signature"),
        AtaError::Unsupported(why) => DevError::Broken(why),
    }
}

impl BlockDevice for AtaDisk {
    fn name(&self) -> &str {
        &self.name
    }
    fn block_size(&self) -> usize {
        SECTOR
    }
    fn num_blocks(&self) -> u64 {
        self.info.sectors
    }
    fn read_only(&self) -> bool {
        false
    }
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        unikit_kernel::dev::check_block_request(self, block, buf.len())?;
        self.chan.lock().read(&self.info, block, buf).map_err(dev_err)
    }
    fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        unikit_kernel::dev::check_block_request(self, block, buf.len())?;
        self.chan.lock().write(&self.info, block, buf).map_err(dev_err)
    }
    fn flush(&self) -> Result<(), DevError> {
        self.chan.lock().flush(&self.info).map_err(dev_err)
    }
}

/// Sets up DMA on `chan` and checks it with one read of sector 0 of
/// `disk`, by DMA into a buffer filled with a pattern and by PIO, which
/// must agree; otherwise the channel stays on PIO.
fn dma_works(chan: &mut Channel<Ports>, disk: &DiskInfo) -> Result<(), &'static str> {
    let region = DmaRegion::alloc(DMA_REGION_LEN, DMA_ALIGN).ok_or("has no memory")?;
    region.fill(DMA_BUF, DMA_BUF, 0xa5);
    let dma = Dma::new(Arc::new(region), |a| u32::try_from(a).ok()).ok_or("memory is above 4 GiB")?;
    chan.set_dma(Some(dma));
    let mut by_dma = [0u8; SECTOR];
    let r = chan.read(disk, 0, &mut by_dma);
    let dma = chan.take_dma();
    if let Err(AtaError::Broken(why)) = r {
        return Err(why);
    }
    r.map_err(|_| "read failed")?;
    let mut by_pio = [0u8; SECTOR];
    chan.read(disk, 0, &mut by_pio).map_err(|_| "test read by PIO failed")?;
    if by_dma != by_pio {
        return Err("read different data than PIO");
    }
    chan.set_dma(dma);
    Ok(())
}

/// The legacy (compatibility mode) ports of the two channels.
const LEGACY: [(u16, u16); 2] = [(0x1f0, 0x3f6), (0x170, 0x376)];

/// Probes the disks of the first PCI IDE controller (class 01:01) in
/// `funcs`, registers them as `ide0`, `ide1`, ... and returns how many.
/// Nothing is touched when there is no such controller.
pub fn probe(cfg: &dyn ConfigAccess, funcs: &[pci::Function], io: &mut Window) -> usize {
    let Some(f) = funcs.iter().find(|f| f.class_rev >> 16 == 0x0101 && f.header_type & 0x7f == 0) else {
        return 0;
    };
    let prog_if = (f.class_rev >> 8) as u8;
    let bars = pci::read_bars(cfg, f.addr);
    // Bus-master registers: BAR 4, 16 ports (8 per channel); assigned
    // here if the firmware did not.
    let mut bm_bar = bars[4].filter(|b| b.is_io() && b.size >= 16 && b.size <= 0x1_0000);
    if let Some(b) = &mut bm_bar
        && b.base == 0
    {
        match io.alloc(b.size).filter(|_| f.addr.bus == 0) {
            Some(base) => pci::set_bar(cfg, f.addr, b, base),
            None => bm_bar = None,
        }
    }
    let bm_bar = bm_bar.filter(|b| b.base != 0 && b.base + 16 <= 0x1_0000);
    pci::enable(cfg, f.addr, pci::CMD_IO | if bm_bar.is_some() { pci::CMD_BUS_MASTER } else { 0 });
    let mut count = 0;
    for (ch, &(legacy_cmd, legacy_ctl)) in LEGACY.iter().enumerate() {
        // prog-if bit 0 (primary) / bit 2 (secondary): native mode, whose
        // ports are in BARs 0/1 and 2/3 (the control register at +2).
        let ports = if prog_if & (1 << (2 * ch)) != 0 {
            match (bars[2 * ch], bars[2 * ch + 1]) {
                (Some(c), Some(k))
                    if c.is_io()
                        && k.is_io()
                        && c.size >= 8
                        && k.size >= 4
                        && c.base + 8 <= 0x1_0000
                        && k.base + 4 <= 0x1_0000
                        && c.base != 0
                        && k.base != 0 =>
                {
                    (c.base as u16, k.base as u16 + 2)
                }
                _ => {
                    dwarn!("ide: pci {} channel {ch} in native mode without usable I/O BARs; skipped", f.addr);
                    continue;
                }
            }
        } else {
            (legacy_cmd, legacy_ctl)
        };
        // SAFETY: these are the IDE channel's command block and control
        // register (the legacy ISA addresses, or the controller's own I/O
        // BARs checked above to lie inside the I/O space); PIO moves no
        // memory by DMA.
        let Some(cmd) = (unsafe { PortRange::new(ports.0, 8) }) else { continue };
        // SAFETY: as above.
        let ctl = unsafe { Port::<u8>::new(ports.1) };
        // SAFETY: this channel's half of the controller's bus-master BAR
        // (checked above to lie in the I/O space); the DMA it starts goes
        // only to the channel's own `DmaRegion` (see `Dma`).
        let bm = bm_bar.and_then(|b| unsafe { PortRange::new(b.base as u16 + 8 * ch as u16, 8) });
        let chan = Arc::new(spin::Mutex::new(Channel::new(Ports { cmd, ctl, bm })));
        let mut found = alloc::vec::Vec::new();
        for slave in [false, true] {
            let id = chan.lock().identify(slave);
            match id {
                Ok(id) => found.push((DiskInfo { slave, sectors: id.sectors, lba48: id.lba48 }, id)),
                Err(AtaError::NoDevice) | Err(AtaError::NotAta) => {}
                Err(e) => dwarn!("ide: channel {ch} {}: {e}; skipped", if slave { "slave" } else { "master" }),
            }
        }
        // DMA when the controller and every disk on the channel can, and a
        // test read shows it really lands.
        let mut mode = "PIO";
        if bm.is_some() && !found.is_empty() && found.iter().all(|(_, id)| id.dma) {
            match dma_works(&mut chan.lock(), &found[0].0) {
                Ok(()) => mode = "bus-master DMA",
                Err(why) => dwarn!("ide: channel {ch}: bus-master DMA {why}; using PIO"),
            }
        }
        for (info, id) in found {
            let name = format!("ide{count}");
            dlog!(
                "{name}: ATA disk {} on {} channel {} at pci {}, {} sectors, {}, {mode}, polled",
                id.model,
                if info.slave { "slave" } else { "master" },
                ch,
                f.addr,
                id.sectors,
                if id.lba48 { "LBA48" } else { "LBA28" },
            );
            unikit_kernel::dev::register_block(Arc::new(AtaDisk { name, info, chan: chan.clone() }));
            count += 1;
        }
    }
    count
}
