//! storvsc against a simulated host disk: start-up and version fallback,
//! capacity, reads and writes (through GPA-direct packets, split at the
//! host's maximum transfer), flush, and a host that lies.
use super::abi::{self, GUID_STORVSC, Le, Offer, pkt};
use super::sim::{HostRing, Sim, page};
use super::storvsc::StorVsc;
use super::*;
use std::cell::RefCell;
use std::rc::Rc;

/// What the simulated disk does wrong, if anything.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lie {
    None,
    ShortCompletion,
    MovedTooMuch,
    WrongOperation,
    ScsiCheckCondition,
    ZeroBlockSize,
    NoMaxTransfer,
    Silent,
    Unsolicited,
}

struct Disk {
    mem: DmaRegion,
    from_guest: HostRing,
    to_guest: HostRing,
    data: Vec<u8>,
    versions: Vec<u16>,
    max_transfer: u32,
    lie: Lie,
    flushes: u32,
    /// Largest data transfer seen in one request.
    largest: usize,
}

impl Disk {
    fn reply(&self, id: u64, status: u32, srb: Option<(u8, u8, u32)>, extra: &[(usize, u32)]) {
        let mut p = vec![0u8; 64];
        let op: u32 = if self.lie == Lie::WrongOperation { 3 } else { 1 };
        p[0..4].copy_from_slice(&op.to_le_bytes());
        p[8..12].copy_from_slice(&status.to_le_bytes());
        if let Some((srb_status, scsi_status, moved)) = srb {
            p[14] = srb_status;
            p[15] = scsi_status;
            p[24..28].copy_from_slice(&moved.to_le_bytes());
        }
        for &(at, v) in extra {
            p[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        if self.lie == Lie::ShortCompletion {
            p.truncate(20);
        }
        assert!(self.to_guest.send(&self.mem, pkt::COMP, id, &p));
    }

    /// Serves every waiting request; true if there was one.
    fn serve(&mut self) -> bool {
        let mut any = false;
        while let Some((d, raw)) = self.from_guest.recv_raw(&self.mem) {
            any = true;
            if self.lie == Lie::Silent {
                continue;
            }
            if self.lie == Lie::Unsolicited {
                for _ in 0..100 {
                    self.to_guest.send(&self.mem, pkt::DATA_INBAND, 0, &[0; 64]);
                }
                continue;
            }
            let p = &raw[d.offset8 as usize * 8..];
            let op = p.u32_at(0).unwrap();
            match op {
                7 | 8 => self.reply(d.trans_id, 0, None, &[]),
                9 => {
                    let v = p.u16_at(12).unwrap();
                    self.reply(d.trans_id, if self.versions.contains(&v) { 0 } else { 0xc000_0001 }, None, &[]);
                }
                10 => self.reply(d.trans_id, 0, None, &[(24, self.max_transfer)]),
                3 => self.srb(d, &raw),
                _ => panic!("unknown vstor operation {op}"),
            }
        }
        any
    }

    fn srb(&mut self, d: abi::Descriptor, raw: &[u8]) {
        let p = &raw[d.offset8 as usize * 8..];
        let cdb = &p[28..28 + p[20] as usize];
        let len = p.u32_at(24).unwrap() as usize;
        // The data range of a GPA-direct packet: after the descriptor,
        // reserved, range count, then byte count, offset, frames.
        let mut pages = Vec::new();
        if len > 0 {
            assert_eq!(d.ty, pkt::DATA_USING_GPA_DIRECT);
            assert_eq!(raw.u32_at(20), Some(1), "one range");
            assert_eq!(raw.u32_at(24).unwrap() as usize, len);
            for i in 0..len.div_ceil(abi::PAGE) {
                pages.push(page(raw.u64_at(32 + 8 * i).unwrap() << 12, abi::PAGE));
            }
        } else {
            assert_eq!(d.ty, pkt::DATA_INBAND);
        }
        self.largest = self.largest.max(len);
        let put = |pages: &[DmaRegion], off: usize, b: &[u8]| {
            for (i, &x) in b.iter().enumerate() {
                pages[(off + i) / abi::PAGE].write::<u8>((off + i) % abi::PAGE, x);
            }
        };
        let lba = u64::from_be_bytes(cdb.get(2..10).unwrap_or(&[0; 8]).try_into().unwrap()) as usize;
        match cdb[0] {
            0x9e => {
                let mut a = vec![0u8; 32];
                a[0..8].copy_from_slice(&((self.data.len() / 512) as u64 - 1).to_be_bytes());
                let bs: u32 = if self.lie == Lie::ZeroBlockSize { 0 } else { 512 };
                a[8..12].copy_from_slice(&bs.to_be_bytes());
                put(&pages, 0, &a);
            }
            0x88 => put(&pages, 0, &self.data[lba * 512..lba * 512 + len]),
            0x8a => {
                for i in 0..len {
                    self.data[lba * 512 + i] = pages[i / abi::PAGE].read::<u8>(i % abi::PAGE);
                }
            }
            0x35 => self.flushes += 1,
            op => panic!("unknown SCSI op {op:#x}"),
        }
        let srb = match self.lie {
            Lie::ScsiCheckCondition if cdb[0] == 0x88 => (4 | 0x80, 2, 0),
            Lie::MovedTooMuch if cdb[0] == 0x88 => (1, 0, len as u32 + 512),
            _ => (1, 0, len as u32),
        };
        self.reply(d.trans_id, 0, Some(srb), &[]);
    }
}

fn disk(
    blocks: usize,
    versions: &[u16],
    max_transfer: u32,
    lie: Lie,
) -> (Sim, Rc<RefCell<Disk>>, Result<StorVsc<Sim>, Error>) {
    let o = Offer {
        class: GUID_STORVSC,
        instance: abi::Guid::new(1, 2, 3, [4; 8]),
        sub_channel: 0,
        relid: 6,
        dedicated_interrupt: true,
        connection_id: 0x106,
    };
    let sim = Sim::new(5 << 16, vec![o]);
    let synic = Synic::enable(&sim, 0x31, false).unwrap();
    let mut bus = Vmbus::connect(sim.clone(), synic).unwrap();
    let offers = bus.request_offers().unwrap();
    let ch = bus.open(&offers[0], 8, 8).unwrap();
    let (mem, from_guest, to_guest) = sim.rings(6);
    let data = (0..blocks * 512).map(|i| (i / 512) as u8 ^ (i as u8)).collect();
    let d = Rc::new(RefCell::new(Disk {
        mem,
        from_guest,
        to_guest,
        data,
        versions: versions.to_vec(),
        max_transfer,
        lie,
        flushes: 0,
        largest: 0,
    }));
    let served = d.clone();
    sim.with(|s| s.on_wait = Some(Box::new(move || served.borrow_mut().serve())));
    let s = StorVsc::new(ch);
    // The bus's pages must outlive the test: the host keeps using them.
    std::mem::forget(bus);
    (sim, d, s)
}

const ALL: [u16; 3] = [6 << 8 | 2, 6 << 8, 5 << 8 | 1];

#[test]
fn starts_up_with_the_newest_common_version_and_reads_the_capacity() {
    let (_sim, _d, s) = disk(2048, &ALL, 1 << 20, Lie::None);
    let s = s.unwrap();
    assert_eq!(s.version(), 6 << 8 | 2);
    assert_eq!((s.num_blocks(), s.block_size()), (2048, 512));
    // A Windows 8 host: 6.2 and 6.0 refused, 5.1 taken.
    let (_sim, _d, s) = disk(100, &[5 << 8 | 1], 1 << 20, Lie::None);
    assert_eq!(s.unwrap().version(), 5 << 8 | 1);
    // A Windows 7 host (4.2 only): nothing in common.
    let (_sim, _d, s) = disk(100, &[4 << 8 | 2], 1 << 20, Lie::None);
    assert_eq!(s.err(), Some(Error::NoVersion));
}

#[test]
fn scsi_read_and_write() {
    let (_sim, d, s) = disk(2048, &ALL, 1 << 20, Lie::None);
    let mut s = s.unwrap();
    let before = d.borrow().data.clone();
    let mut b = vec![0u8; 3 * 512];
    s.read(5, &mut b).unwrap();
    assert_eq!(b, before[5 * 512..8 * 512]);
    let w: Vec<u8> = (0..2 * 512).map(|i| (i * 7) as u8).collect();
    s.write(1000, &w).unwrap();
    assert_eq!(d.borrow().data[1000 * 512..1002 * 512], w[..]);
    assert_eq!(d.borrow().data[..1000 * 512], before[..1000 * 512], "nothing else written");
    let mut r = vec![0u8; 2 * 512];
    s.read(1000, &mut r).unwrap();
    assert_eq!(r, w);
    s.flush().unwrap();
    assert_eq!(d.borrow().flushes, 1);
}

#[test]
fn large_transfers_are_split_at_the_hosts_maximum() {
    // The host takes 8 KiB per request: 100 KiB go in 13 requests.
    let (_sim, d, s) = disk(1024, &ALL, 8192, Lie::None);
    let mut s = s.unwrap();
    let w: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
    s.write(10, &w).unwrap();
    let mut r = vec![0u8; w.len()];
    s.read(10, &mut r).unwrap();
    assert_eq!(r, w);
    assert_eq!(d.borrow().largest, 8192);
}

#[test]
fn requests_outside_the_disk_are_refused_before_the_host_sees_them() {
    let (_sim, _d, s) = disk(16, &ALL, 1 << 20, Lie::None);
    let mut s = s.unwrap();
    let mut b = vec![0u8; 1024];
    assert!(matches!(s.read(15, &mut b), Err(Error::Invalid(_))));
    assert!(matches!(s.read(u64::MAX, &mut b), Err(Error::Invalid(_))));
    assert!(matches!(s.write(0, &b[..100]), Err(Error::Invalid(_))));
}

#[test]
fn a_lying_host_gets_errors() {
    for (lie, start_ok) in [
        (Lie::ShortCompletion, false),
        (Lie::WrongOperation, false),
        (Lie::ZeroBlockSize, false),
        (Lie::Silent, false),
        (Lie::Unsolicited, false),
        (Lie::ScsiCheckCondition, true),
        (Lie::MovedTooMuch, true),
    ] {
        let (_sim, _d, s) = disk(64, &ALL, 1 << 20, lie);
        match (start_ok, s) {
            (false, Err(e)) => assert!(matches!(e, Error::Hostile(_) | Error::Timeout), "{lie:?}: {e:?}"),
            (true, Ok(mut s)) => {
                let mut b = vec![0u8; 512];
                let e = s.read(0, &mut b).unwrap_err();
                assert!(matches!(e, Error::Hostile(_) | Error::Scsi { .. }), "{lie:?}: {e:?}");
            }
            (_, r) => panic!("{lie:?}: start-up gave {:?}", r.err()),
        }
    }
    let (_sim, _d, s) = disk(64, &ALL, 0, Lie::NoMaxTransfer);
    assert!(matches!(s.err(), Some(Error::Hostile(_))));
}
