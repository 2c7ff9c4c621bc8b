//! The rings against a device that writes what it likes into the
//! completion rings.
use super::DESC;
use super::ring::*;

/// Writes completion `i` of `c` with generation `generation`.
fn complete(c: &CompRing, i: u32, d0: u32, d2: u32, ty: u32, generation: u32) {
    let off = i as usize * DESC;
    let r = c.region();
    r.write::<u32>(off, d0);
    r.write::<u32>(off + 4, 0);
    r.write::<u32>(off + 8, d2);
    r.write::<u32>(off + 12, ty << 24 | generation << 31);
}

const SOP_EOP: u32 = 3 << 14;

fn rx(size: u32) -> RxRing {
    RxRing::new(size, size + 32, 2048, |i| 0x10_0000 + i as u64 * 2048).unwrap()
}

#[test]
fn rx_arms_every_descriptor_with_gen_1() {
    let r = rx(32);
    for i in 0..32usize {
        assert_eq!(r.region().read::<u64>(i * DESC), 0x10_0000 + i as u64 * 2048);
        assert_eq!(r.region().read::<u32>(i * DESC + 8), 2048 | 1 << 31);
    }
}

#[test]
fn rx_in_order_frames_and_wrap() {
    let mut r = rx(32);
    let comp_size = r.comp.size();
    assert_eq!(r.pop(), Ok(None));
    // Two laps of the descriptor ring, 64 completions; the completion ring
    // (64 entries) wraps once, flipping its generation.
    for n in 0..(2 * comp_size) {
        let generation = if n < comp_size { 1 } else { 0 };
        let idx = n % 32;
        complete(&r.comp, n % comp_size, idx | SOP_EOP, 60 + n, 3, generation);
        assert_eq!(r.pop(), Ok(Some(RxEvent::Frame(RxFrame { slot: idx as usize, len: 60 + n as usize }))));
        let prod = r.rearm();
        assert_eq!(prod, (idx + 1) % 32);
        // Re-armed with the next lap's generation.
        let want_gen = (n / 32) % 2;
        assert_eq!(r.region().read::<u32>(idx as usize * DESC + 8), 2048 | want_gen << 31);
        assert_eq!(r.pop(), Ok(None), "stale entry taken as new at {n}");
    }
}

#[test]
fn rx_accepts_type_0_as_qemu_writes_it() {
    let mut r = rx(32);
    complete(&r.comp, 0, SOP_EOP, 60, 0, 1);
    assert_eq!(r.pop(), Ok(Some(RxEvent::Frame(RxFrame { slot: 0, len: 60 }))));
}

#[test]
fn rx_rejects_out_of_order_index() {
    let mut r = rx(32);
    complete(&r.comp, 0, 5 | SOP_EOP, 60, 3, 1);
    assert!(r.pop().is_err());
}

#[test]
fn rx_rejects_index_past_ring() {
    let mut r = rx(32);
    complete(&r.comp, 0, 0xfff | SOP_EOP, 60, 3, 1);
    assert!(r.pop().is_err());
}

#[test]
fn rx_rejects_length_beyond_buffer() {
    let mut r = rx(32);
    complete(&r.comp, 0, SOP_EOP, 2049, 3, 1);
    assert!(r.pop().is_err());
    let mut r = rx(32);
    complete(&r.comp, 0, SOP_EOP, 0x3fff, 3, 1);
    assert!(r.pop().is_err());
}

#[test]
fn rx_rejects_ring1_and_other_queues_and_wrong_type() {
    for (d0, ty) in [(1 << 16 | SOP_EOP, 3), (5 << 16 | SOP_EOP, 3), (SOP_EOP, 1), (SOP_EOP, 4)] {
        let mut r = rx(32);
        complete(&r.comp, 0, d0, 60, ty, 1);
        assert!(r.pop().is_err(), "{d0:#x} type {ty}");
    }
}

#[test]
fn rx_drops_errors_and_partial_frames_then_continues() {
    let mut r = rx(32);
    complete(&r.comp, 0, 1 << 15, 2048, 3, 1); // sop only
    assert_eq!(r.pop(), Ok(Some(RxEvent::Dropped(0))));
    r.rearm();
    complete(&r.comp, 1, 1 | SOP_EOP, 100 | 1 << 14, 3, 1); // err
    assert_eq!(r.pop(), Ok(Some(RxEvent::Dropped(1))));
    r.rearm();
    complete(&r.comp, 2, 2 | SOP_EOP, 100, 3, 1);
    assert_eq!(r.pop(), Ok(Some(RxEvent::Frame(RxFrame { slot: 2, len: 100 }))));
}

#[test]
fn rx_pop_twice_without_rearm_is_refused() {
    let mut r = rx(32);
    complete(&r.comp, 0, SOP_EOP, 60, 3, 1);
    assert!(r.pop().unwrap().is_some());
    assert!(r.pop().is_err());
}

#[test]
fn rx_refuses_bad_geometry() {
    assert!(RxRing::new(0, 32, 2048, |_| 0).is_none());
    assert!(RxRing::new(64, 32, 2048, |_| 0).is_none());
    assert!(RxRing::new(32, 64, 1 << 14, |_| 0).is_none());
}

#[test]
fn tx_posts_with_gen_last_and_flips_on_wrap() {
    let mut t = TxRing::new(32).unwrap();
    for i in 0..32u32 {
        assert_eq!(t.free_slot(), Some(i as usize));
        let prod = t.post(0x1000 + i as u64, 60).unwrap();
        assert_eq!(prod, (i + 1) % 32);
        let d2: u32 = t.region().read(i as usize * DESC + 8);
        assert_eq!(d2, 60 | 1 << 14);
        assert_eq!(t.region().read::<u32>(i as usize * DESC + 12), 3 << 12);
    }
    assert_eq!(t.free_slot(), None);
    assert_eq!(t.post(0, 60), None);
    // The device completes all 32 with one completion naming the last.
    complete(&t.comp, 0, 31, 0, 0, 1);
    assert_eq!(t.reclaim(), Ok(32));
    assert_eq!(t.free_slot(), Some(0));
    t.post(0x2000, 100).unwrap();
    assert_eq!(t.region().read::<u32>(8), 100, "second lap uses generation 0");
}

#[test]
fn tx_completion_outside_flight_window_is_refused() {
    let mut t = TxRing::new(32).unwrap();
    t.post(0x1000, 60).unwrap();
    t.post(0x1000, 60).unwrap();
    // Descriptor 2 was never posted.
    complete(&t.comp, 0, 2, 0, 0, 1);
    assert!(t.reclaim().is_err());
    let mut t = TxRing::new(32).unwrap();
    complete(&t.comp, 0, 0, 0, 0, 1);
    assert!(t.reclaim().is_err(), "completion with nothing in flight");
    let mut t = TxRing::new(32).unwrap();
    t.post(0x1000, 60).unwrap();
    complete(&t.comp, 0, 40, 0, 0, 1);
    assert!(t.reclaim().is_err(), "index past the ring");
    let mut t = TxRing::new(32).unwrap();
    t.post(0x1000, 60).unwrap();
    complete(&t.comp, 0, 0, 0, 3, 1);
    assert!(t.reclaim().is_err(), "rx-type completion on the tx ring");
}

#[test]
fn tx_completion_replayed_is_refused() {
    let mut t = TxRing::new(32).unwrap();
    t.post(0x1000, 60).unwrap();
    complete(&t.comp, 0, 0, 0, 0, 1);
    assert_eq!(t.reclaim(), Ok(1));
    // The same descriptor completed again (next entry, right generation).
    complete(&t.comp, 1, 0, 0, 0, 1);
    assert!(t.reclaim().is_err());
}

#[test]
fn tx_stale_generation_is_not_taken() {
    let mut t = TxRing::new(32).unwrap();
    t.post(0x1000, 60).unwrap();
    complete(&t.comp, 0, 0, 0, 0, 0);
    assert_eq!(t.reclaim(), Ok(0));
    assert_eq!(t.in_flight(), 1);
}

#[test]
fn tx_refuses_bad_lengths() {
    let mut t = TxRing::new(32).unwrap();
    assert_eq!(t.post(0, 0), None);
    assert_eq!(t.post(0, 1 << 14), None);
}

proptest::proptest! {
    /// Whatever the device writes into the completion rings, the rings
    /// never panic, never hand out a slot outside the ring or a length
    /// beyond the buffer, and never free more than is in flight.
    #[test]
    fn hostile_completions(words in proptest::collection::vec(proptest::prelude::any::<[u32; 4]>(), 1..200), posts in 0u32..40) {
        let mut r = rx(32);
        let mut t = TxRing::new(32).unwrap();
        for _ in 0..posts {
            let _ = t.post(0x1000, 60);
        }
        for (i, w) in words.iter().enumerate() {
            let c = if i % 2 == 0 { &r.comp } else { &t.comp };
            let slot = (i / 2) as u32 % c.size();
            let off = slot as usize * DESC;
            for (k, v) in w.iter().enumerate() {
                c.region().write::<u32>(off + 4 * k, *v);
            }
            if i % 2 == 0 {
                match r.pop() {
                    Ok(Some(RxEvent::Frame(f))) => {
                        proptest::prop_assert!(f.slot < 32 && f.len <= 2048);
                        r.rearm();
                    }
                    Ok(Some(RxEvent::Dropped(s))) => {
                        proptest::prop_assert!(s < 32);
                        r.rearm();
                    }
                    Ok(None) => {}
                    Err(_) => r = rx(32),
                }
            } else {
                let before = t.in_flight();
                match t.reclaim() {
                    Ok(n) => proptest::prop_assert!(n <= before && t.in_flight() == before - n),
                    Err(_) => t = TxRing::new(32).unwrap(),
                }
            }
        }
    }
}
