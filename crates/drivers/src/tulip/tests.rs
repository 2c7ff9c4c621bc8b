//! The tulip driver against a fake device (its rings in a host
//! `DmaRegion`), including one that lies about lengths.
use super::*;
use core::cell::{Cell, RefCell};
use std::rc::Rc;
use std::vec::Vec;

/// A fake 93C46 (64 words, 6 address bits) as seen through CSR9.
struct Srom {
    words: [u16; 64],
    cs: bool,
    clk: bool,
    bits_in: u32,
    shift: u32,
    data: u16,
    dout: bool,
}

impl Srom {
    fn write(&mut self, v: u32) {
        let cs = v & CSR9_CS != 0;
        let clk = v & CSR9_SCLK != 0;
        if cs && !self.cs {
            self.bits_in = 0;
            self.shift = 0;
        }
        if cs && clk && !self.clk {
            if self.bits_in < 9 {
                self.shift = self.shift << 1 | (v & CSR9_DI != 0) as u32;
                self.bits_in += 1;
                if self.bits_in == 9 {
                    assert_eq!(self.shift >> 6, 0b110, "read opcode with its start bit");
                    self.data = self.words[(self.shift & 63) as usize];
                }
            } else {
                self.dout = self.data & 0x8000 != 0;
                self.data <<= 1;
            }
        }
        self.cs = cs;
        self.clk = clk;
    }
}

struct Fake {
    region: Rc<DmaRegion>,
    csr: RefCell<[u32; 16]>,
    srom: RefCell<Srom>,
    rx_cur: Cell<u32>,
    tx_cur: Cell<u32>,
    sent: RefCell<Vec<Vec<u8>>>,
    filter: RefCell<Vec<[u8; 6]>>,
    clock: Cell<u64>,
    /// Ignores transmit poll demands (a stalled transmitter).
    deaf: bool,
}

impl Fake {
    fn new(region: Rc<DmaRegion>, mac: [u8; 6]) -> Self {
        let mut words = [0u16; 64];
        for i in 0..3 {
            words[10 + i] = u16::from_le_bytes([mac[2 * i], mac[2 * i + 1]]);
        }
        Fake {
            region,
            csr: RefCell::new([0; 16]),
            srom: RefCell::new(Srom { words, cs: false, clk: false, bits_in: 0, shift: 0, data: 0, dout: true }),
            rx_cur: Cell::new(0),
            tx_cur: Cell::new(0),
            sent: RefCell::new(Vec::new()),
            filter: RefCell::new(Vec::new()),
            clock: Cell::new(0),
            deaf: false,
        }
    }

    /// Region offset of a device address (the test's `Dma32` truncates).
    fn off(&self, addr: u32) -> usize {
        addr.wrapping_sub(self.region.dma_addr(0) as u32) as usize
    }

    fn transmit(&self) {
        if self.deaf || self.csr.borrow()[6] & CSR6_ST == 0 {
            return;
        }
        loop {
            let d = self.off(self.tx_cur.get());
            let st = self.region.read::<u32>(d);
            if st & DES0_OWN == 0 {
                return;
            }
            let ctl = self.region.read::<u32>(d + 4);
            let len = (ctl & 0x7ff) as usize;
            let buf = self.off(self.region.read::<u32>(d + 8));
            let mut bytes = vec![0u8; len];
            self.region.read_bytes(buf, &mut bytes);
            if ctl & TDES1_SET != 0 {
                assert_eq!(len, 192);
                for e in bytes.chunks(12) {
                    self.filter.borrow_mut().push([e[0], e[1], e[4], e[5], e[8], e[9]]);
                }
            } else {
                assert_eq!(ctl & (TDES1_FS | TDES1_LS), TDES1_FS | TDES1_LS);
                self.sent.borrow_mut().push(bytes);
            }
            self.region.write::<u32>(d, 0);
            let next = if ctl & TDES1_TER != 0 { self.csr.borrow()[4] } else { self.tx_cur.get() + 16 };
            self.tx_cur.set(next);
        }
    }

    /// Puts `status` into the current receive descriptor (and `frame` into
    /// its buffer); false if the driver owns it.
    fn deliver_raw(&self, frame: &[u8], status: u32) -> bool {
        let d = self.off(self.rx_cur.get());
        if self.region.read::<u32>(d) & DES0_OWN == 0 {
            return false;
        }
        let ctl = self.region.read::<u32>(d + 4);
        let buf = self.off(self.region.read::<u32>(d + 8));
        self.region.write_bytes(buf, &frame[..frame.len().min((ctl & 0x7ff) as usize)]);
        self.region.write::<u32>(d, status);
        let next = if ctl & RDES1_RER != 0 { self.csr.borrow()[3] } else { self.rx_cur.get() + 16 };
        self.rx_cur.set(next);
        true
    }

    fn deliver(&self, frame: &[u8]) -> bool {
        let fl = (frame.len() + 4) as u32;
        self.deliver_raw(frame, RDES0_FS | RDES0_LS | fl << 16)
    }
}

impl Csr for &Fake {
    fn read(&self, n: u16) -> u32 {
        if n == 9 {
            return if self.srom.borrow().dout { CSR9_DO } else { 0 };
        }
        self.csr.borrow()[n as usize]
    }
    fn write(&self, n: u16, v: u32) {
        match n {
            0 if v & CSR0_SWR != 0 => {
                *self.csr.borrow_mut() = [0, 0, 0, 0, 0, 0, 0x3200_0040, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            }
            1 => self.transmit(),
            3 => {
                self.csr.borrow_mut()[3] = v;
                self.rx_cur.set(v);
            }
            4 => {
                self.csr.borrow_mut()[4] = v;
                self.tx_cur.set(v);
            }
            6 => {
                self.csr.borrow_mut()[6] = v;
                self.transmit();
            }
            9 => self.srom.borrow_mut().write(v),
            _ => self.csr.borrow_mut()[n as usize] = v,
        }
    }
    fn now_ns(&self) -> u64 {
        self.clock.set(self.clock.get() + 1_000);
        self.clock.get()
    }
}

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const TRUNC: Dma32 = |a| Some(a as u32);

fn up() -> (Rc<DmaRegion>, Fake, Rx, Tx) {
    let region = Rc::new(DmaRegion::alloc(REGION_LEN, 4096).unwrap());
    let fake = Fake::new(region.clone(), MAC);
    let (mac, rx, tx) = start(&&fake, &region, TRUNC).unwrap();
    assert_eq!(mac, MAC);
    (region, fake, rx, tx)
}

fn frame(n: usize, tag: u8) -> Vec<u8> {
    (0..n).map(|i| if i < 6 { 0xff } else { tag.wrapping_add(i as u8) }).collect()
}

#[test]
fn start_reads_the_srom_and_loads_the_filter() {
    let (_r, fake, _rx, _tx) = up();
    let filter = fake.filter.borrow();
    assert_eq!(filter.len(), 16);
    assert_eq!(filter[0], MAC);
    assert_eq!(filter[1], [0xff; 6]);
    let mode = fake.csr.borrow()[6];
    assert_eq!(mode & (CSR6_SR | CSR6_ST), CSR6_SR | CSR6_ST);
    assert_eq!(mode & (CSR6_PR | CSR6_PM), 0, "no promiscuous mode: the filter does the work");
}

#[test]
fn frames_go_round_both_rings_several_times() {
    let (region, fake, mut rx, mut tx) = up();
    for k in 0..3 * RX_COUNT {
        let f = frame(60 + k, k as u8);
        assert!(fake.deliver(&f), "descriptor {k} was given back");
        assert!(rx.pending(&region));
        let mut got = Vec::new();
        assert_eq!(rx.receive_with(&&fake, &region, &mut |b| got.extend_from_slice(b)), Ok(true));
        assert_eq!(got, f, "CRC stripped, bytes intact");
        assert!(!rx.pending(&region));
        assert_eq!(rx.receive_with(&&fake, &region, &mut |_| panic!("nothing waits")), Ok(false));
    }
    for k in 0..3 * TX_COUNT {
        let f = frame(100 + k, k as u8);
        tx.transmit_with(&&fake, &region, f.len(), &mut |b| b.copy_from_slice(&f)).unwrap();
        assert_eq!(fake.sent.borrow().last(), Some(&f));
    }
    assert_eq!(fake.sent.borrow().len(), 3 * TX_COUNT);
}

#[test]
fn a_full_receive_ring_waits_for_the_driver() {
    let (region, fake, mut rx, _tx) = up();
    for k in 0..RX_COUNT {
        assert!(fake.deliver(&frame(64, k as u8)));
    }
    assert!(!fake.deliver(&frame(64, 0xaa)), "all descriptors are the driver's");
    assert_eq!(rx.receive_with(&&fake, &region, &mut |_| {}), Ok(true));
    assert!(fake.deliver(&frame(64, 0xaa)));
}

#[test]
fn a_stalled_transmitter_fills_up_then_would_block() {
    let region = Rc::new(DmaRegion::alloc(REGION_LEN, 4096).unwrap());
    let mut fake = Fake::new(region.clone(), MAC);
    let (_, _rx, mut tx) = start(&&fake, &region, TRUNC).unwrap();
    fake.deaf = true;
    let f = frame(60, 1);
    for _ in 0..TX_COUNT {
        tx.transmit_with(&&fake, &region, f.len(), &mut |b| b.copy_from_slice(&f)).unwrap();
    }
    // Only once half the ring is in flight does a frame ask for an
    // interrupt when sent (the setup frame took slot 0: posts start at 1).
    let ic = |k: usize| region.read::<u32>(TX_RING + (1 + k) % TX_COUNT * 16 + 4) & TDES1_IC != 0;
    assert!((0..TX_COUNT / 2 - 1).all(|k| !ic(k)));
    assert!((TX_COUNT / 2 - 1..TX_COUNT).all(ic));
    assert_eq!(
        tx.transmit_with(&&fake, &region, f.len(), &mut |_| panic!("no room: not called")),
        Err(TulipError::WouldBlock)
    );
    // Lengths the buffers cannot hold are refused before anything else.
    assert_eq!(tx.transmit_with(&&fake, &region, BUF + 1, &mut |_| {}), Err(TulipError::BadLength));
    assert_eq!(tx.transmit_with(&&fake, &region, 13, &mut |_| {}), Err(TulipError::BadLength));
    // And a transmitter deaf from the start never takes the setup frame.
    let region = Rc::new(DmaRegion::alloc(REGION_LEN, 4096).unwrap());
    let mut fake = Fake::new(region.clone(), MAC);
    fake.deaf = true;
    assert!(matches!(start(&&fake, &region, TRUNC), Err(TulipError::Broken(_))));
}

#[test]
fn hostile_receive_descriptors_are_dropped_and_recycled() {
    let (region, fake, mut rx, _tx) = up();
    let f = frame(64, 7);
    let good = RDES0_FS | RDES0_LS;
    for status in [
        good | 0x3fff << 16,           // longer than the buffer
        good | (BUF as u32 + 1) << 16, // one past the buffer
        good | 17 << 16,               // shorter than a header and CRC
        good,                          // zero length
        RDES0_FS | 68 << 16,           // first of several descriptors
        RDES0_LS | 68 << 16,           // last of several
        good | RDES0_ES | 68 << 16,    // error summary
    ] {
        assert!(fake.deliver_raw(&f, status));
        assert_eq!(
            rx.receive_with(&&fake, &region, &mut |_| panic!("dropped frames are not lent")),
            Err(TulipError::BadLength),
            "{status:#x}"
        );
    }
    // The ring still works, each bad descriptor was given back.
    for _ in 0..RX_COUNT {
        assert!(fake.deliver(&f));
        assert_eq!(rx.receive_with(&&fake, &region, &mut |b| assert_eq!(b, &f[..])), Ok(true));
    }
}

#[test]
fn srom_without_a_mac_and_memory_above_4g() {
    let region = Rc::new(DmaRegion::alloc(REGION_LEN, 4096).unwrap());
    for bad in [[0u8; 6], [0xff; 6], [0x01, 0, 0, 0, 0, 1]] {
        let fake = Fake::new(region.clone(), bad);
        assert!(matches!(start(&&fake, &region, TRUNC), Err(TulipError::Broken(m)) if m.contains("MAC")));
    }
    let fake = Fake::new(region.clone(), MAC);
    assert!(matches!(start(&&fake, &region, |_| None), Err(TulipError::Broken(m)) if m.contains("4 GiB")));
    let small = DmaRegion::alloc(REGION_LEN - 1, 4096).unwrap();
    assert!(matches!(start(&&fake, &small, TRUNC), Err(TulipError::Broken(_))));
}

#[test]
fn ack_clears_what_is_pending() {
    let (_r, fake, _rx, _tx) = up();
    enable_interrupts(&&fake);
    assert_eq!(fake.csr.borrow()[7], CSR7_ENABLE);
    // The fake keeps CSR5 as written; W1C is modelled by the driver
    // writing back exactly the bits it saw.
    fake.csr.borrow_mut()[5] = 0;
    assert!(!ack(&&fake), "nothing pending: not ours (shared line)");
    fake.csr.borrow_mut()[5] = CSR5_RI | CSR5_NIS | 0xf000_0000;
    assert!(ack(&&fake));
    assert_eq!(fake.csr.borrow()[5], CSR5_RI | CSR5_NIS, "only the W1C bits are written back");
}

#[test]
fn setup_frame_layout() {
    let f = setup_frame(&MAC);
    assert_eq!(&f[..12], &[0x52, 0x54, 0, 0, 0x00, 0x12, 0, 0, 0x34, 0x56, 0, 0]);
    assert_eq!(&f[12..24], &[0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0]);
    assert_eq!(&f[180..192], &f[..12]);
}
