//! Random bytes for `getrandom`, `/dev/urandom` and `AT_RANDOM`.
//!
//! Not cryptographic: a SplitMix64 stream seeded from the wall clock and
//! the monotonic clock at first use. unikit has no entropy source yet
//! (RDRAND or virtio-rng would feed this); programs that need secrets
//! must not rely on it.
use core::sync::atomic::{AtomicU64, Ordering};

static STATE: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    if STATE.load(Ordering::Relaxed) == 0 {
        let seed = unikit_kernel::time::wall_clock_ns() ^ unikit_kernel::time::monotonic_ns().rotate_left(32) | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let r = next().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
}
