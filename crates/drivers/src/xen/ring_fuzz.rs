//! Property tests: a hostile backend writing arbitrary producer indexes and
//! response entries (ids, status, offsets, flags) into a Xen shared ring
//! never panics the front end, never hands back more responses than there
//! were requests, and netfront's receive path never copies from outside
//! the buffer page or returns more than the caller's buffer holds.
use super::netfront::{Buf, NetRx, RX_BUFFERS, RxResponse};
use super::ring::{FrontRing, PAGE_SIZE};
use proptest::prelude::*;
use unikit_io::DmaRegion;

const HEADER: usize = 64;
const RSP_PROD: usize = 8;
const REQ_EVENT: usize = 4;

#[derive(Clone, Debug)]
enum Act {
    /// The front end posts this many requests (and publishes them).
    Post(u8),
    /// The backend writes a response entry into slot `slot` (raw words).
    Entry { slot: u16, words: [u32; 2] },
    /// The backend moves rsp_prod by `delta` (anything, wrapping).
    Prod(u32),
    /// The backend writes req_event.
    ReqEvent(u32),
    /// The front end takes responses until none or an error.
    Take,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        3 => (0u8..40).prop_map(Act::Post),
        4 => (any::<u16>(), any::<[u32; 2]>()).prop_map(|(slot, words)| Act::Entry { slot, words }),
        3 => (0u32..6).prop_map(Act::Prod),
        1 => any::<u32>().prop_map(Act::Prod),
        1 => any::<u32>().prop_map(Act::ReqEvent),
        3 => Just(Act::Take),
    ]
}

/// A leaked, zeroed page and a second handle on it for the backend side.
fn shared_page() -> (*mut u8, DmaRegion) {
    let page = Box::leak(Box::new(DmaRegion::alloc(PAGE_SIZE, PAGE_SIZE).unwrap()));
    let p = page.virt_addr(0) as *mut u8;
    // SAFETY: the page is leaked (valid for the rest of the test binary);
    // both handles only do volatile accesses and atomics.
    let back = unsafe { DmaRegion::from_raw(p, PAGE_SIZE) }.unwrap();
    (p, back)
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Req {
    id: u16,
    pad: u16,
    val: u32,
}
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Rsp {
    id: u16,
    status: i16,
}
// SAFETY: `#[repr(C)]` integers without padding.
unsafe impl unikit_io::Pod for Req {}
// SAFETY: as above.
unsafe impl unikit_io::Pod for Rsp {}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn hostile_ring_backend_never_panics(acts in prop::collection::vec(act(), 1..100)) {
        let page = DmaRegion::alloc(PAGE_SIZE, PAGE_SIZE).unwrap();
        let mut r = FrontRing::<Req, Rsp>::from_region(page).unwrap();
        let size = r.size();
        let mut rsp_prod = 0u32;
        let mut took = 0u64;
        let mut posted = 0u64;
        for a in acts {
            match a {
                Act::Post(n) => {
                    for i in 0..n {
                        if r.put_request(Req { id: i as u16, pad: 0, val: 0 }).is_ok() {
                            posted += 1;
                        } else {
                            prop_assert_eq!(r.free_requests(), 0);
                        }
                    }
                    r.push_requests();
                }
                Act::Entry { slot, words } => {
                    let off = HEADER + (slot as usize % size as usize) * 8;
                    r.region().write::<u32>(off, words[0]);
                    r.region().write::<u32>(off + 4, words[1]);
                }
                Act::Prod(d) => {
                    rsp_prod = rsp_prod.wrapping_add(d);
                    r.region().write::<u32>(RSP_PROD, rsp_prod);
                }
                Act::ReqEvent(v) => r.region().write::<u32>(REQ_EVENT, v),
                // Bounded, so a front end that believes the backend runs out
                // of the loop (and into the assertion) instead of spinning.
                Act::Take => for _ in 0..=size {
                    match r.take_response() {
                        Ok(Some(_)) => took += 1,
                        Ok(None) | Err(_) => break,
                    }
                },
            }
            prop_assert!(took <= posted, "more responses taken than requests posted");
            prop_assert!(r.outstanding() <= size);
            prop_assert_eq!(r.outstanding() as u64, posted - took);
        }
    }

    #[test]
    fn hostile_netback_rx_never_panics_or_overreads(
        rsps in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u16>(), any::<i16>(), any::<bool>()), 1..120),
        out_len in 0usize..5000,
    ) {
        let (ring, back) = shared_page();
        let bufs: Vec<Buf> = (0..RX_BUFFERS as u32)
            .map(|gref| {
                let (page, _) = shared_page();
                Buf { page, gref }
            })
            .collect();
        // SAFETY: a leaked page-aligned ring page and leaked buffer pages,
        // used by this test only.
        let mut rx = unsafe { NetRx::new(ring, bufs) };
        rx.post_all().unwrap();
        let size = 256u32;
        let mut prod = 0u32;
        let mut out = vec![0u8; out_len];
        for (id, offset, flags, status, honest_id) in rsps {
            // netback answers in the request's slot; sometimes with its id.
            let slot = prod % size;
            let off = HEADER + slot as usize * 8;
            let id = if honest_id { back.read::<u16>(off) } else { id };
            let rsp = RxResponse { id, offset, flags: flags & 0xf, status };
            back.write::<u16>(off, rsp.id);
            back.write::<u16>(off + 2, rsp.offset);
            back.write::<u16>(off + 4, rsp.flags);
            back.write::<i16>(off + 6, rsp.status);
            prod = prod.wrapping_add(1);
            back.write::<u32>(RSP_PROD, prod);
            let (res, _) = rx.receive(&mut out);
            if let Ok(n) = res {
                prop_assert!(n <= out.len());
                prop_assert!(rsp.offset as usize + n <= PAGE_SIZE);
            }
        }
    }
}
