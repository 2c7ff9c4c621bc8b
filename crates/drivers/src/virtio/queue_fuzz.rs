//! Property test: a hostile device writing arbitrary used-ring entries (ids,
//! lengths) and arbitrary used indexes, interleaved with the driver posting
//! and popping, never panics the driver and never makes it hand back
//! something it did not post (a token twice, a length over the buffer) or
//! lose or duplicate a descriptor.
use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    /// The driver posts a chain of these writable/readable lengths.
    Add(Vec<(u32, bool)>),
    /// The device writes a used element at its next slot.
    Put { id: u32, len: u32 },
    /// The device moves used.idx by `delta` (anything, wrapping).
    Bump(u16),
    /// The device completes a chain the driver really posted (the k-th in flight).
    Honest { k: usize, len_frac: u8 },
    /// The device scribbles over a descriptor-table or ring word.
    Scribble { off: u16, val: u32 },
    /// The driver pops everything it can.
    Pop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec((any::<u32>().prop_map(|l| l % 9000), any::<bool>()), 0..6).prop_map(Op::Add),
        2 => (any::<u32>(), any::<u32>()).prop_map(|(id, len)| Op::Put { id: id % 300, len: len % 20_000 }),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(id, len)| Op::Put { id, len }),
        2 => any::<u16>().prop_map(|d| Op::Bump(d % 4)),
        1 => any::<u16>().prop_map(Op::Bump),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(k, len_frac)| Op::Honest { k, len_frac }),
        1 => (any::<u16>(), any::<u32>()).prop_map(|(off, val)| Op::Scribble { off, val }),
        3 => Just(Op::Pop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn hostile_used_ring_never_panics_or_corrupts(log2 in 0u32..9, ops in prop::collection::vec(op(), 1..80)) {
        let size = 1u16 << log2;
        let mut q = VirtQueue::new(size).unwrap();
        let (_, used_off) = q.offsets();
        // What the driver posted and has not had back: token -> writable bytes.
        let mut posted: HashMap<usize, u32> = HashMap::new();
        let mut heads: Vec<(u16, usize, u32)> = Vec::new();
        let mut next_token = 0usize;
        let mut used_idx: u16 = 0;
        for op in ops {
            match op {
                Op::Add(bufs) => {
                    let bufs: Vec<Buffer> = bufs
                        .iter()
                        .map(|&(len, w)| Buffer { addr: 0x10_0000, len, device_writes: w })
                        .collect();
                    let writable: u32 = bufs.iter().filter(|b| b.device_writes).map(|b| b.len).sum();
                    let free_before = q.num_free();
                    match q.add(&bufs, next_token) {
                        Ok(head) => {
                            prop_assert!(head < size);
                            prop_assert_eq!(q.num_free(), free_before - bufs.len());
                            posted.insert(next_token, writable);
                            heads.push((head, next_token, writable));
                        }
                        Err(QueueError::Full) => prop_assert!(free_before < bufs.len()),
                        Err(QueueError::BadRequest) => prop_assert!(bufs.is_empty() || bufs.len() > MAX_CHAIN),
                        Err(QueueError::Broken(_)) => prop_assert!(q.broken().is_some()),
                    }
                    next_token += 1;
                }
                Op::Put { id, len } => {
                    let e = used_off + 4 + 8 * (used_idx % size) as usize;
                    q.raw().write::<u32>(e, id);
                    q.raw().write::<u32>(e + 4, len);
                }
                Op::Bump(d) => {
                    used_idx = used_idx.wrapping_add(d);
                    q.raw().write::<u16>(used_off + 2, used_idx);
                }
                Op::Honest { k, len_frac } => {
                    if !heads.is_empty() {
                        let (head, _, writable) = heads[k % heads.len()];
                        let e = used_off + 4 + 8 * (used_idx % size) as usize;
                        q.raw().write::<u32>(e, head as u32);
                        q.raw().write::<u32>(e + 4, (writable as u64 * len_frac as u64 / 255) as u32);
                        used_idx = used_idx.wrapping_add(1);
                        q.raw().write::<u16>(used_off + 2, used_idx);
                    }
                }
                Op::Scribble { off, val } => {
                    // Anywhere in the descriptor table and the used ring (not the
                    // available ring, which only the driver writes).
                    let desc_len = 16 * size as usize;
                    let used_len = 4 + 8 * size as usize;
                    let off = (off as usize % (desc_len + used_len)) & !3;
                    let off = if off < desc_len { off } else { used_off + off - desc_len };
                    q.raw().write::<u32>(off, val);
                    if off == used_off {
                        used_idx = (val >> 16) as u16;
                    }
                }
                Op::Pop => loop {
                    match q.pop_used() {
                        Ok(Some((token, len))) => {
                            let writable = posted.remove(&token);
                            prop_assert!(writable.is_some(), "token {} handed back but not in flight", token);
                            prop_assert!(len <= writable.unwrap());
                            heads.retain(|h| h.1 != token);
                        }
                        Ok(None) => break,
                        Err(QueueError::Broken(why)) => {
                            prop_assert_eq!(q.broken(), Some(why));
                            prop_assert_eq!(q.pop_used(), Err(QueueError::Broken(why)));
                            prop_assert!(!q.has_used());
                            break;
                        }
                        Err(e) => prop_assert!(false, "pop_used gave {:?}", e),
                    }
                },
            }
            // The free list and the requests in flight always partition the
            // descriptors: none lost, none twice.
            let mut seen = vec![false; size as usize];
            for &d in &q.free {
                prop_assert!(d < size && !seen[d as usize], "descriptor {} free twice or out of range", d);
                seen[d as usize] = true;
            }
            for f in q.inflight.iter().flatten() {
                for &d in &f.chain[..f.chain_len as usize] {
                    prop_assert!(!seen[d as usize], "descriptor {} both free and in flight", d);
                    seen[d as usize] = true;
                }
            }
            prop_assert!(seen.iter().all(|&s| s), "a descriptor was lost");
            let in_flight_tokens: usize = q.inflight.iter().flatten().count();
            prop_assert_eq!(in_flight_tokens, posted.len());
        }
    }
}
