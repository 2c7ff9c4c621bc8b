//! The ring entry types of netfront and blkfront are plain data: they may be
//! read from a page the backend writes ([`unikit_io::Pod`]). The one audited
//! exception to `deny(unsafe_code)` under xen/ until the types derive it
//! (a derive such as zerocopy's needs no `unsafe` in the driver).
//!
//! Each claim is checked at compile time: the size equals the sum of the
//! field sizes (no padding, whose bytes would be uninitialised), and every
//! field is an integer or an array of `Pod` (any bit pattern is valid).
use super::blkfront::{BlkRequest, BlkResponse, Segment};
use super::netfront::{RxRequest, RxResponse, TxRequest, TxResponse};
use core::mem::size_of;
use unikit_io::Pod;

const _: () = {
    assert!(size_of::<TxRequest>() == 4 + 2 + 2 + 2 + 2);
    assert!(size_of::<TxResponse>() == 2 + 2);
    assert!(size_of::<RxRequest>() == 2 + 2 + 4);
    assert!(size_of::<RxResponse>() == 2 + 2 + 2 + 2);
    assert!(size_of::<Segment>() == 4 + 1 + 1 + 2);
    assert!(size_of::<BlkRequest>() == 1 + 1 + 2 + 4 + 8 + 8 + size_of::<[Segment; super::blkfront::MAX_SEGMENTS]>());
    assert!(size_of::<BlkResponse>() == 8 + 1 + 1 + 2 + 4);
};

macro_rules! ring_pod {
    ($($t:ty),*) => {$(
        // SAFETY: `#[repr(C)]`, integer fields (or arrays of `Pod`) only, and
        // no padding (the size assertion above): every bit pattern is valid.
        #[allow(unsafe_code)]
        unsafe impl Pod for $t {}
    )*};
}
ring_pod!(TxRequest, TxResponse, RxRequest, RxResponse, Segment, BlkRequest, BlkResponse);
