//! The virtqueue against a fake device that can misbehave.
use super::*;

/// The device side of a queue: reads the available ring, writes used elements.
struct FakeDevice {
    last_avail: u16,
    used_idx: u16,
}

impl FakeDevice {
    fn new() -> Self {
        Self { last_avail: 0, used_idx: 0 }
    }
    fn avail(&mut self, q: &VirtQueue) -> Option<u16> {
        let (avail_off, _) = q.offsets();
        let idx = q.raw().read::<u16>(avail_off + 2);
        if idx == self.last_avail {
            return None;
        }
        let slot = (self.last_avail % q.size()) as usize;
        self.last_avail = self.last_avail.wrapping_add(1);
        Some(q.raw().read::<u16>(avail_off + 4 + 2 * slot))
    }
    fn desc(q: &VirtQueue, id: u16) -> (u64, u32, u16, u16) {
        let (r, d) = (q.raw(), 16 * id as usize);
        (r.read::<u64>(d), r.read::<u32>(d + 8), r.read::<u16>(d + 12), r.read::<u16>(d + 14))
    }
    /// Writes a used element without bumping the index.
    fn put(&mut self, q: &VirtQueue, slot: u16, id: u32, len: u32) {
        let (_, used_off) = q.offsets();
        let e = used_off + 4 + 8 * (slot % q.size()) as usize;
        q.raw().write::<u32>(e, id);
        q.raw().write::<u32>(e + 4, len);
    }
    fn set_idx(&mut self, q: &VirtQueue, idx: u16) {
        let (_, used_off) = q.offsets();
        self.used_idx = idx;
        q.raw().write::<u16>(used_off + 2, idx);
    }
    fn complete(&mut self, q: &VirtQueue, id: u32, len: u32) {
        self.put(q, self.used_idx, id, len);
        self.set_idx(q, self.used_idx.wrapping_add(1));
    }
}

fn rx(addr: u64, len: u32) -> Buffer {
    Buffer { addr, len, device_writes: true }
}
fn tx(addr: u64, len: u32) -> Buffer {
    Buffer { addr, len, device_writes: false }
}

#[test]
fn sizes_must_be_powers_of_two() {
    assert!(VirtQueue::new(0).is_err());
    assert!(VirtQueue::new(3).is_err());
    assert!(VirtQueue::new(2048).is_err());
    let q = VirtQueue::new(256).unwrap();
    assert_eq!(q.desc_addr() % 4096, 0);
    assert_eq!(q.used_addr() % 4096, 0);
    assert_eq!(q.avail_addr(), q.desc_addr() + 4096);
    assert_eq!(q.used_addr(), q.desc_addr() + 8192);
}

#[test]
fn round_trip_with_chains() {
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    let head = q.add(&[tx(0x1000, 16), rx(0x2000, 512), rx(0x3000, 1)], 77).unwrap();
    assert_eq!(q.num_free(), 5);
    assert_eq!(dev.avail(&q), Some(head));
    let (a0, l0, f0, n0) = FakeDevice::desc(&q, head);
    assert_eq!((a0, l0, f0), (0x1000, 16, DESC_F_NEXT));
    let (a1, l1, f1, n1) = FakeDevice::desc(&q, n0);
    assert_eq!((a1, l1, f1), (0x2000, 512, DESC_F_NEXT | DESC_F_WRITE));
    let (a2, l2, f2, _) = FakeDevice::desc(&q, n1);
    assert_eq!((a2, l2, f2), (0x3000, 1, DESC_F_WRITE));
    assert_eq!(q.pop_used(), Ok(None));
    assert!(q.needs_notify());
    dev.complete(&q, head as u32, 513);
    assert!(q.has_used());
    assert_eq!(q.pop_used(), Ok(Some((77, 513))));
    assert_eq!(q.num_free(), 8);
    assert_eq!(q.pop_used(), Ok(None));
}

#[test]
fn full_queue_and_bad_requests() {
    let mut q = VirtQueue::new(4).unwrap();
    assert_eq!(q.add(&[], 0), Err(QueueError::BadRequest));
    assert_eq!(q.add(&[rx(0, 1); 5], 0), Err(QueueError::BadRequest));
    assert_eq!(q.add(&[rx(0, u32::MAX), rx(0, 1)], 0), Err(QueueError::BadRequest));
    assert_eq!(q.num_free(), 4);
    q.add(&[rx(0, 1); 3], 0).unwrap();
    assert_eq!(q.add(&[rx(0, 1); 2], 1), Err(QueueError::Full));
    q.add(&[rx(0, 1)], 1).unwrap();
    assert_eq!(q.add(&[rx(0, 1)], 2), Err(QueueError::Full));
}

#[test]
fn indexes_wrap_around_u16() {
    let mut q = VirtQueue::new(4).unwrap();
    let mut dev = FakeDevice::new();
    for i in 0..70_000usize {
        let h = q.add(&[rx(0x1000, 100)], i).unwrap();
        assert_eq!(dev.avail(&q), Some(h));
        dev.complete(&q, h as u32, (i % 101) as u32);
        assert_eq!(q.pop_used(), Ok(Some((i, (i % 101) as u32))));
    }
    assert_eq!(q.num_free(), 4);
}

#[test]
fn out_of_order_completion() {
    let mut q = VirtQueue::new(4).unwrap();
    let mut dev = FakeDevice::new();
    let a = q.add(&[rx(0x1000, 10)], 1).unwrap();
    let b = q.add(&[rx(0x2000, 10), rx(0x3000, 10)], 2).unwrap();
    dev.complete(&q, b as u32, 20);
    dev.complete(&q, a as u32, 0);
    assert_eq!(q.pop_used(), Ok(Some((2, 20))));
    assert_eq!(q.pop_used(), Ok(Some((1, 0))));
    assert_eq!(q.num_free(), 4);
}

fn broken(q: &mut VirtQueue) -> &'static str {
    match q.pop_used() {
        Err(QueueError::Broken(why)) => {
            // Stays broken, for every operation.
            assert_eq!(q.pop_used(), Err(QueueError::Broken(why)));
            assert_eq!(q.add(&[rx(0, 1)], 0), Err(QueueError::Broken(why)));
            assert!(!q.has_used());
            why
        }
        other => panic!("expected Broken, got {other:?}"),
    }
}

#[test]
fn hostile_used_index_ahead() {
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    q.add(&[rx(0x1000, 10)], 1).unwrap();
    dev.set_idx(&q, 2); // two completions for one request
    assert!(broken(&mut q).contains("index"));
    let mut q = VirtQueue::new(8).unwrap();
    dev.set_idx(&q, 0xffff); // nothing in flight at all
    assert!(broken(&mut q).contains("index"));
}

#[test]
fn hostile_used_id_out_of_range() {
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    q.add(&[rx(0x1000, 10)], 1).unwrap();
    dev.complete(&q, 8, 0);
    assert!(broken(&mut q).contains("out of range"));
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    q.add(&[rx(0x1000, 10)], 1).unwrap();
    dev.complete(&q, u32::MAX, 0);
    assert!(broken(&mut q).contains("out of range"));
}

#[test]
fn hostile_used_id_not_in_flight() {
    // An id that is a descriptor in the middle of a chain, not its head.
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    let h = q.add(&[rx(0x1000, 10), rx(0x2000, 10)], 1).unwrap();
    let (_, _, _, second) = FakeDevice::desc(&q, h);
    dev.complete(&q, second as u32, 0);
    assert!(broken(&mut q).contains("not a request"));
    // The same head completed twice.
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    let h = q.add(&[rx(0x1000, 10)], 1).unwrap();
    q.add(&[rx(0x2000, 10)], 2).unwrap();
    dev.complete(&q, h as u32, 1);
    assert_eq!(q.pop_used(), Ok(Some((1, 1))));
    dev.complete(&q, h as u32, 1);
    assert!(broken(&mut q).contains("not a request"));
    // A free descriptor that was never posted.
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    let h = q.add(&[rx(0x1000, 10)], 1).unwrap();
    dev.complete(&q, (h as u32 + 3) % 8, 1);
    assert!(broken(&mut q).contains("not a request"));
}

#[test]
fn hostile_used_length() {
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    let h = q.add(&[tx(0x1000, 16), rx(0x2000, 100), rx(0x3000, 1)], 1).unwrap();
    dev.complete(&q, h as u32, 102); // only 101 writable bytes
    assert!(broken(&mut q).contains("length"));
    // Transmit-only chains: the device may write nothing.
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    let h = q.add(&[tx(0x1000, 1500)], 1).unwrap();
    dev.complete(&q, h as u32, 1);
    assert!(broken(&mut q).contains("length"));
    let mut q = VirtQueue::new(8).unwrap();
    let mut dev = FakeDevice::new();
    let h = q.add(&[tx(0x1000, 1500)], 1).unwrap();
    dev.complete(&q, h as u32, 0);
    assert_eq!(q.pop_used(), Ok(Some((1, 0))));
}

#[test]
fn scribbled_descriptors_do_not_confuse_the_free_list() {
    // The device overwrites the descriptor table (next pointers, flags):
    // the driver frees chains from its own shadow, so the free list stays exact.
    let mut q = VirtQueue::new(4).unwrap();
    let mut dev = FakeDevice::new();
    let h = q.add(&[rx(0x1000, 10), rx(0x2000, 10), rx(0x3000, 10)], 5).unwrap();
    q.raw().fill(0, 16 * 4, 0xff);
    dev.complete(&q, h as u32, 30);
    assert_eq!(q.pop_used(), Ok(Some((5, 30))));
    assert_eq!(q.num_free(), 4);
    let mut ids: Vec<u16> = q.free.clone();
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2, 3]);
}

#[test]
fn notification_and_interrupt_flags() {
    let mut q = VirtQueue::new(4).unwrap();
    let (avail_off, used_off) = q.offsets();
    q.suppress_interrupts(true);
    assert_eq!(q.raw().read::<u16>(avail_off), AVAIL_F_NO_INTERRUPT);
    q.raw().write::<u16>(used_off, USED_F_NO_NOTIFY);
    assert!(!q.needs_notify());
}
