//! The ATA protocol against a fake device, including lying ones.
use super::*;
use core::cell::{Cell, RefCell};
use std::vec::Vec;

/// How the fake misbehaves.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// BSY never clears after a command.
    stuck_busy: bool,
    /// Commands end with ERR (error register 0x04, ABRT).
    error: bool,
    /// Data commands end without DRQ.
    no_drq: bool,
    /// IDENTIFY is answered with the ATAPI signature and an abort.
    atapi: bool,
    /// The bus master moves the data but never clears its active bit.
    bm_stuck_active: bool,
    /// The bus master reports an error.
    bm_error: bool,
}

struct Fake {
    regs: RefCell<[u8; 8]>,
    /// High-order bytes written first (LBA48's "previous" values).
    hob: RefCell<[u8; 8]>,
    status: Cell<u8>,
    error: Cell<u8>,
    present: [bool; 2],
    identify: RefCell<[u16; 256]>,
    disk: RefCell<Vec<u8>>,
    /// Words the host still reads (or writes) for the current command.
    buf: RefCell<Vec<u16>>,
    pos: Cell<usize>,
    /// A write in progress: the LBA it writes to.
    writing: Cell<Option<u64>>,
    remaining: Cell<u64>,
    lba: Cell<u64>,
    clock: Cell<u64>,
    faults: Faults,
    commands: RefCell<Vec<u8>>,
    bm_cmd: Cell<u8>,
    bm_status: Cell<u8>,
    prdt: Cell<u32>,
    /// The driver's DMA region (the fake reads PRDs and buffers there).
    dma_region: RefCell<Option<std::sync::Arc<unikit_io::DmaRegion>>>,
    /// A DMA command waiting for the bus master: write?, lba, sectors.
    dma_pending: Cell<Option<(bool, u64, u64)>>,
}

fn identify_words(sectors: u64, lba48: bool) -> [u16; 256] {
    let mut w = [0u16; 256];
    w[0] = 0x0040;
    w[49] = 1 << 9;
    let s28 = sectors.min((1 << 28) - 1);
    w[60] = s28 as u16;
    w[61] = (s28 >> 16) as u16;
    if lba48 {
        w[83] = 0x4000 | 1 << 10;
        for i in 0..4 {
            w[100 + i] = (sectors >> (16 * i)) as u16;
        }
    }
    for (i, pair) in b"FAKE DISK                               ".chunks(2).enumerate() {
        w[27 + i] = u16::from_be_bytes([pair[0], pair[1]]);
    }
    w
}

impl Fake {
    fn new(sectors: u64, lba48: bool, faults: Faults) -> Self {
        Fake {
            regs: RefCell::new([0; 8]),
            hob: RefCell::new([0; 8]),
            status: Cell::new(ST_DRDY),
            error: Cell::new(0),
            present: [true, false],
            identify: RefCell::new(identify_words(sectors, lba48)),
            disk: RefCell::new(vec![0; (sectors.min(4096) as usize) * SECTOR]),
            buf: RefCell::new(Vec::new()),
            pos: Cell::new(0),
            writing: Cell::new(None),
            remaining: Cell::new(0),
            lba: Cell::new(0),
            clock: Cell::new(0),
            faults,
            commands: RefCell::new(Vec::new()),
            bm_cmd: Cell::new(0),
            bm_status: Cell::new(0x20),
            prdt: Cell::new(0),
            dma_region: RefCell::new(None),
            dma_pending: Cell::new(None),
        }
    }

    fn selected(&self) -> usize {
        (self.regs.borrow()[REG_DEVICE as usize] >> 4 & 1) as usize
    }

    fn load_sector(&self) {
        let lba = self.lba.get() as usize;
        let disk = self.disk.borrow();
        // Past what the fake backs: zeros.
        let s = disk.get(lba * SECTOR..(lba + 1) * SECTOR).unwrap_or(&[0; SECTOR]);
        *self.buf.borrow_mut() = s.chunks(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
        self.pos.set(0);
    }

    fn command(&self, cmd: u8) {
        self.commands.borrow_mut().push(cmd);
        if !self.present[self.selected()] {
            return;
        }
        if self.faults.stuck_busy {
            self.status.set(ST_BSY);
            return;
        }
        let r = *self.regs.borrow();
        let h = *self.hob.borrow();
        let (lba, count) = match cmd {
            CMD_READ_EXT | CMD_WRITE_EXT | CMD_READ_DMA_EXT | CMD_WRITE_DMA_EXT => {
                let lba = (0..3).fold(0u64, |a, i| a | (r[3 + i] as u64) << (8 * i))
                    | (0..3).fold(0u64, |a, i| a | (h[3 + i] as u64) << (8 * (i + 3)));
                let c = (h[2] as u64) << 8 | r[2] as u64;
                (lba, if c == 0 { 65536 } else { c })
            }
            _ => {
                let lba = (0..3).fold(0u64, |a, i| a | (r[3 + i] as u64) << (8 * i)) | ((r[6] & 0xf) as u64) << 24;
                (lba, if r[2] == 0 { 256 } else { r[2] as u64 })
            }
        };
        if self.faults.error || (self.faults.atapi && cmd == CMD_IDENTIFY) {
            if self.faults.atapi {
                self.regs.borrow_mut()[REG_LBA1 as usize] = 0x14;
                self.regs.borrow_mut()[REG_LBA2 as usize] = 0xeb;
            }
            self.error.set(0x04);
            self.status.set(ST_DRDY | ST_ERR);
            return;
        }
        let drq = if self.faults.no_drq { 0 } else { ST_DRQ };
        match cmd {
            CMD_IDENTIFY => {
                *self.buf.borrow_mut() = self.identify.borrow().to_vec();
                self.pos.set(0);
                self.status.set(ST_DRDY | drq);
            }
            CMD_READ | CMD_READ_EXT => {
                self.lba.set(lba);
                self.remaining.set(count);
                self.load_sector();
                self.status.set(ST_DRDY | drq);
            }
            CMD_WRITE | CMD_WRITE_EXT => {
                self.writing.set(Some(lba));
                self.remaining.set(count);
                self.buf.borrow_mut().clear();
                self.status.set(ST_DRDY | drq);
            }
            CMD_FLUSH | CMD_FLUSH_EXT => self.status.set(ST_DRDY),
            CMD_READ_DMA | CMD_READ_DMA_EXT | CMD_WRITE_DMA | CMD_WRITE_DMA_EXT => {
                let write = cmd == CMD_WRITE_DMA || cmd == CMD_WRITE_DMA_EXT;
                self.dma_pending.set(Some((write, lba, count)));
                self.status.set(ST_DRDY | ST_BSY);
            }
            _ => {
                self.error.set(0x04);
                self.status.set(ST_DRDY | ST_ERR);
            }
        }
    }
}

impl AtaIo for &Fake {
    fn read8(&self, reg: u16) -> u8 {
        match reg {
            REG_STATUS => self.alt_status(),
            REG_ERROR => self.error.get(),
            r => self.regs.borrow()[r as usize],
        }
    }
    fn write8(&self, reg: u16, v: u8) {
        if reg == REG_COMMAND {
            return self.command(v);
        }
        let old = self.regs.borrow()[reg as usize];
        self.hob.borrow_mut()[reg as usize] = old;
        self.regs.borrow_mut()[reg as usize] = v;
    }
    fn read_data(&self) -> u16 {
        let p = self.pos.get();
        let v = self.buf.borrow().get(p).copied().unwrap_or(0xffff);
        self.pos.set(p + 1);
        if p + 1 == 256 && self.status.get() & ST_DRQ != 0 {
            let left = self.remaining.get().saturating_sub(1);
            self.remaining.set(left);
            if left == 0 {
                self.status.set(ST_DRDY);
            } else {
                self.lba.set(self.lba.get() + 1);
                self.load_sector();
            }
        }
        v
    }
    fn write_data(&self, v: u16) {
        let Some(lba) = self.writing.get() else { return };
        self.buf.borrow_mut().push(v);
        if self.buf.borrow().len() == 256 {
            let words: Vec<u16> = std::mem::take(&mut *self.buf.borrow_mut());
            let off = lba as usize * SECTOR;
            let mut disk = self.disk.borrow_mut();
            for (i, w) in words.iter().enumerate() {
                disk[off + 2 * i..off + 2 * i + 2].copy_from_slice(&w.to_le_bytes());
            }
            let left = self.remaining.get() - 1;
            self.remaining.set(left);
            if left == 0 {
                self.writing.set(None);
                self.status.set(ST_DRDY);
            } else {
                self.writing.set(Some(lba + 1));
            }
        }
    }
    fn alt_status(&self) -> u8 {
        if self.present[self.selected()] { self.status.get() } else { 0 }
    }
    fn write_ctl(&self, _v: u8) {}
    fn bm_read8(&self, off: u16) -> u8 {
        match off {
            BM_CMD => self.bm_cmd.get(),
            BM_STATUS => self.bm_status.get(),
            _ => 0,
        }
    }
    fn bm_write8(&self, off: u16, v: u8) {
        match off {
            BM_CMD => {
                let starting = v & BM_CMD_START != 0 && self.bm_cmd.get() & BM_CMD_START == 0;
                self.bm_cmd.set(v);
                if starting {
                    self.bm_status.set(self.bm_status.get() | BM_ST_ACTIVE);
                    self.run_dma(v & BM_CMD_TO_MEMORY != 0);
                }
            }
            // Bits 1 and 2 are cleared by writing 1; 5 and 6 are plain.
            BM_STATUS => {
                let st = self.bm_status.get();
                self.bm_status.set(st & !(v & (BM_ST_ERROR | BM_ST_INTR)) & !0x60 | v & 0x60);
            }
            _ => {}
        }
    }
    fn bm_write_prdt(&self, addr: u32) {
        self.prdt.set(addr);
    }
    fn now_ns(&self) -> u64 {
        // Every look at the clock is a millisecond: deadlines pass quickly.
        self.clock.set(self.clock.get() + 1_000_000);
        self.clock.get()
    }
}

impl Fake {
    fn run_dma(&self, to_memory: bool) {
        let Some((write, lba, count)) = self.dma_pending.take() else { return };
        assert_eq!(write, !to_memory, "bus-master direction matches the command");
        let region = self.dma_region.borrow().clone().expect("DMA without a region");
        let base = region.dma_addr(0) as u32;
        let off = |a: u32| a.wrapping_sub(base) as usize;
        let prd = off(self.prdt.get());
        let addr = off(region.read::<u32>(prd));
        let flags = region.read::<u32>(prd + 4);
        assert_ne!(flags & 1 << 31, 0, "one descriptor, marked last");
        let bytes = match flags & 0xffff {
            0 => 0x1_0000,
            n => n as usize,
        };
        assert_eq!(bytes as u64, count * SECTOR as u64);
        let at = lba as usize * SECTOR;
        let mut disk = self.disk.borrow_mut();
        if write {
            region.read_bytes(addr, &mut disk[at..at + bytes]);
        } else {
            region.write_bytes(addr, &disk[at..at + bytes]);
        }
        self.status.set(ST_DRDY);
        let mut st = self.bm_status.get() | BM_ST_INTR;
        if !self.faults.bm_stuck_active {
            st &= !BM_ST_ACTIVE;
        }
        if self.faults.bm_error {
            st |= BM_ST_ERROR;
        }
        self.bm_status.set(st);
    }
}

fn dma_for(fake: &Fake) -> Dma {
    let region = std::sync::Arc::new(unikit_io::DmaRegion::alloc(DMA_REGION_LEN, DMA_ALIGN).unwrap());
    *fake.dma_region.borrow_mut() = Some(region.clone());
    Dma::new(region, |a| Some(a as u32)).unwrap()
}

#[test]
fn bus_master_dma_round_trip() {
    let fake = Fake::new(2048, true, Faults::default());
    let mut ch = Channel::new(&fake);
    let d = disk_of(&ch.identify(false).unwrap(), false);
    ch.set_dma(Some(dma_for(&fake)));
    assert!(ch.uses_dma());
    // 300 sectors: 128 + 128 + 44, each one DMA command.
    let data: Vec<u8> = (0..300 * SECTOR).map(|i| (i * 13 % 253) as u8).collect();
    ch.write(&d, 7, &data).unwrap();
    assert_eq!(&fake.disk.borrow()[7 * SECTOR..307 * SECTOR], &data[..]);
    let mut back = vec![0u8; data.len()];
    ch.read(&d, 7, &mut back).unwrap();
    assert_eq!(back, data);
    let cmds = fake.commands.borrow();
    assert_eq!(cmds.iter().filter(|&&c| c == CMD_WRITE_DMA).count(), 3);
    assert_eq!(cmds.iter().filter(|&&c| c == CMD_READ_DMA).count(), 3);
    assert!(!cmds.contains(&CMD_READ), "no PIO once DMA is on");
    assert_eq!(fake.bm_cmd.get() & BM_CMD_START, 0, "the bus master is stopped after each command");
}

#[test]
fn bus_master_faults_are_errors_and_pio_still_works() {
    // Stuck active: an error, but the channel is not given up (PIO goes on).
    let fake = Fake::new(64, false, Faults { bm_stuck_active: true, ..Faults::default() });
    let mut ch = Channel::new(&fake);
    let d = disk_of(&ch.identify(false).unwrap(), false);
    ch.set_dma(Some(dma_for(&fake)));
    let mut buf = vec![0u8; SECTOR];
    assert!(matches!(ch.read(&d, 0, &mut buf), Err(AtaError::Broken(why)) if why.contains("bus master")));
    assert!(ch.broken().is_none());
    ch.take_dma();
    fake.bm_status.set(0);
    assert_eq!(ch.read(&d, 0, &mut buf), Ok(()));
    // Error bit: a device error for that request.
    let fake = Fake::new(64, false, Faults { bm_error: true, ..Faults::default() });
    let mut ch = Channel::new(&fake);
    let d = disk_of(&ch.identify(false).unwrap(), false);
    ch.set_dma(Some(dma_for(&fake)));
    assert_eq!(ch.write(&d, 0, &buf), Err(AtaError::Device(0)));
    // A region that is not 64 KiB aligned, or above 4 GiB, is refused.
    let r = std::sync::Arc::new(unikit_io::DmaRegion::alloc(DMA_REGION_LEN, DMA_ALIGN).unwrap());
    assert!(Dma::new(r.clone(), |_| None).is_none());
    let small = std::sync::Arc::new(unikit_io::DmaRegion::alloc(DMA_REGION_LEN - 1, DMA_ALIGN).unwrap());
    assert!(Dma::new(small, |a| Some(a as u32)).is_none());
}

fn disk_of(id: &Identity, slave: bool) -> DiskInfo {
    DiskInfo { slave, sectors: id.sectors, lba48: id.lba48 }
}

#[test]
fn identify_read_write_flush_round_trip() {
    let fake = Fake::new(2048, true, Faults::default());
    let mut ch = Channel::new(&fake);
    let id = ch.identify(false).unwrap();
    assert_eq!(id, Identity { sectors: 2048, lba48: true, dma: false, model: "FAKE DISK".into() });
    assert_eq!(ch.identify(true), Err(AtaError::NoDevice));
    let d = disk_of(&id, false);
    // 300 sectors: three commands (128 + 128 + 44).
    let data: Vec<u8> = (0..300 * SECTOR).map(|i| (i * 7 % 251) as u8).collect();
    ch.write(&d, 100, &data).unwrap();
    let mut back = vec![0u8; data.len()];
    ch.read(&d, 100, &mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(&fake.disk.borrow()[100 * SECTOR..101 * SECTOR], &data[..SECTOR]);
    ch.flush(&d).unwrap();
    assert_eq!(fake.commands.borrow().last(), Some(&CMD_FLUSH_EXT));
    // Below 2^28 and at most 256 sectors: the 28-bit commands.
    assert!(fake.commands.borrow().contains(&CMD_READ));
    assert!(!fake.commands.borrow().contains(&CMD_READ_EXT));
}

#[test]
fn lba48_addresses_past_2_pow_28() {
    // The disk claims 2^30 sectors; the fake only backs the first 4096,
    // so check the command and registers of a request near the end instead.
    let fake = Fake::new(1 << 30, true, Faults { no_drq: true, ..Faults::default() });
    let mut ch = Channel::new(&fake);
    let id = ch.identify(false);
    // no_drq: IDENTIFY without data is "no device".
    assert_eq!(id, Err(AtaError::NoDevice));
    let d = DiskInfo { slave: false, sectors: 1 << 30, lba48: true };
    let mut buf = vec![0u8; SECTOR];
    let lba = (1u64 << 29) + 0x123456;
    assert!(matches!(ch.read(&d, lba, &mut buf), Err(AtaError::Broken(_))));
    assert_eq!(fake.commands.borrow().last(), Some(&CMD_READ_EXT));
    let r = *fake.regs.borrow();
    let h = *fake.hob.borrow();
    let got = r[3] as u64 | (r[4] as u64) << 8 | (r[5] as u64) << 16 | (h[3] as u64) << 24 | (h[4] as u64) << 32;
    assert_eq!(got, lba);
    // Without LBA48 such a request is refused before touching the device.
    let d28 = DiskInfo { lba48: false, ..d };
    assert_eq!(
        Channel::new(&Fake::new(8, false, Faults::default())).read(&d28, lba, &mut buf),
        Err(AtaError::BadRequest)
    );
}

#[test]
fn a_device_stuck_busy_times_out_and_is_not_used_again() {
    let fake = Fake::new(64, false, Faults::default());
    let mut ch = Channel::new(&fake);
    let d = disk_of(&ch.identify(false).unwrap(), false);
    let fake2 = Fake::new(64, false, Faults { stuck_busy: true, ..Faults::default() });
    let mut ch2 = Channel::new(&fake2);
    let mut buf = vec![0u8; SECTOR];
    let e = ch2.read(&d, 0, &mut buf);
    assert!(matches!(e, Err(AtaError::Broken(why)) if why.contains("BSY")), "{e:?}");
    assert!(ch2.broken().is_some());
    // Later requests fail at once, without another command.
    let n = fake2.commands.borrow().len();
    assert!(matches!(ch2.write(&d, 0, &buf), Err(AtaError::Broken(_))));
    assert!(matches!(ch2.flush(&d), Err(AtaError::Broken(_))));
    assert_eq!(fake2.commands.borrow().len(), n);
    // And at probe time a device that never stops being busy is "absent".
    let fake3 = Fake::new(64, false, Faults { stuck_busy: true, ..Faults::default() });
    assert_eq!(Channel::new(&fake3).identify(false), Err(AtaError::NoDevice));
}

#[test]
fn device_errors_and_atapi() {
    let fake = Fake::new(64, false, Faults { error: true, ..Faults::default() });
    let mut ch = Channel::new(&fake);
    let d = DiskInfo { slave: false, sectors: 64, lba48: false };
    let mut buf = vec![0u8; SECTOR];
    assert_eq!(ch.read(&d, 0, &mut buf), Err(AtaError::Device(0x04)));
    assert_eq!(ch.flush(&d), Err(AtaError::Device(0x04)));
    assert!(ch.broken().is_none());
    let cd = Fake::new(64, false, Faults { atapi: true, ..Faults::default() });
    assert_eq!(Channel::new(&cd).identify(false), Err(AtaError::NotAta));
}

#[test]
fn requests_outside_the_disk_or_of_odd_length_are_refused() {
    let fake = Fake::new(64, false, Faults::default());
    let mut ch = Channel::new(&fake);
    let d = disk_of(&ch.identify(false).unwrap(), false);
    let mut buf = vec![0u8; 2 * SECTOR];
    assert_eq!(ch.read(&d, 63, &mut buf), Err(AtaError::BadRequest));
    assert_eq!(ch.read(&d, u64::MAX, &mut buf), Err(AtaError::BadRequest));
    assert_eq!(ch.read(&d, 0, &mut buf[..100]), Err(AtaError::BadRequest));
    assert_eq!(ch.write(&d, 0, &[]), Err(AtaError::BadRequest));
}

#[test]
fn hostile_identify_data() {
    let ok = identify_words(1000, false);
    assert_eq!(parse_identify(&ok).unwrap().sectors, 1000);
    // Packet device.
    let mut w = ok;
    w[0] = 0x8580;
    assert_eq!(parse_identify(&w), Err(AtaError::NotAta));
    // No LBA.
    let mut w = ok;
    w[49] = 0;
    assert!(matches!(parse_identify(&w), Err(AtaError::Unsupported(_))));
    // Zero sectors.
    let w = identify_words(0, false);
    assert!(matches!(parse_identify(&w), Err(AtaError::Unsupported(_))));
    // 4 KiB logical sectors.
    let mut w = ok;
    w[106] = 0x4000 | 1 << 12;
    assert!(matches!(parse_identify(&w), Err(AtaError::Unsupported(_))));
    // An LBA48 count of zero or past 2^48 is not believed: the 28-bit one stands.
    let mut w = identify_words(5000, true);
    w[100..104].fill(0);
    assert_eq!(parse_identify(&w).unwrap().sectors, 5000);
    w[100..104].fill(0xffff);
    assert_eq!(parse_identify(&w).unwrap().sectors, 5000);
    // Word 83 without its validity bits: no LBA48.
    let mut w = identify_words(5000, true);
    w[83] = 1 << 10;
    assert!(!parse_identify(&w).unwrap().lba48);
    // Garbage in the model string is replaced.
    let mut w = ok;
    w[27] = 0x01ff;
    assert_eq!(parse_identify(&w).unwrap().model.chars().take(2).collect::<String>(), "??");
}
