//! The guest side: port I/O, the PCI IDE controller, `BlockDevice`s.
#![allow(unsafe_code)]
use super::{AtaError, AtaIo, Channel, DiskInfo, SECTOR};
use crate::pci::{self, ConfigAccess};
use crate::{dlog, dwarn};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use unikit_io::{Port, PortRange};
use unikit_kernel::dev::{BlockDevice, DevError};

/// One channel's ports: the 8-port command block and the control port.
struct Ports {
    cmd: PortRange,
    ctl: Port<u8>,
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

/// The legacy (compatibility mode) ports of the two channels.
const LEGACY: [(u16, u16); 2] = [(0x1f0, 0x3f6), (0x170, 0x376)];

/// Probes the disks of the first PCI IDE controller (class 01:01) in
/// `funcs`, registers them as `ide0`, `ide1`, ... and returns how many.
/// Nothing is touched when there is no such controller.
pub fn probe(cfg: &dyn ConfigAccess, funcs: &[pci::Function]) -> usize {
    let Some(f) = funcs.iter().find(|f| f.class_rev >> 16 == 0x0101 && f.header_type & 0x7f == 0) else {
        return 0;
    };
    let prog_if = (f.class_rev >> 8) as u8;
    let bars = pci::read_bars(cfg, f.addr);
    // Ports must decode; bus mastering is not used (PIO).
    pci::enable(cfg, f.addr, pci::CMD_IO);
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
        let chan = Arc::new(spin::Mutex::new(Channel::new(Ports { cmd, ctl })));
        for slave in [false, true] {
            let id = chan.lock().identify(slave);
            match id {
                Ok(id) => {
                    let n = count;
                    let name = format!("ide{n}");
                    dlog!(
                        "{name}: ATA disk {} on {} channel {} at pci {}, {} sectors, {}",
                        id.model,
                        if slave { "slave" } else { "master" },
                        ch,
                        f.addr,
                        id.sectors,
                        if id.lba48 { "LBA48, PIO, polled" } else { "LBA28, PIO, polled" }
                    );
                    let info = DiskInfo { slave, sectors: id.sectors, lba48: id.lba48 };
                    unikit_kernel::dev::register_block(Arc::new(AtaDisk { name, info, chan: chan.clone() }));
                    count += 1;
                }
                Err(AtaError::NoDevice) | Err(AtaError::NotAta) => {}
                Err(e) => dwarn!("ide: channel {ch} {}: {e}; skipped", if slave { "slave" } else { "master" }),
            }
        }
    }
    count
}
