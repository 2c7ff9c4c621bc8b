//! The SCSI layer against a fake target that can misbehave.
use super::*;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

/// A canned answer to one opcode's data-in command.
type Answer = fn(&mut [u8]) -> Result<Reply, ScsiError>;

/// A disk at target 0 of `blocks` blocks of `bs` bytes, sparse (only the
/// blocks written are stored), logging every CDB.
struct FakeDisk {
    bs: u32,
    blocks: u64,
    wp: bool,
    /// Unit attentions still to report on the next command that is not INQUIRY.
    ua: RefCell<u32>,
    data: RefCell<Vec<(u64, Vec<u8>)>>,
    log: RefCell<Vec<Vec<u8>>>,
    /// Replaces the answer to this opcode.
    hook: Option<(u8, Answer)>,
    /// Pending sense for REQUEST SENSE (when autosense is off).
    autosense: bool,
    pending: RefCell<Option<Sense>>,
}

impl FakeDisk {
    fn new(bs: u32, blocks: u64) -> Self {
        Self {
            bs,
            blocks,
            wp: false,
            ua: RefCell::new(1),
            data: RefCell::new(Vec::new()),
            log: RefCell::new(Vec::new()),
            hook: None,
            autosense: true,
            pending: RefCell::new(None),
        }
    }
    fn check(&self, key: u8, asc: u8) -> Result<Reply, ScsiError> {
        let mut r = Reply::good(0);
        r.status = STATUS_CHECK_CONDITION;
        if self.autosense {
            r.sense[0] = 0x70;
            r.sense[2] = key;
            r.sense[7] = 10;
            r.sense[12] = asc;
            r.sense_len = 18;
        } else {
            *self.pending.borrow_mut() = Some(Sense { key, asc, ascq: 0 });
        }
        Ok(r)
    }
    fn block(&self, lba: u64) -> Vec<u8> {
        let d = self.data.borrow();
        d.iter().find(|(l, _)| *l == lba).map(|(_, b)| b.clone()).unwrap_or_else(|| vec![0; self.bs as usize])
    }
}

fn out(buf: &mut Data<'_>, src: &[u8]) -> usize {
    match buf {
        Data::In(b) => {
            let n = b.len().min(src.len());
            b[..n].copy_from_slice(&src[..n]);
            n
        }
        _ => 0,
    }
}

impl Transport for FakeDisk {
    fn execute(&self, target: u8, cdb: &[u8], mut data: Data<'_>) -> Result<Reply, ScsiError> {
        self.log.borrow_mut().push(cdb.to_vec());
        if target != 0 {
            return Err(ScsiError::NoTarget);
        }
        if let Some((op, f)) = self.hook
            && op == cdb[0]
            && let Data::In(b) = &mut data
        {
            return f(b);
        }
        if cdb[0] == REQUEST_SENSE {
            let s = self.pending.borrow_mut().take().unwrap_or(Sense { key: 0, asc: 0, ascq: 0 });
            let mut b = [0u8; 18];
            b[0] = 0x70;
            b[2] = s.key;
            b[7] = 10;
            b[12] = s.asc;
            return Ok(Reply::good(out(&mut data, &b)));
        }
        if cdb[0] != INQUIRY && *self.ua.borrow() > 0 {
            *self.ua.borrow_mut() -= 1;
            return self.check(KEY_UNIT_ATTENTION, 0x29);
        }
        let bs = self.bs as usize;
        match cdb[0] {
            INQUIRY => {
                let mut b = [0u8; 36];
                b[4] = 31;
                b[8..16].copy_from_slice(b"QEMU    ");
                b[16..32].copy_from_slice(b"QEMU HARDDISK   ");
                Ok(Reply::good(out(&mut data, &b)))
            }
            TEST_UNIT_READY | SYNCHRONIZE_CACHE_10 => Ok(Reply::good(0)),
            READ_CAPACITY_10 => {
                let last = (self.blocks - 1).min(0xffff_ffff) as u32;
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&last.to_be_bytes());
                b[4..].copy_from_slice(&self.bs.to_be_bytes());
                Ok(Reply::good(out(&mut data, &b)))
            }
            SERVICE_ACTION_IN_16 if cdb[1] == SA_READ_CAPACITY_16 => {
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&(self.blocks - 1).to_be_bytes());
                b[8..12].copy_from_slice(&self.bs.to_be_bytes());
                Ok(Reply::good(out(&mut data, &b)))
            }
            MODE_SENSE_6 => {
                let b = [3, 0, if self.wp { 0x80 } else { 0 }, 0];
                Ok(Reply::good(out(&mut data, &b)))
            }
            READ_10 | WRITE_10 | READ_16 | WRITE_16 => {
                let (lba, n) = if cdb.len() == 10 {
                    (be32(&cdb[2..6]) as u64, u16::from_be_bytes([cdb[7], cdb[8]]) as u64)
                } else {
                    (be64(&cdb[2..10]), be32(&cdb[10..14]) as u64)
                };
                if lba + n > self.blocks {
                    return self.check(KEY_ILLEGAL_REQUEST, 0x21);
                }
                assert_eq!(data.len(), n as usize * bs);
                match data {
                    Data::In(b) => {
                        for i in 0..n as usize {
                            b[i * bs..(i + 1) * bs].copy_from_slice(&self.block(lba + i as u64));
                        }
                    }
                    Data::Out(b) => {
                        if self.wp {
                            return self.check(KEY_DATA_PROTECT, 0x27);
                        }
                        let mut d = self.data.borrow_mut();
                        for i in 0..n as usize {
                            d.retain(|(l, _)| *l != lba + i as u64);
                            d.push((lba + i as u64, b[i * bs..(i + 1) * bs].to_vec()));
                        }
                    }
                    Data::None => panic!("no data for a transfer"),
                }
                Ok(Reply::good(n as usize * bs))
            }
            _ => self.check(KEY_ILLEGAL_REQUEST, 0x20),
        }
    }
}

#[test]
fn identify_small_disk_through_a_unit_attention() {
    let d = FakeDisk::new(512, 2048);
    let info = identify(&d, 0).unwrap().unwrap();
    assert_eq!(
        info,
        DiskInfo {
            model: "QEMU QEMU HARDDISK".into(),
            block_size: 512,
            blocks: 2048,
            read_only: false,
            long_lba: false
        }
    );
    // INQUIRY, TUR (unit attention), TUR, READ CAPACITY (10), MODE SENSE.
    let ops: Vec<u8> = d.log.borrow().iter().map(|c| c[0]).collect();
    assert_eq!(ops, [INQUIRY, TEST_UNIT_READY, TEST_UNIT_READY, READ_CAPACITY_10, MODE_SENSE_6]);
}

#[test]
fn no_target_is_none() {
    let d = FakeDisk::new(512, 2048);
    assert_eq!(identify(&d, 3), Ok(None));
}

#[test]
fn not_a_disk_is_none() {
    let mut d = FakeDisk::new(512, 2048);
    d.hook = Some((INQUIRY, |b| {
        b[0] = 0x05; // CD-ROM
        Ok(Reply::good(b.len()))
    }));
    assert_eq!(identify(&d, 0), Ok(None));
}

#[test]
fn big_disk_uses_read_capacity_16_and_read_16() {
    // 3 TiB of 512-byte blocks.
    let blocks = 3u64 << 31;
    let d = FakeDisk::new(512, blocks);
    let info = identify(&d, 0).unwrap().unwrap();
    assert_eq!(info.blocks, blocks);
    assert!(info.long_lba);
    let far = blocks - 4;
    let src: Vec<u8> = (0..2048).map(|i| i as u8).collect();
    write(&d, 0, 512, 65536, far, &src).unwrap();
    let mut back = vec![0u8; 2048];
    read(&d, 0, 512, 65536, far, &mut back).unwrap();
    assert_eq!(back, src);
    let log = d.log.borrow();
    let last = log.last().unwrap();
    assert_eq!((last[0], last.len()), (READ_16, 16));
    // Near the start the 10-byte forms are used.
    drop(log);
    read(&d, 0, 512, 65536, 8, &mut back).unwrap();
    assert_eq!(d.log.borrow().last().unwrap()[0], READ_10);
}

#[test]
fn rw_cdb_switches_at_2_tib() {
    assert_eq!(rw_cdb(false, 0xffff_fffe, 2).1, 10);
    assert_eq!(rw_cdb(false, 0xffff_ffff, 2).1, 16);
    assert_eq!(rw_cdb(true, 0, 0x1_0000).1, 16);
    let (c, n) = rw_cdb(true, 0x1_0000_0000, 8);
    assert_eq!(n, 16);
    assert_eq!(c[0], WRITE_16);
    assert_eq!(be64(&c[2..10]), 0x1_0000_0000);
    assert_eq!(be32(&c[10..14]), 8);
}

#[test]
fn chunks_cover_the_buffer() {
    let d = FakeDisk::new(512, 4096);
    *d.ua.borrow_mut() = 0;
    let src: Vec<u8> = (0..200 * 512).map(|i| (i / 512) as u8).collect();
    write(&d, 0, 512, 64 * 1024, 10, &src).unwrap();
    let mut back = vec![0u8; src.len()];
    read(&d, 0, 512, 64 * 1024, 10, &mut back).unwrap();
    assert_eq!(back, src);
    // 100 KiB in 64 KiB commands: 2 writes, 2 reads.
    assert_eq!(d.log.borrow().len(), 4);
}

#[test]
fn write_protect_is_seen_and_data_protect_decoded() {
    let mut d = FakeDisk::new(512, 2048);
    d.wp = true;
    assert!(identify(&d, 0).unwrap().unwrap().read_only);
    let e = write(&d, 0, 512, 65536, 0, &[0u8; 512]).unwrap_err();
    assert_eq!(e, ScsiError::Sense(Sense { key: KEY_DATA_PROTECT, asc: 0x27, ascq: 0 }));
    assert_eq!(alloc::format!("{e}"), "check condition: data protect: write protected (asc 27/00)");
}

#[test]
fn out_of_range_sense() {
    let d = FakeDisk::new(512, 16);
    *d.ua.borrow_mut() = 0;
    let e = read(&d, 0, 512, 65536, 15, &mut [0u8; 1024]).unwrap_err();
    assert_eq!(e, ScsiError::Sense(Sense { key: KEY_ILLEGAL_REQUEST, asc: 0x21, ascq: 0 }));
}

#[test]
fn request_sense_when_no_autosense() {
    let mut d = FakeDisk::new(512, 16);
    d.autosense = false;
    *d.ua.borrow_mut() = 0;
    let e = read(&d, 0, 512, 65536, 15, &mut [0u8; 1024]).unwrap_err();
    assert_eq!(e, ScsiError::Sense(Sense { key: KEY_ILLEGAL_REQUEST, asc: 0x21, ascq: 0 }));
    assert_eq!(d.log.borrow().last().unwrap()[0], REQUEST_SENSE);
}

#[test]
fn endless_unit_attention_gives_up() {
    let d = FakeDisk::new(512, 16);
    *d.ua.borrow_mut() = 100;
    assert!(matches!(identify(&d, 0), Err(ScsiError::Sense(s)) if s.key == KEY_UNIT_ATTENTION));
}

/// A target that fails every command with CHECK CONDITION and this sense.
struct Refuses(Sense);

impl Transport for Refuses {
    fn execute(&self, _: u8, _: &[u8], _: Data<'_>) -> Result<Reply, ScsiError> {
        let mut r = Reply::good(0);
        r.status = STATUS_CHECK_CONDITION;
        r.sense[0] = 0x70;
        r.sense[2] = self.0.key;
        r.sense[12] = self.0.asc;
        r.sense_len = 14;
        Ok(r)
    }
}

#[test]
fn sync_cache_unsupported_is_fine_other_errors_are_not() {
    let d = FakeDisk::new(512, 16);
    *d.ua.borrow_mut() = 0;
    assert_eq!(sync_cache(&d, 0), Ok(()));
    let unsupported = Sense { key: KEY_ILLEGAL_REQUEST, asc: 0x20, ascq: 0 };
    assert_eq!(sync_cache(&Refuses(unsupported), 0), Ok(()));
    let medium = Sense { key: KEY_MEDIUM_ERROR, asc: 0x0c, ascq: 0 };
    assert_eq!(sync_cache(&Refuses(medium), 0), Err(ScsiError::Sense(medium)));
}

#[test]
fn other_status_is_reported() {
    struct Busy;
    impl Transport for Busy {
        fn execute(&self, _: u8, _: &[u8], _: Data<'_>) -> Result<Reply, ScsiError> {
            Ok(Reply { status: STATUS_BUSY, ..Reply::good(0) })
        }
    }
    assert_eq!(identify(&Busy, 0), Err(ScsiError::Status(STATUS_BUSY)));
}

#[test]
fn hostile_capacities() {
    fn bad_len(b: &mut [u8]) -> Result<Reply, ScsiError> {
        b[..8].copy_from_slice(&[0, 0, 0, 10, 0, 0, 3, 0]); // 768-byte blocks
        Ok(Reply::good(8))
    }
    fn short(_: &mut [u8]) -> Result<Reply, ScsiError> {
        Ok(Reply::good(4))
    }
    fn huge16(b: &mut [u8]) -> Result<Reply, ScsiError> {
        b[..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 2, 0]);
        Ok(Reply::good(12))
    }
    fn big10(b: &mut [u8]) -> Result<Reply, ScsiError> {
        b[..8].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 2, 0]);
        Ok(Reply::good(8))
    }
    fn overflow16(b: &mut [u8]) -> Result<Reply, ScsiError> {
        b[..12].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0x10, 0]);
        Ok(Reply::good(12))
    }
    for (op, f) in [(READ_CAPACITY_10, bad_len as Answer), (READ_CAPACITY_10, short)] {
        let mut d = FakeDisk::new(512, 16);
        d.hook = Some((op, f));
        assert!(matches!(identify(&d, 0), Err(ScsiError::BadResponse(_))), "{op:#x}");
    }
    // READ CAPACITY (10) says "look at (16)", which says 2^64 blocks / overflow.
    for f in [huge16 as Answer, overflow16, short] {
        let mut d = FakeDisk::new(512, 16);
        d.hook = Some((SERVICE_ACTION_IN_16, f));
        // The hook only fires for SERVICE ACTION IN; make (10) say 0xffffffff.
        let d2 = Hooked { inner: d, second: (READ_CAPACITY_10, big10) };
        assert!(matches!(identify(&d2, 0), Err(ScsiError::BadResponse(_))));
    }
}

/// A second hook on top of [`FakeDisk`].
struct Hooked {
    inner: FakeDisk,
    second: (u8, Answer),
}

impl Transport for Hooked {
    fn execute(&self, target: u8, cdb: &[u8], data: Data<'_>) -> Result<Reply, ScsiError> {
        if cdb[0] == self.second.0
            && let Data::In(b) = data
        {
            return (self.second.1)(b);
        }
        self.inner.execute(target, cdb, data)
    }
}

#[test]
fn sense_formats() {
    assert_eq!(Sense::parse(&[]), None);
    assert_eq!(Sense::parse(&[0x70]), None);
    assert_eq!(Sense::parse(&[0x00, 0, 5]), None);
    // Fixed, cut short before ASC: key only.
    assert_eq!(Sense::parse(&[0xf0, 0, 0x63]), Some(Sense { key: 3, asc: 0, ascq: 0 }));
    // Descriptor format.
    assert_eq!(Sense::parse(&[0x72, 0x04, 0x44, 0x00]), Some(Sense { key: 4, asc: 0x44, ascq: 0 }));
    assert_eq!(Sense::parse(&[0x72, 0x04, 0x44]), None);
    let s = Sense { key: KEY_MEDIUM_ERROR, asc: 0x11, ascq: 0 };
    assert_eq!(alloc::format!("{s}"), "medium error: unrecovered read error (asc 11/00)");
}

#[test]
fn garbage_inquiry_is_rejected_or_cleaned() {
    fn tiny(_: &mut [u8]) -> Result<Reply, ScsiError> {
        Ok(Reply::good(2))
    }
    fn binary(b: &mut [u8]) -> Result<Reply, ScsiError> {
        for (i, x) in b.iter_mut().enumerate() {
            *x = if i == 0 { 0 } else { 0xff };
        }
        Ok(Reply::good(b.len()))
    }
    let mut d = FakeDisk::new(512, 16);
    d.hook = Some((INQUIRY, tiny));
    assert!(matches!(identify(&d, 0), Err(ScsiError::BadResponse(_))));
    d.hook = Some((INQUIRY, binary));
    let info = identify(&d, 0).unwrap().unwrap();
    assert!(info.model.chars().all(|c| c == '?' || c == ' '));
}

#[test]
fn short_transfers_are_errors() {
    /// Moves one block less than asked, with GOOD status.
    struct Short;
    impl Transport for Short {
        fn execute(&self, _: u8, _: &[u8], data: Data<'_>) -> Result<Reply, ScsiError> {
            Ok(Reply::good(data.len().saturating_sub(512)))
        }
    }
    let mut buf = [0u8; 2048];
    assert_eq!(read(&Short, 0, 512, 65536, 0, &mut buf), Err(ScsiError::BadResponse("short read")));
    assert_eq!(write(&Short, 0, 512, 65536, 0, &buf), Err(ScsiError::BadResponse("short write")));
}

#[test]
fn recovered_error_counts_as_done() {
    let recovered = Sense { key: KEY_RECOVERED_ERROR, asc: 0x17, ascq: 1 };
    assert_eq!(sync_cache(&Refuses(recovered), 0), Ok(()));
    assert_eq!(command(&Refuses(recovered), 0, &[TEST_UNIT_READY, 0, 0, 0, 0, 0], Data::None), Ok(0));
}
