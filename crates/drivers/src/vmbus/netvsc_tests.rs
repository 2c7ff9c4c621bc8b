//! netvsc against a simulated host adapter: NVSP start-up with version
//! fallback, the receive buffer, RNDIS initialisation, MAC query and packet
//! filter, frames both ways, and hostile transfer ranges and RNDIS sizes.
use super::abi::{self, GUID_NETVSC, Le, Offer, pkt};
use super::netvsc::NetVsc;
use super::sim::{HostRing, Sim, page};
use super::*;
use std::cell::RefCell;
use std::rc::Rc;

const MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x01, 0x02, 0x03];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lie {
    None,
    ShortMac,
    InitFails,
}

struct Net {
    sim: Sim,
    mem: DmaRegion,
    from_guest: HostRing,
    to_guest: HostRing,
    versions: Vec<u32>,
    recv: Option<DmaRegion>,
    slot: usize,
    next_tid: u64,
    lie: Lie,
    filter: Option<u32>,
    ndis: Option<(u32, u32)>,
    config_mtu: Option<u32>,
    frames_out: Vec<Vec<u8>>,
    completions: Vec<(u64, u32)>,
}

fn nvsp(ty: u32, words: &[u32]) -> Vec<u8> {
    let mut m = vec![0u8; 40];
    m[0..4].copy_from_slice(&ty.to_le_bytes());
    for (i, w) in words.iter().enumerate() {
        m[4 + 4 * i..8 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
    m
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An RNDIS PACKET message around `frame`.
fn rndis_packet(frame: &[u8]) -> Vec<u8> {
    let mut m = words(&[1, 44 + frame.len() as u32, 36, frame.len() as u32, 0, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(frame);
    m
}

impl Net {
    /// Puts RNDIS messages into the receive buffer and announces them in
    /// one transfer-page packet, ranges given as (offset, length) overrides
    /// when `ranges` is set.
    fn deliver(&mut self, msgs: &[Vec<u8>], ranges: Option<&[(u32, u32)]>, pageset: u16) {
        let recv = self.recv.as_ref().expect("no receive buffer yet");
        let mut rs = Vec::new();
        for m in msgs {
            let off = self.slot;
            recv.write_bytes(off, m);
            self.slot = (self.slot + 4096) % recv.len();
            rs.push((off as u32, m.len() as u32));
        }
        let rs = ranges.map(|r| r.to_vec()).unwrap_or(rs);
        let mut head = Vec::new();
        head.extend_from_slice(&pageset.to_le_bytes());
        head.extend_from_slice(&[0, 0]);
        head.extend_from_slice(&(rs.len() as u32).to_le_bytes());
        for (off, len) in &rs {
            head.extend_from_slice(&len.to_le_bytes());
            head.extend_from_slice(&off.to_le_bytes());
        }
        self.next_tid += 1;
        assert!(self.to_guest.send_with_head(
            &self.mem,
            pkt::DATA_USING_XFER_PAGES,
            self.next_tid,
            &head,
            &nvsp(107, &[0, u32::MAX, 0])
        ));
    }

    fn serve(&mut self) -> bool {
        let mut any = false;
        while let Some((d, raw)) = self.from_guest.recv_raw(&self.mem) {
            any = true;
            let p = raw[d.offset8 as usize * 8..].to_vec();
            let ty = p.u32_at(0).unwrap();
            match (d.ty, ty) {
                (pkt::COMP, 108) => self.completions.push((d.trans_id, p.u32_at(4).unwrap())),
                (pkt::DATA_INBAND, 1) => {
                    let v = p.u32_at(4).unwrap();
                    let ok = self.versions.contains(&v);
                    self.to_guest.send(&self.mem, pkt::COMP, d.trans_id, &nvsp(2, &[v, 0, if ok { 1 } else { 2 }]));
                }
                (pkt::DATA_INBAND, 125) => self.config_mtu = p.u32_at(4),
                (pkt::DATA_INBAND, 100) => self.ndis = Some((p.u32_at(4).unwrap(), p.u32_at(8).unwrap())),
                (pkt::DATA_INBAND, 101) => {
                    let (gpadl, id) = (p.u32_at(4).unwrap(), p.u16_at(8).unwrap());
                    assert_eq!(id, 0xcafe);
                    let (base, bytes) = self.sim.with(|s| {
                        let g = &s.gpadls[&gpadl];
                        (g.pfns[0] << 12, g.bytes)
                    });
                    self.recv = Some(page(base, bytes));
                    self.to_guest.send(&self.mem, pkt::COMP, d.trans_id, &nvsp(102, &[1, 1, 0, 1728, 600, 1728 * 600]));
                }
                (pkt::DATA_USING_GPA_DIRECT, 107) => {
                    assert_eq!(raw.u32_at(20), Some(1), "one range");
                    let (len, off, pfn) =
                        (raw.u32_at(24).unwrap() as usize, raw.u32_at(28).unwrap() as usize, raw.u64_at(32).unwrap());
                    let mut m = vec![0u8; len];
                    page(pfn << 12, abi::PAGE).read_bytes(off, &mut m);
                    self.to_guest.send(&self.mem, pkt::COMP, d.trans_id, &nvsp(108, &[1]));
                    self.rndis(p.u32_at(4).unwrap(), &m);
                }
                other => panic!("unexpected packet {other:?}"),
            }
        }
        any
    }

    fn rndis(&mut self, channel: u32, m: &[u8]) {
        let (ty, len, req) = (m.u32_at(0).unwrap(), m.u32_at(4).unwrap() as usize, m.u32_at(8).unwrap());
        assert_eq!(len, m.len());
        let reply = match ty {
            1 => {
                assert_eq!(channel, 0, "data channel");
                let (off, n) = (m.u32_at(8).unwrap() as usize, m.u32_at(12).unwrap() as usize);
                self.frames_out.push(m[8 + off..8 + off + n].to_vec());
                return;
            }
            2 => {
                let status = if self.lie == Lie::InitFails { 0xc000_0001 } else { 0 };
                words(&[0x8000_0002, 52, req, status, 1, 0, 0, 0, 8, 0x4000, 3, 0, 0])
            }
            4 => {
                assert_eq!(m.u32_at(12), Some(0x0101_0101));
                let n = if self.lie == Lie::ShortMac { 5 } else { 6 };
                let mut r = words(&[0x8000_0004, 24 + n, req, 0, n, 16]);
                r.extend_from_slice(&MAC[..n as usize]);
                r
            }
            5 => {
                assert_eq!(m.u32_at(12), Some(0x0001_010e));
                let off = m.u32_at(20).unwrap() as usize;
                self.filter = m.u32_at(8 + off);
                words(&[0x8000_0005, 16, req, 0])
            }
            t => panic!("unexpected RNDIS message {t:#x}"),
        };
        assert_eq!(channel, 1, "control channel");
        self.deliver(&[reply], None, 0xcafe);
    }
}

fn adapter(versions: &[u32], lie: Lie) -> (Rc<RefCell<Net>>, Result<NetVsc<Sim>, Error>) {
    let o = Offer {
        class: GUID_NETVSC,
        instance: abi::Guid::new(9, 9, 9, [9; 8]),
        sub_channel: 0,
        relid: 11,
        dedicated_interrupt: true,
        connection_id: 0x10b,
    };
    let sim = Sim::new(5 << 16, vec![o]);
    let synic = Synic::enable(&sim, 0x31, false).unwrap();
    let mut bus = Vmbus::connect(sim.clone(), synic).unwrap();
    let offers = bus.request_offers().unwrap();
    let net: Rc<RefCell<Option<Net>>> = Rc::new(RefCell::new(None));
    // The rings exist only once the guest opened the channel (inside
    // NetVsc::new): the host side is built on the first wait after that.
    let (n2, s2) = (net.clone(), sim.clone());
    let versions = versions.to_vec();
    sim.with(|s| {
        s.on_wait = Some(Box::new(move || {
            let mut g = n2.borrow_mut();
            if g.is_none() && !s2.with(|s| s.open.contains_key(&11)) {
                return false;
            }
            if g.is_none() {
                let (mem, from_guest, to_guest) = s2.rings(11);
                *g = Some(Net {
                    sim: s2.clone(),
                    mem,
                    from_guest,
                    to_guest,
                    versions: versions.clone(),
                    recv: None,
                    slot: 0,
                    next_tid: 0,
                    lie,
                    filter: None,
                    ndis: None,
                    config_mtu: None,
                    frames_out: Vec::new(),
                    completions: Vec::new(),
                });
            }
            g.as_mut().unwrap().serve()
        }))
    });
    let r = NetVsc::new(&mut bus, &offers[0]);
    std::mem::forget(bus);
    // Hand the host out as its own cell (the hook keeps serving through `net`).
    let out = Rc::new(RefCell::new(net.borrow_mut().take().expect("host never ran")));
    let (o2, s3) = (out.clone(), sim.clone());
    s3.with(|s| s.on_wait = Some(Box::new(move || o2.borrow_mut().serve())));
    (out, r)
}

const ALL: [u32; 3] = [0x50000, 0x40000, 0x30002];

#[test]
fn rndis_initialisation() {
    let (net, n) = adapter(&ALL, Lie::None);
    let n = n.unwrap();
    assert_eq!(n.mac(), MAC);
    assert_eq!(n.nvsp_version(), 0x50000);
    net.borrow_mut().serve(); // the completion of the last answer
    let h = net.borrow();
    assert_eq!(h.filter, Some(0xd), "directed, all multicast, broadcast");
    assert_eq!(h.ndis, Some((6, 30)));
    assert_eq!(h.config_mtu, Some(1514));
    // Every RNDIS answer (INIT_C, QUERY_C, SET_C) was completed with success.
    assert_eq!(h.completions.iter().map(|c| c.1).collect::<Vec<_>>(), vec![1, 1, 1]);
}

#[test]
fn nvsp_version_falls_back() {
    let (net, n) = adapter(&[0x40000], Lie::None);
    assert_eq!(n.unwrap().nvsp_version(), 0x40000);
    assert_eq!(net.borrow().ndis, Some((6, 1)));
    let (_, n) = adapter(&[2], Lie::None);
    assert_eq!(n.err(), Some(Error::NoVersion));
}

#[test]
fn start_up_failures_are_errors() {
    let (_, n) = adapter(&ALL, Lie::ShortMac);
    assert!(matches!(n.err(), Some(Error::Hostile(_))));
    let (_, n) = adapter(&ALL, Lie::InitFails);
    assert_eq!(n.err(), Some(Error::Refused(0xc000_0001)));
}

#[test]
fn frames_both_ways() {
    let (net, n) = adapter(&ALL, Lie::None);
    let mut n = n.unwrap();
    let frame: Vec<u8> = (0..1514).map(|i| i as u8).collect();
    n.send(&frame).unwrap();
    n.send(&frame[..60]).unwrap();
    assert_eq!(net.borrow().frames_out, vec![frame.clone(), frame[..60].to_vec()]);
    assert!(matches!(n.send(&[0; 1515]), Err(Error::Invalid(_))));
    assert_eq!(n.recv().unwrap(), None);
    // Three frames in one transfer-page packet, then one more.
    let msgs: Vec<Vec<u8>> = (0..3u8).map(|i| rndis_packet(&[i; 100])).collect();
    net.borrow_mut().deliver(&msgs, None, 0xcafe);
    net.borrow_mut().deliver(&[rndis_packet(&frame)], None, 0xcafe);
    for i in 0..3u8 {
        assert_eq!(n.recv().unwrap(), Some(vec![i; 100]));
    }
    assert_eq!(n.recv().unwrap(), Some(frame));
    assert_eq!(n.recv().unwrap(), None);
    net.borrow_mut().serve();
    assert_eq!(net.borrow().completions.len(), 3 + 2, "each transfer-page packet completed");
}

#[test]
fn hostile_receive_ranges_and_rndis_sizes_are_errors() {
    let (net, n) = adapter(&ALL, Lie::None);
    let mut n = n.unwrap();
    let good = rndis_packet(&[7; 64]);
    let mut long = good.clone();
    long[4..8].copy_from_slice(&5000u32.to_le_bytes()); // RNDIS length beyond the range
    let mut far = good.clone();
    far[8..12].copy_from_slice(&4000u32.to_le_bytes()); // data offset beyond the message
    let mut big = good.clone();
    big[12..16].copy_from_slice(&u32::MAX.to_le_bytes()); // data length overflowing
    let mut tiny = good.clone();
    tiny[12..16].copy_from_slice(&4u32.to_le_bytes()); // not even an Ethernet header
    for (msgs, ranges, pageset, why) in [
        (vec![good.clone()], Some(vec![(1 << 20, 64)]), 0xcafe, "range past the buffer"),
        (vec![good.clone()], Some(vec![(u32::MAX - 8, 64)]), 0xcafe, "range offset overflowing"),
        (vec![good.clone()], None, 0xbeef, "unknown page set"),
        (vec![long], None, 0xcafe, "RNDIS length beyond the range"),
        (vec![far], None, 0xcafe, "data offset beyond the message"),
        (vec![big], None, 0xcafe, "data length overflowing"),
        (vec![tiny], None, 0xcafe, "runt frame"),
    ] {
        net.borrow_mut().deliver(&msgs, ranges.as_deref(), pageset);
        assert!(matches!(n.recv(), Err(Error::Hostile(_))), "{why}");
        net.borrow_mut().serve();
        assert_eq!(net.borrow().completions.last().map(|c| c.1), Some(2), "{why}: completed with a failure");
    }
    // A range count beyond the packet's header.
    {
        let h = net.borrow();
        let head = [0xfe, 0xca, 0, 0, 0xff, 0xff, 0, 0];
        assert!(h.to_guest.send_with_head(
            &h.mem,
            pkt::DATA_USING_XFER_PAGES,
            99,
            &head,
            &nvsp(107, &[0, u32::MAX, 0])
        ));
    }
    assert!(matches!(n.recv(), Err(Error::Hostile(_))));
    // The adapter still works afterwards.
    net.borrow_mut().deliver(&[good], None, 0xcafe);
    assert_eq!(n.recv().unwrap(), Some(vec![7; 64]));
}
