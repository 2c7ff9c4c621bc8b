//! ATA disks on an IDE controller (PIIX IDE, PCI class 01:01: Hyper-V
//! Generation 1, QEMU `-M pc`), polled; data by bus-master DMA (one
//! 64 KiB bounce buffer per channel) where the controller has BAR 4, every
//! disk on the channel says it does DMA and a test read at probe agrees
//! with PIO; by PIO otherwise.
//!
//! # Entry point
//!
//! `probe(cfg, funcs, io)` (guest only): if a PCI IDE controller exists, its
//! two channels (the legacy ports 0x1f0/0x3f6 and 0x170/0x376, or the I/O
//! BARs of a channel in native mode) are probed, and every ATA disk
//! (IDENTIFY DEVICE; ATAPI devices such as CD-ROMs are skipped) becomes a
//! `BlockDevice` named `ide0`, `ide1`, ... in channel, then master/slave
//! order.
//!
//! The protocol ([`Channel`]) runs over the [`AtaIo`] trait, so host tests
//! drive it against a fake device that lies. Nothing the device says is
//! trusted: IDENTIFY's sizes are checked, every wait for BSY/DRQ has a
//! deadline (a device stuck busy gives an error, not a hang), and a device
//! that times out is not used again.
#![deny(unsafe_code)]

/// Command block registers (offsets from the channel's command base).
pub const REG_DATA: u16 = 0;
pub const REG_ERROR: u16 = 1;
pub const REG_COUNT: u16 = 2;
pub const REG_LBA0: u16 = 3;
pub const REG_LBA1: u16 = 4;
pub const REG_LBA2: u16 = 5;
pub const REG_DEVICE: u16 = 6;
pub const REG_STATUS: u16 = 7;
pub const REG_COMMAND: u16 = 7;

pub const ST_ERR: u8 = 0x01;
pub const ST_DRQ: u8 = 0x08;
pub const ST_DF: u8 = 0x20;
pub const ST_DRDY: u8 = 0x40;
pub const ST_BSY: u8 = 0x80;

/// Device control register: interrupts off (we poll), software reset.
pub const CTL_NIEN: u8 = 0x02;
pub const CTL_SRST: u8 = 0x04;

pub const CMD_READ: u8 = 0x20;
pub const CMD_READ_EXT: u8 = 0x24;
pub const CMD_WRITE: u8 = 0x30;
pub const CMD_WRITE_EXT: u8 = 0x34;
pub const CMD_FLUSH: u8 = 0xe7;
pub const CMD_FLUSH_EXT: u8 = 0xea;
pub const CMD_IDENTIFY: u8 = 0xec;

pub const SECTOR: usize = 512;
/// Sectors per command: LBA28 takes at most 256, LBA48 65536; 128 keeps
/// one command's PIO loop (and the channel lock) short.
pub const MAX_SECTORS_PER_CMD: usize = 128;

/// How long a command may keep the device busy before it is declared dead.
const CMD_TIMEOUT_NS: u64 = 5_000_000_000;
/// FLUSH CACHE may take long on a real disk.
const FLUSH_TIMEOUT_NS: u64 = 30_000_000_000;
/// Waiting for a device to answer IDENTIFY at probe time (absent devices
/// should not slow the boot down much).
const PROBE_TIMEOUT_NS: u64 = 1_000_000_000;

/// Port I/O of one IDE channel, and a clock for the deadlines.
pub trait AtaIo {
    /// Reads command block register `reg` (1..=7).
    fn read8(&self, reg: u16) -> u8;
    /// Writes command block register `reg`.
    fn write8(&self, reg: u16, v: u8);
    /// Reads one 16-bit word from the data register.
    fn read_data(&self) -> u16;
    /// Writes one 16-bit word to the data register.
    fn write_data(&self, v: u16);
    /// Reads the alternate status register (no side effects).
    fn alt_status(&self) -> u8;
    /// Writes the device control register.
    fn write_ctl(&self, v: u8);
    /// Nanoseconds from some fixed point; only differences are used.
    fn now_ns(&self) -> u64;
    /// Reads bus-master register `off` (0 command, 2 status) of this
    /// channel's half of the controller's BAR 4; channels without bus
    /// mastering never get here.
    fn bm_read8(&self, _off: u16) -> u8 {
        0
    }
    /// Writes bus-master register `off`.
    fn bm_write8(&self, _off: u16, _v: u8) {}
    /// Writes the physical region descriptor table's address (offset 4).
    fn bm_write_prdt(&self, _addr: u32) {}
}

/// Bus-master IDE registers (per channel, in BAR 4) and bits.
pub const BM_CMD: u16 = 0;
pub const BM_STATUS: u16 = 2;
pub const BM_CMD_START: u8 = 0x01;
/// Direction: the controller writes memory (a device read).
pub const BM_CMD_TO_MEMORY: u8 = 0x08;
pub const BM_ST_ACTIVE: u8 = 0x01;
pub const BM_ST_ERROR: u8 = 0x02;
pub const BM_ST_INTR: u8 = 0x04;

pub const CMD_READ_DMA: u8 = 0xc8;
pub const CMD_READ_DMA_EXT: u8 = 0x25;
pub const CMD_WRITE_DMA: u8 = 0xca;
pub const CMD_WRITE_DMA_EXT: u8 = 0x35;

/// The DMA side of a channel: one physical region descriptor at offset 0
/// of a 64 KiB-aligned region, and a 64 KiB bounce buffer at 64 KiB (one
/// command's worth; a PRD must not cross a 64 KiB boundary, this one
/// fills exactly one such page).
pub struct Dma {
    region: alloc::sync::Arc<unikit_io::DmaRegion>,
    prdt: u32,
    buf: u32,
}

/// Size and alignment of the region [`Dma`] needs.
pub const DMA_REGION_LEN: usize = 2 * DMA_BUF;
pub const DMA_ALIGN: usize = 0x1_0000;
const DMA_BUF: usize = MAX_SECTORS_PER_CMD * SECTOR;

impl Dma {
    /// `to32`: the 32-bit bus address of a device address (PRDs and the
    /// PRDT pointer are 32-bit), `None` above 4 GiB.
    pub fn new(region: alloc::sync::Arc<unikit_io::DmaRegion>, to32: fn(u64) -> Option<u32>) -> Option<Self> {
        if region.len() < DMA_REGION_LEN || !region.dma_addr(0).is_multiple_of(DMA_ALIGN as u64) {
            return None;
        }
        let prdt = to32(region.dma_addr(0))?;
        let buf = to32(region.dma_addr(DMA_BUF))?;
        to32(region.dma_addr(DMA_REGION_LEN - 1))?;
        Some(Self { region, prdt, buf })
    }
}

/// Why an ATA operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtaError {
    /// No device answered (at probe time).
    NoDevice,
    /// A device that is not an ATA disk (ATAPI, or an unknown signature).
    NotAta,
    /// The disk cannot be driven (no LBA, bad sector size, zero size, ...).
    Unsupported(&'static str),
    /// The device reported an error for the command (status ERR or DF;
    /// the error register's value).
    Device(u8),
    /// The device did not finish in time or broke the protocol; it is not
    /// used again.
    Broken(&'static str),
    /// Request outside the disk, or a buffer not a multiple of 512 bytes.
    BadRequest,
}

impl core::fmt::Display for AtaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AtaError::NoDevice => f.write_str("no device"),
            AtaError::NotAta => f.write_str("not an ATA disk"),
            AtaError::Unsupported(why) => write!(f, "unsupported disk: {why}"),
            AtaError::Device(e) => write!(f, "device error (error register {e:#04x})"),
            AtaError::Broken(why) => write!(f, "{why}"),
            AtaError::BadRequest => f.write_str("bad request"),
        }
    }
}

/// What IDENTIFY DEVICE told us, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Addressable 512-byte sectors.
    pub sectors: u64,
    /// Whether the 48-bit commands are supported.
    pub lba48: bool,
    /// Whether the device does DMA (word 49 bit 8).
    pub dma: bool,
    /// Model string (trimmed; non-printable bytes replaced by '?').
    pub model: alloc::string::String,
}

/// Largest disk LBA48 can address.
const LBA48_LIMIT: u64 = 1 << 48;
/// LBA28's limit.
const LBA28_LIMIT: u64 = 1 << 28;

/// Parses and checks the 256 words of IDENTIFY DEVICE (ATA8-ACS field
/// layout: word 0 general configuration, 27..=46 model, 49 capabilities,
/// 60..=61 LBA28 sectors, 83 command sets, 100..=103 LBA48 sectors, 106
/// sector size).
pub fn parse_identify(w: &[u16; 256]) -> Result<Identity, AtaError> {
    if w[0] & 0x8000 != 0 {
        return Err(AtaError::NotAta);
    }
    if w[49] & (1 << 9) == 0 {
        return Err(AtaError::Unsupported("no LBA (CHS-only disk)"));
    }
    // Word 106 is valid when bits 15:14 are 01; bit 12: sectors larger
    // than 256 words.
    if w[106] & 0xc000 == 0x4000 && w[106] & (1 << 12) != 0 {
        return Err(AtaError::Unsupported("logical sectors are not 512 bytes"));
    }
    let lba28 = u32::from(w[60]) as u64 | (u32::from(w[61]) as u64) << 16;
    // Word 83 is valid when bits 15:14 are 01; bit 10: 48-bit address set.
    let lba48 = w[83] & 0xc000 == 0x4000 && w[83] & (1 << 10) != 0;
    let mut sectors = lba28.min(LBA28_LIMIT);
    if lba48 {
        let n = (0..4).fold(0u64, |acc, i| acc | (w[100 + i] as u64) << (16 * i));
        // A count of 0 (or one past what 48 bits address) is not believed:
        // the 28-bit count stands.
        if n != 0 && n <= LBA48_LIMIT {
            sectors = n;
        }
    }
    if sectors == 0 {
        return Err(AtaError::Unsupported("IDENTIFY reports zero sectors"));
    }
    let mut model = alloc::string::String::new();
    for &word in &w[27..47] {
        for b in word.to_be_bytes() {
            model.push(if (0x20..0x7f).contains(&b) { b as char } else { '?' });
        }
    }
    let model = alloc::string::String::from(model.trim());
    let dma = w[49] & (1 << 8) != 0;
    Ok(Identity { sectors, lba48, dma, model })
}

/// One IDE channel (up to two devices sharing the ports). Callers
/// serialise access (the guest keeps it behind a lock).
pub struct Channel<I: AtaIo> {
    io: I,
    broken: Option<&'static str>,
    dma: Option<Dma>,
}

impl<I: AtaIo> Channel<I> {
    pub fn new(io: I) -> Self {
        // Polling: the device's interrupt line stays quiet.
        io.write_ctl(CTL_NIEN);
        Self { io, broken: None, dma: None }
    }

    /// Moves data by bus-master DMA from now on (`None`: by PIO).
    pub fn set_dma(&mut self, dma: Option<Dma>) {
        self.dma = dma;
    }

    /// Whether data moves by DMA.
    pub fn uses_dma(&self) -> bool {
        self.dma.is_some()
    }

    /// Stops using DMA; returns what it used.
    pub fn take_dma(&mut self) -> Option<Dma> {
        self.dma.take()
    }

    /// One DMA command of `count` sectors at `lba`; the data is in (write)
    /// or lands in (read) the bounce buffer.
    fn dma_command(&mut self, disk: &DiskInfo, lba: u64, count: usize, write: bool) -> Result<(), AtaError> {
        let Some(d) = &self.dma else { return Err(AtaError::BadRequest) };
        let len = count * SECTOR;
        if len == 0 || len > DMA_BUF {
            return Err(AtaError::BadRequest);
        }
        // One descriptor: address, byte count (0 = 64 KiB), end of table.
        d.region.write::<u32>(0, d.buf);
        d.region.write::<u32>(4, (len as u32 & 0xffff) | 1 << 31);
        let prdt = d.prdt;
        let dir = if write { 0 } else { BM_CMD_TO_MEMORY };
        self.io.bm_write8(BM_CMD, dir);
        self.io.bm_write_prdt(prdt);
        // Clear error and interrupt (write 1), keep the drive-capable bits.
        let st = self.io.bm_read8(BM_STATUS);
        self.io.bm_write8(BM_STATUS, st | BM_ST_ERROR | BM_ST_INTR);
        let ext = self.setup(disk, lba, count)?;
        let cmd = match (write, ext) {
            (false, false) => CMD_READ_DMA,
            (false, true) => CMD_READ_DMA_EXT,
            (true, false) => CMD_WRITE_DMA,
            (true, true) => CMD_WRITE_DMA_EXT,
        };
        self.io.write8(REG_COMMAND, cmd);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.io.bm_write8(BM_CMD, dir | BM_CMD_START);
        self.settle();
        let r = self.wait_not_busy(CMD_TIMEOUT_NS, "ATA device stayed busy (BSY) past the DMA deadline");
        // The controller may trail the device by a little.
        let start = self.io.now_ns();
        let mut bm = self.io.bm_read8(BM_STATUS);
        while r.is_ok() && bm & BM_ST_ACTIVE != 0 && self.io.now_ns().wrapping_sub(start) < CMD_TIMEOUT_NS {
            core::hint::spin_loop();
            bm = self.io.bm_read8(BM_STATUS);
        }
        self.io.bm_write8(BM_CMD, dir);
        let st = r?;
        self.io.read8(REG_STATUS);
        self.io.bm_write8(BM_STATUS, bm | BM_ST_ERROR | BM_ST_INTR);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        if st & (ST_ERR | ST_DF) != 0 {
            return Err(AtaError::Device(self.io.read8(REG_ERROR)));
        }
        if bm & BM_ST_ERROR != 0 {
            return Err(AtaError::Device(0));
        }
        if bm & BM_ST_ACTIVE != 0 {
            // The controller's fault, not the disk's: PIO stays usable.
            return Err(AtaError::Broken("IDE bus master still active after the device finished"));
        }
        Ok(())
    }

    /// Why the channel is not used any more, if it is not.
    pub fn broken(&self) -> Option<&'static str> {
        self.broken
    }

    fn fail(&mut self, why: &'static str) -> AtaError {
        AtaError::Broken(self.broken.get_or_insert(why))
    }

    /// The 400 ns a device needs after a select or a command before its
    /// status is valid: four reads of the alternate status.
    fn settle(&self) {
        for _ in 0..4 {
            self.io.alt_status();
        }
    }

    /// Waits until BSY is clear; returns the status then.
    fn wait_not_busy(&mut self, timeout: u64, why: &'static str) -> Result<u8, AtaError> {
        let start = self.io.now_ns();
        loop {
            let st = self.io.alt_status();
            if st & ST_BSY == 0 {
                return Ok(st);
            }
            if self.io.now_ns().wrapping_sub(start) > timeout {
                return Err(self.fail(why));
            }
            core::hint::spin_loop();
        }
    }

    /// Waits for the device to want data (DRQ) or to report an error.
    fn wait_drq(&mut self, timeout: u64) -> Result<(), AtaError> {
        let st = self.wait_not_busy(timeout, "ATA device stayed busy (BSY) past the deadline")?;
        if st & (ST_ERR | ST_DF) != 0 {
            return Err(AtaError::Device(self.io.read8(REG_ERROR)));
        }
        if st & ST_DRQ == 0 {
            return Err(self.fail("ATA device finished a data command without asking for data (no DRQ)"));
        }
        Ok(())
    }

    fn select(&mut self, slave: bool, high: u8) -> Result<(), AtaError> {
        self.wait_not_busy(CMD_TIMEOUT_NS, "ATA channel stayed busy (BSY) before a command")?;
        self.io.write8(REG_DEVICE, 0xa0 | 0x40 | (slave as u8) << 4 | (high & 0x0f));
        self.settle();
        Ok(())
    }

    /// IDENTIFY DEVICE on the master (`slave` false) or the slave.
    pub fn identify(&mut self, slave: bool) -> Result<Identity, AtaError> {
        if let Some(why) = self.broken {
            return Err(AtaError::Broken(why));
        }
        // A channel with nothing attached floats high.
        if self.io.alt_status() == 0xff {
            return Err(AtaError::NoDevice);
        }
        let start = self.io.now_ns();
        while self.io.alt_status() & ST_BSY != 0 {
            if self.io.now_ns().wrapping_sub(start) > PROBE_TIMEOUT_NS {
                return Err(AtaError::NoDevice);
            }
        }
        self.io.write8(REG_DEVICE, 0xa0 | (slave as u8) << 4);
        self.settle();
        for r in [REG_COUNT, REG_LBA0, REG_LBA1, REG_LBA2] {
            self.io.write8(r, 0);
        }
        self.io.write8(REG_COMMAND, CMD_IDENTIFY);
        self.settle();
        let st = self.io.alt_status();
        if st == 0 || st == 0xff {
            return Err(AtaError::NoDevice);
        }
        let start = self.io.now_ns();
        let st = loop {
            let st = self.io.alt_status();
            if st & ST_BSY == 0 {
                break st;
            }
            if self.io.now_ns().wrapping_sub(start) > PROBE_TIMEOUT_NS {
                return Err(AtaError::NoDevice);
            }
            core::hint::spin_loop();
        };
        // Packet devices (and SATA ones in a mode we do not drive) answer
        // with a signature in LBA mid/high instead of the data.
        let sig = (self.io.read8(REG_LBA1), self.io.read8(REG_LBA2));
        if sig != (0, 0) {
            return Err(AtaError::NotAta);
        }
        if st & (ST_ERR | ST_DF) != 0 {
            return Err(AtaError::NotAta);
        }
        if st & ST_DRQ == 0 {
            return Err(AtaError::NoDevice);
        }
        let mut w = [0u16; 256];
        for x in w.iter_mut() {
            *x = self.io.read_data();
        }
        // Reading the status register (not the alternate) acknowledges.
        self.io.read8(REG_STATUS);
        parse_identify(&w)
    }

    /// Programs the address and count registers for a command on `disk`.
    fn setup(&mut self, disk: &DiskInfo, lba: u64, count: usize) -> Result<bool, AtaError> {
        let ext = lba + count as u64 > LBA28_LIMIT || count > 256;
        if ext && !disk.lba48 {
            return Err(AtaError::BadRequest);
        }
        // The count register's 0 means 256 (LBA28) or 65536 (LBA48).
        let n = count as u64;
        if ext {
            self.select(disk.slave, 0)?;
            self.io.write8(REG_COUNT, (n >> 8) as u8);
            self.io.write8(REG_LBA0, (lba >> 24) as u8);
            self.io.write8(REG_LBA1, (lba >> 32) as u8);
            self.io.write8(REG_LBA2, (lba >> 40) as u8);
        } else {
            self.select(disk.slave, (lba >> 24) as u8)?;
        }
        self.io.write8(REG_COUNT, n as u8);
        self.io.write8(REG_LBA0, lba as u8);
        self.io.write8(REG_LBA1, (lba >> 8) as u8);
        self.io.write8(REG_LBA2, (lba >> 16) as u8);
        Ok(ext)
    }

    fn check(&self, disk: &DiskInfo, lba: u64, len: usize) -> Result<(), AtaError> {
        if let Some(why) = self.broken {
            return Err(AtaError::Broken(why));
        }
        if len == 0 || !len.is_multiple_of(SECTOR) {
            return Err(AtaError::BadRequest);
        }
        match lba.checked_add((len / SECTOR) as u64) {
            Some(end) if end <= disk.sectors => Ok(()),
            _ => Err(AtaError::BadRequest),
        }
    }

    /// Reads whole sectors from `lba` into `buf`.
    pub fn read(&mut self, disk: &DiskInfo, lba: u64, buf: &mut [u8]) -> Result<(), AtaError> {
        self.check(disk, lba, buf.len())?;
        for (i, chunk) in buf.chunks_mut(MAX_SECTORS_PER_CMD * SECTOR).enumerate() {
            let at = lba + (i * MAX_SECTORS_PER_CMD) as u64;
            if self.dma.is_some() {
                self.dma_command(disk, at, chunk.len() / SECTOR, false)?;
                if let Some(d) = &self.dma {
                    d.region.read_bytes(DMA_BUF, chunk);
                }
                continue;
            }
            let ext = self.setup(disk, at, chunk.len() / SECTOR)?;
            self.io.write8(REG_COMMAND, if ext { CMD_READ_EXT } else { CMD_READ });
            self.settle();
            for sector in chunk.chunks_exact_mut(SECTOR) {
                self.wait_drq(CMD_TIMEOUT_NS)?;
                for pair in sector.chunks_exact_mut(2) {
                    pair.copy_from_slice(&self.io.read_data().to_le_bytes());
                }
                self.settle();
            }
            let st = self.wait_not_busy(CMD_TIMEOUT_NS, "ATA device stayed busy (BSY) after a read")?;
            self.io.read8(REG_STATUS);
            if st & (ST_ERR | ST_DF) != 0 {
                return Err(AtaError::Device(self.io.read8(REG_ERROR)));
            }
        }
        Ok(())
    }

    /// Writes whole sectors from `buf` at `lba`.
    pub fn write(&mut self, disk: &DiskInfo, lba: u64, buf: &[u8]) -> Result<(), AtaError> {
        self.check(disk, lba, buf.len())?;
        for (i, chunk) in buf.chunks(MAX_SECTORS_PER_CMD * SECTOR).enumerate() {
            let at = lba + (i * MAX_SECTORS_PER_CMD) as u64;
            if let Some(d) = &self.dma {
                d.region.write_bytes(DMA_BUF, chunk);
                self.dma_command(disk, at, chunk.len() / SECTOR, true)?;
                continue;
            }
            let ext = self.setup(disk, at, chunk.len() / SECTOR)?;
            self.io.write8(REG_COMMAND, if ext { CMD_WRITE_EXT } else { CMD_WRITE });
            self.settle();
            for sector in chunk.chunks_exact(SECTOR) {
                self.wait_drq(CMD_TIMEOUT_NS)?;
                for pair in sector.chunks_exact(2) {
                    self.io.write_data(u16::from_le_bytes([pair[0], pair[1]]));
                }
                self.settle();
            }
            let st = self.wait_not_busy(CMD_TIMEOUT_NS, "ATA device stayed busy (BSY) after a write")?;
            self.io.read8(REG_STATUS);
            if st & (ST_ERR | ST_DF) != 0 {
                return Err(AtaError::Device(self.io.read8(REG_ERROR)));
            }
        }
        Ok(())
    }

    /// FLUSH CACHE (EXT when the disk has the 48-bit set).
    pub fn flush(&mut self, disk: &DiskInfo) -> Result<(), AtaError> {
        if let Some(why) = self.broken {
            return Err(AtaError::Broken(why));
        }
        self.select(disk.slave, 0)?;
        self.io.write8(REG_COMMAND, if disk.lba48 { CMD_FLUSH_EXT } else { CMD_FLUSH });
        self.settle();
        let st = self.wait_not_busy(FLUSH_TIMEOUT_NS, "ATA device stayed busy (BSY) past the FLUSH CACHE deadline")?;
        self.io.read8(REG_STATUS);
        if st & (ST_ERR | ST_DF) != 0 {
            return Err(AtaError::Device(self.io.read8(REG_ERROR)));
        }
        Ok(())
    }
}

/// One disk on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    pub slave: bool,
    pub sectors: u64,
    pub lba48: bool,
}

#[cfg(target_os = "none")]
mod guest;
#[cfg(target_os = "none")]
pub use guest::probe;

#[cfg(test)]
mod tests;
