//! netfront's rings against a fake netback that can misbehave.
use super::*;
use std::collections::HashMap;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

fn page() -> *mut u8 {
    Box::leak(Box::new(Page([0; 4096]))).0.as_mut_ptr()
}

fn rd32(p: *mut u8, off: usize) -> u32 {
    unsafe { core::ptr::read_volatile(p.add(off) as *const u32) }
}
fn wr32(p: *mut u8, off: usize, v: u32) {
    unsafe { core::ptr::write_volatile(p.add(off) as *mut u32, v) }
}

const RING: u32 = 256;

/// The backend half: reads requests, fills responses in the same slots.
struct FakeBack {
    grants: HashMap<u32, *mut u8>,
    rx_ring: *mut u8,
    tx_ring: *mut u8,
    rx_cons: u32,
    rx_prod: u32,
    tx_cons: u32,
    tx_prod: u32,
}

impl FakeBack {
    fn rx_slot(&self, i: u32) -> *mut u8 {
        unsafe { self.rx_ring.add(64 + (i % RING) as usize * 8) }
    }
    fn tx_slot(&self, i: u32) -> *mut u8 {
        unsafe { self.tx_ring.add(64 + (i % RING) as usize * 12) }
    }

    /// Answers the next rx request with `rsp(request)`, after copying
    /// `data` into the granted page at the response's offset.
    fn rx_answer(&mut self, data: &[u8], rsp: impl FnOnce(RxRequest) -> RxResponse) {
        assert_ne!(self.rx_cons, rd32(self.rx_ring, 0), "no rx request posted");
        let req = unsafe { core::ptr::read(self.rx_slot(self.rx_cons) as *const RxRequest) };
        let r = rsp(req);
        let page = self.grants[&req.gref];
        let off = (r.offset as usize).min(4096);
        let n = data.len().min(4096 - off);
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), page.add(off), n) };
        unsafe { core::ptr::write(self.rx_slot(self.rx_cons) as *mut RxResponse, r) };
        self.rx_cons += 1;
        self.rx_prod += 1;
        wr32(self.rx_ring, 8, self.rx_prod);
    }

    fn deliver(&mut self, frame: &[u8]) {
        self.rx_answer(frame, |q| RxResponse { id: q.id, offset: 0, flags: 0, status: frame.len() as i16 });
    }

    /// Takes every tx request, returns the frames, answers with `status`.
    fn take_tx(&mut self, status: i16) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while self.tx_cons != rd32(self.tx_ring, 0) {
            let q = unsafe { core::ptr::read(self.tx_slot(self.tx_cons) as *const TxRequest) };
            assert!(q.offset as usize + q.size as usize <= 4096);
            let page = self.grants[&q.gref];
            let mut f = vec![0; q.size as usize];
            unsafe { core::ptr::copy_nonoverlapping(page.add(q.offset as usize), f.as_mut_ptr(), f.len()) };
            out.push(f);
            unsafe { core::ptr::write(self.tx_slot(self.tx_cons) as *mut TxResponse, TxResponse { id: q.id, status }) };
            self.tx_cons += 1;
            self.tx_prod += 1;
        }
        wr32(self.tx_ring, 8, self.tx_prod);
        out
    }
}

fn setup() -> (NetRx, NetTx, FakeBack) {
    let mut grants = HashMap::new();
    let mut next = 8;
    let mut buf = || {
        let b = Buf { page: page(), gref: next };
        grants.insert(next, b.page);
        next += 1;
        b
    };
    let rx_bufs: Vec<Buf> = (0..RX_BUFFERS).map(|_| buf()).collect();
    let tx_pages: Vec<Buf> = (0..TX_SLOTS / 2).map(|_| buf()).collect();
    let (rx_ring, tx_ring) = (page(), page());
    let rx = unsafe { NetRx::new(rx_ring, rx_bufs) };
    let tx = unsafe { NetTx::new(tx_ring, tx_pages) };
    let back = FakeBack { grants, rx_ring, tx_ring, rx_cons: 0, rx_prod: 0, tx_cons: 0, tx_prod: 0 };
    (rx, tx, back)
}

fn frame(n: usize, fill: u8) -> Vec<u8> {
    (0..n).map(|i| fill.wrapping_add(i as u8)).collect()
}

#[test]
fn receive_frames_and_repost_across_the_wrap() {
    let (mut rx, _tx, mut back) = setup();
    assert!(rx.post_all().unwrap()); // crosses req_event = 1
    assert_eq!(rd32(back.rx_ring, 0), RX_BUFFERS as u32);
    let mut buf = [0u8; 1514];
    for i in 0..1000usize {
        let f = frame(60 + i % 1400, i as u8);
        back.deliver(&f);
        let (r, _) = rx.receive(&mut buf);
        assert_eq!(r, Ok(f.len()));
        assert_eq!(&buf[..f.len()], &f[..]);
        // Always RX_BUFFERS outstanding.
        assert_eq!(rd32(back.rx_ring, 0) - back.rx_cons, RX_BUFFERS as u32);
    }
    let (r, _) = rx.receive(&mut buf);
    assert_eq!(r, Err(NetError::WouldBlock));
    // We asked for an event at the next response.
    assert_eq!(rd32(back.rx_ring, 12), back.rx_prod + 1);
}

#[test]
fn notify_only_when_the_backend_asks() {
    let (mut rx, _tx, mut back) = setup();
    rx.post_all().unwrap();
    let mut buf = [0u8; 1514];
    back.deliver(&frame(60, 0));
    let (_, notify) = rx.receive(&mut buf);
    assert!(!notify); // req_event is still 1, long passed
    wr32(back.rx_ring, 4, rd32(back.rx_ring, 0) + 1); // backend: tell me about the next one
    back.deliver(&frame(60, 0));
    let (_, notify) = rx.receive(&mut buf);
    assert!(notify);
}

#[test]
fn rx_errors_runts_and_oversized_frames_are_dropped() {
    let (mut rx, _tx, mut back) = setup();
    rx.post_all().unwrap();
    let mut buf = [0u8; 100];
    back.rx_answer(&[], |q| RxResponse { id: q.id, offset: 0, flags: 0, status: -1 });
    back.rx_answer(&[1; 10], |q| RxResponse { id: q.id, offset: 0, flags: 0, status: 10 });
    back.deliver(&frame(60, 7));
    assert_eq!(rx.receive(&mut buf).0, Ok(60));
    back.deliver(&frame(200, 7));
    assert_eq!(rx.receive(&mut buf).0, Err(NetError::BadLength));
    // A frame in pieces: dropped whole, reported once at its end.
    back.rx_answer(&[0; 100], |q| RxResponse { id: q.id, offset: 0, flags: NETRXF_MORE_DATA, status: 100 });
    back.rx_answer(&[0; 100], |q| RxResponse { id: q.id, offset: 0, flags: NETRXF_MORE_DATA, status: 100 });
    back.rx_answer(&[0; 100], |q| RxResponse { id: q.id, offset: 0, flags: 0, status: 100 });
    back.deliver(&frame(80, 1));
    assert_eq!(rx.receive(&mut buf).0, Err(NetError::BadLength));
    assert_eq!(rx.receive(&mut buf).0, Ok(80));
    assert_eq!(rx.receive(&mut buf).0, Err(NetError::WouldBlock));
    // All buffers are back on the ring.
    assert_eq!(rd32(back.rx_ring, 0) - back.rx_cons, RX_BUFFERS as u32);
}

#[test]
fn rx_response_beyond_its_page_breaks() {
    let (mut rx, _tx, mut back) = setup();
    rx.post_all().unwrap();
    back.rx_answer(&[], |q| RxResponse { id: q.id, offset: 4000, flags: 0, status: 200 });
    assert!(matches!(rx.receive(&mut [0; 1514]).0, Err(NetError::Broken(_))));
}

#[test]
fn rx_response_with_a_foreign_id_breaks() {
    let (mut rx, _tx, mut back) = setup();
    rx.post_all().unwrap();
    back.rx_answer(&[0; 60], |q| RxResponse { id: q.id + 1, offset: 0, flags: 0, status: 60 });
    assert!(matches!(rx.receive(&mut [0; 1514]).0, Err(NetError::Broken(_))));
    let (mut rx, _tx, mut back) = setup();
    rx.post_all().unwrap();
    back.rx_answer(&[0; 60], |_| RxResponse { id: 9999, offset: 0, flags: 0, status: 60 });
    assert!(matches!(rx.receive(&mut [0; 1514]).0, Err(NetError::Broken(_))));
}

#[test]
fn rx_extra_info_and_excess_responses_break() {
    let (mut rx, _tx, mut back) = setup();
    rx.post_all().unwrap();
    back.rx_answer(&[0; 60], |q| RxResponse { id: q.id, offset: 0, flags: NETRXF_EXTRA_INFO, status: 60 });
    assert!(matches!(rx.receive(&mut [0; 1514]).0, Err(NetError::Broken(_))));
    let (mut rx, _tx, back) = setup();
    rx.post_all().unwrap();
    wr32(back.rx_ring, 8, RX_BUFFERS as u32 + 1); // more responses than requests
    assert!(matches!(rx.receive(&mut [0; 1514]).0, Err(NetError::Broken(_))));
}

#[test]
fn transmit_until_full_then_reclaim() {
    let (_rx, mut tx, mut back) = setup();
    let frames: Vec<Vec<u8>> = (0..TX_SLOTS).map(|i| frame(60 + i * 40, i as u8)).collect();
    for f in &frames {
        tx.transmit(f).unwrap();
    }
    assert_eq!(tx.transmit(&frames[0]), Err(NetError::WouldBlock));
    // Out of slots, we asked to hear about the next completion.
    assert_eq!(rd32(back.tx_ring, 12), 1);
    let sent = back.take_tx(0);
    assert_eq!(sent, frames);
    for round in 0..20 {
        for f in &frames {
            tx.transmit(f).unwrap();
        }
        // Dropped by the backend: the slots come back all the same.
        assert_eq!(back.take_tx(if round % 2 == 0 { 0 } else { -1 }).len(), TX_SLOTS);
    }
    assert_eq!(tx.transmit(&[0; 13]), Err(NetError::BadLength));
    assert_eq!(tx.transmit(&[0; 2049]), Err(NetError::BadLength));
    tx.transmit(&[0; 2048]).unwrap();
}

#[test]
fn tx_responses_for_slots_not_in_flight_break() {
    let (_rx, mut tx, back) = setup();
    tx.transmit(&frame(60, 0)).unwrap();
    unsafe { core::ptr::write(back.tx_slot(0) as *mut TxResponse, TxResponse { id: 5, status: 0 }) };
    wr32(back.tx_ring, 8, 1);
    assert!(matches!(tx.transmit(&frame(60, 0)), Err(NetError::Broken(_))));

    let (_rx, mut tx, mut back) = setup();
    tx.transmit(&frame(60, 0)).unwrap();
    back.take_tx(0);
    tx.transmit(&frame(60, 0)).unwrap(); // reclaims slot 0, reuses it
    tx.transmit(&frame(60, 0)).unwrap(); // slot 1
    // Slot 0 answered twice.
    unsafe { core::ptr::write(back.tx_slot(1) as *mut TxResponse, TxResponse { id: 0, status: 0 }) };
    unsafe { core::ptr::write(back.tx_slot(2) as *mut TxResponse, TxResponse { id: 0, status: 0 }) };
    wr32(back.tx_ring, 8, 3);
    assert!(matches!(tx.transmit(&frame(60, 0)), Err(NetError::Broken(_))));
}

#[test]
fn macs() {
    assert_eq!(parse_mac("00:16:3e:0a:bB:ff"), Some([0, 0x16, 0x3e, 0x0a, 0xbb, 0xff]));
    assert_eq!(parse_mac("0:16:3e:a:b:f\n"), Some([0, 0x16, 0x3e, 0xa, 0xb, 0xf]));
    for bad in [
        "",
        "00:16:3e:0a:bb",
        "00:16:3e:0a:bb:ff:00",
        "00:16:3e:0a:bb:fff",
        "00:16:3e:0a:bb:gg",
        "00:16:3e::bb:ff",
        "+0:16:3e:0a:bb:ff",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad:?}");
    }
}
