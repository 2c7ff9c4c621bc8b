//! The rings against a device that writes what it likes into descriptors.
use super::DESC;
use super::ring::*;

fn rx(size: u32) -> RxRing {
    RxRing::new(size, 2048, |i| 0x20_0000 + i as u64 * 2048).unwrap()
}

/// The device writes back descriptor `i`.
fn write_back(r: &RxRing, i: u32, len: u16, status: u8, errors: u8) {
    let off = i as usize * DESC;
    r.region().write::<u16>(off + 8, len);
    r.region().write::<u8>(off + 13, errors);
    r.region().write::<u8>(off + 12, status);
}

#[test]
fn rx_in_order_and_wrap() {
    let mut r = rx(16);
    assert_eq!(r.initial_tail(), 15);
    assert_eq!(r.pop(), Ok(None));
    for n in 0..40u32 {
        let i = n % 16;
        write_back(&r, i, 60 + n as u16, 3, 0);
        assert_eq!(r.pop(), Ok(Some(RxEvent::Frame { slot: i as usize, len: 60 + n as usize })));
        assert_eq!(r.rearm(), Some(i));
        // Cleared for the next lap, address kept.
        assert_eq!(r.region().read::<u8>(i as usize * DESC + 12), 0);
        assert_eq!(r.region().read::<u64>(i as usize * DESC), 0x20_0000 + i as u64 * 2048);
        assert_eq!(r.pop(), Ok(None));
    }
}

#[test]
fn rx_ignores_descriptors_out_of_turn() {
    let mut r = rx(16);
    // DD on descriptor 5 while 0 is the oldest: not looked at.
    write_back(&r, 5, 60, 3, 0);
    assert_eq!(r.pop(), Ok(None));
}

#[test]
fn rx_length_beyond_buffer_is_refused() {
    let mut r = rx(16);
    write_back(&r, 0, 2049, 3, 0);
    assert!(r.pop().is_err());
    let mut r = rx(16);
    write_back(&r, 0, 0xffff, 3, 0);
    assert!(r.pop().is_err());
}

#[test]
fn rx_drops_errors_and_partial_frames() {
    let mut r = rx(16);
    write_back(&r, 0, 2048, 1, 0); // DD without EOP
    assert_eq!(r.pop(), Ok(Some(RxEvent::Dropped(0))));
    r.rearm();
    write_back(&r, 1, 60, 3, 0x80); // RX data error
    assert_eq!(r.pop(), Ok(Some(RxEvent::Dropped(1))));
    r.rearm();
    write_back(&r, 2, 0xffff, 1, 0); // dropped before the length matters
    assert_eq!(r.pop(), Ok(Some(RxEvent::Dropped(2))));
}

#[test]
fn rx_pop_twice_is_refused_and_rearm_needs_pop() {
    let mut r = rx(16);
    assert_eq!(r.rearm(), None);
    write_back(&r, 0, 60, 3, 0);
    assert!(r.pop().unwrap().is_some());
    assert!(r.pop().is_err());
}

#[test]
fn bad_geometry_is_refused() {
    assert!(RxRing::new(0, 2048, |_| 0).is_none());
    assert!(RxRing::new(12, 2048, |_| 0).is_none());
    assert!(RxRing::new(16, 0, |_| 0).is_none());
    assert!(TxRing::new(4).is_none());
    assert!(TxRing::new(8192).is_none());
}

#[test]
fn tx_holds_size_minus_one_and_frees_in_order() {
    let mut t = TxRing::new(8).unwrap();
    for i in 0..7u32 {
        assert_eq!(t.free_slot(), Some(i as usize));
        assert_eq!(t.post(0x1000, 60), Some(i + 1));
        let off = i as usize * DESC;
        assert_eq!(t.region().read::<u16>(off + 8), 60);
        assert_eq!(t.region().read::<u8>(off + 11), 0b1011);
    }
    assert_eq!(t.free_slot(), None);
    assert_eq!(t.post(0x1000, 60), None);
    // Device marks 0, 1 and 3 done: only 0 and 1 are freed (in order).
    for i in [0usize, 1, 3] {
        t.region().write::<u8>(i * DESC + 12, 1);
    }
    assert_eq!(t.reclaim(), 2);
    assert_eq!(t.in_flight(), 5);
    assert_eq!(t.free_slot(), Some(7));
}

#[test]
fn tx_done_bits_on_idle_descriptors_are_ignored() {
    let mut t = TxRing::new(8).unwrap();
    for i in 0..8 {
        t.region().write::<u8>(i * DESC + 12, 1);
    }
    assert_eq!(t.reclaim(), 0);
    t.post(0x1000, 60).unwrap();
    // Posting clears the stale status: not done until the device says so.
    assert_eq!(t.reclaim(), 0);
    t.region().write::<u8>(12, 1);
    assert_eq!(t.reclaim(), 1);
}

#[test]
fn tx_refuses_bad_lengths() {
    let mut t = TxRing::new(8).unwrap();
    assert_eq!(t.post(0, 0), None);
    assert_eq!(t.post(0, 20000), None);
}

proptest::proptest! {
    /// Whatever the device writes, nothing panics, no slot or length goes
    /// out of range, and no more is freed than was in flight.
    #[test]
    fn hostile_write_backs(writes in proptest::collection::vec((0usize..16, proptest::prelude::any::<[u8; 16]>()), 1..200)) {
        let mut r = rx(16);
        let mut t = TxRing::new(16).unwrap();
        for (k, (i, bytes)) in writes.iter().enumerate() {
            let region = if k % 2 == 0 { r.region() } else { t.region() };
            // The device does not write buffer addresses: keep them.
            for (j, b) in bytes.iter().enumerate().skip(8) {
                region.write::<u8>(i * DESC + j, *b);
            }
            if k % 2 == 0 {
                match r.pop() {
                    Ok(Some(RxEvent::Frame { slot, len })) => {
                        proptest::prop_assert!(slot < 16 && len <= 2048);
                        r.rearm();
                    }
                    Ok(Some(RxEvent::Dropped(slot))) => {
                        proptest::prop_assert!(slot < 16);
                        r.rearm();
                    }
                    Ok(None) => {}
                    Err(_) => r = rx(16),
                }
            } else {
                let _ = t.post(0x1000, 60);
                let before = t.in_flight();
                let n = t.reclaim();
                proptest::prop_assert!(n <= before && t.in_flight() == before - n && t.in_flight() < 16);
            }
        }
    }
}
