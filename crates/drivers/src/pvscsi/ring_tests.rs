//! The rings against a fake device that can misbehave.
use super::*;

/// The device side: reads requests, writes completions.
struct FakeDevice {
    req_cons: u32,
    cmp_prod: u32,
}

impl FakeDevice {
    fn new() -> Self {
        Self { req_cons: 0, cmp_prod: 0 }
    }
    /// Consumes one request: (context, target, cdb, flags, data_len).
    fn take(&mut self, r: &Rings) -> Option<(u64, u8, Vec<u8>, u32, u64)> {
        let (st, req, _) = r.pages();
        if st.read::<u32>(RS_REQ_PROD) == self.req_cons {
            return None;
        }
        let e = (self.req_cons % REQ_ENTRIES) as usize * REQ_SIZE;
        self.req_cons = self.req_cons.wrapping_add(1);
        st.write::<u32>(RS_REQ_CONS, self.req_cons);
        let n = req.read::<u8>(e + REQ_CDB_LEN) as usize;
        let mut cdb = vec![0u8; n];
        req.read_bytes(e + REQ_CDB, &mut cdb);
        let mut lun = [0xffu8; 8];
        req.read_bytes(e + REQ_LUN, &mut lun);
        assert_eq!(lun, [0; 8]);
        Some((
            req.read::<u64>(e + REQ_CONTEXT),
            req.read::<u8>(e + REQ_TARGET),
            cdb,
            req.read::<u32>(e + REQ_FLAGS),
            req.read::<u64>(e + REQ_DATA_LEN),
        ))
    }
    /// Writes a completion in the next slot without publishing it.
    fn put(&mut self, r: &Rings, context: u64, data_len: u64, sense_len: u32, host: u16, scsi: u16) {
        let (_, _, cmp) = r.pages();
        let e = (self.cmp_prod % CMP_ENTRIES) as usize * CMP_SIZE;
        cmp.write::<u64>(e + CMP_CONTEXT, context);
        cmp.write::<u64>(e + CMP_DATA_LEN, data_len);
        cmp.write::<u32>(e + CMP_SENSE_LEN, sense_len);
        cmp.write::<u16>(e + CMP_HOST_STATUS, host);
        cmp.write::<u16>(e + CMP_SCSI_STATUS, scsi);
    }
    fn publish(&mut self, r: &Rings, prod: u32) {
        self.cmp_prod = prod;
        r.pages().0.write::<u32>(RS_CMP_PROD, prod);
    }
    fn complete(&mut self, r: &Rings, context: u64, data_len: u64) {
        self.put(r, context, data_len, 0, 0, 0);
        let p = self.cmp_prod.wrapping_add(1);
        self.publish(r, p);
    }
}

fn req(context: u64, cdb: &[u8]) -> Request<'_> {
    Request {
        context,
        target: 3,
        cdb,
        flags: FLAG_DIR_TOHOST,
        data_addr: 0x1000,
        data_len: 512,
        sense_addr: 0x2000,
        sense_len: 64,
    }
}

#[test]
fn descriptor_sizes_match_the_header() {
    // Offsets + sizes of the last fields: reqDesc ends its named fields at
    // vcpuHint (68) + unused[59] = 128; cmpDesc at _pad[2] (24 + 8) = 32.
    assert_eq!(REQ_TARGET + 1 + 1 + 59, REQ_SIZE);
    assert_eq!(CMP_SCSI_STATUS + 2 + 8, CMP_SIZE);
    assert_eq!((REQ_ENTRIES, CMP_ENTRIES), (32, 128));
    assert_eq!(SETUP_RINGS_WORDS, 132);
}

#[test]
fn setup_words_name_the_pages() {
    let r = Rings::new().unwrap();
    let w = r.setup_words();
    let (st, req, cmp) = r.pages();
    let at = |i: usize| w[i] as u64 | (w[i + 1] as u64) << 32;
    assert_eq!((w[0], w[1]), (1, 1));
    assert_eq!(at(2), st.dma_addr(0) >> 12);
    assert_eq!(at(4), req.dma_addr(0) >> 12);
    assert_eq!(at(68), cmp.dma_addr(0) >> 12);
    assert!(w[6..68].iter().all(|&x| x == 0) && w[70..].iter().all(|&x| x == 0));
}

#[test]
fn round_trip_and_wrap() {
    let mut r = Rings::new().unwrap();
    let mut d = FakeDevice::new();
    // Several times around both rings.
    for i in 1..=300u64 {
        let cdb = [0x28, 0, 0, 0, 0, i as u8, 0, 0, 1, 0];
        r.push(&req(i, &cdb)).unwrap();
        assert_eq!(r.pop(i, 512, 64), Ok(None));
        let (ctx, target, got, flags, len) = d.take(&r).unwrap();
        assert_eq!((ctx, target, got.as_slice(), flags, len), (i, 3, &cdb[..], FLAG_DIR_TOHOST, 512));
        d.complete(&r, i, 512);
        let c = r.pop(i, 512, 64).unwrap().unwrap();
        assert_eq!(c, Completion { data_len: 512, sense_len: 0, host_status: 0, scsi_status: 0 });
        assert_eq!(r.pages().0.read::<u32>(RS_CMP_CONS), i as u32);
    }
}

#[test]
fn indexes_wrap_at_u32() {
    let mut r = Rings::new().unwrap();
    let mut d = FakeDevice::new();
    r.req_prod = u32::MAX;
    r.cmp_cons = u32::MAX;
    d.req_cons = u32::MAX;
    d.cmp_prod = u32::MAX;
    r.pages().0.write::<u32>(RS_REQ_CONS, u32::MAX);
    r.pages().0.write::<u32>(RS_CMP_PROD, u32::MAX);
    for i in 1..=3u64 {
        r.push(&req(i, &[0])).unwrap();
        assert_eq!(d.take(&r).unwrap().0, i);
        d.complete(&r, i, 0);
        assert!(r.pop(i, 512, 64).unwrap().is_some());
    }
}

#[test]
fn hostile_request_consumer() {
    let mut r = Rings::new().unwrap();
    r.push(&req(1, &[0])).unwrap();
    // Consumer ahead of the producer.
    r.pages().0.write::<u32>(RS_REQ_CONS, 5);
    assert_eq!(r.push(&req(2, &[0])), Err(RingError("request consumer index out of range")));
    // A device that never consumes: the ring fills, then refuses.
    let mut r = Rings::new().unwrap();
    for i in 0..REQ_ENTRIES as u64 {
        r.push(&req(i + 1, &[0])).unwrap();
    }
    assert_eq!(r.push(&req(99, &[0])), Err(RingError("request ring full")));
}

#[test]
fn bad_cdb_lengths_refused() {
    let mut r = Rings::new().unwrap();
    assert!(r.push(&req(1, &[])).is_err());
    assert!(r.push(&req(1, &[0; 17])).is_err());
    assert!(r.push(&req(1, &[0; 16])).is_ok());
}

#[test]
fn hostile_completions() {
    type Case = (fn(&mut FakeDevice, &Rings), &'static str);
    let cases: [Case; 6] = [
        (|d, r| d.complete(r, 7, 0), "completion for a request that is not outstanding"),
        (|d, r| d.complete(r, 0, 0), "completion for a request that is not outstanding"),
        (|d, r| d.complete(r, 1, 513), "completion reports more data than requested"),
        (|d, r| d.complete(r, 1, u64::MAX), "completion reports more data than requested"),
        (
            |d, r| {
                d.put(r, 1, 0, 65, 0, 2);
                d.publish(r, 1);
            },
            "completion reports more sense data than the buffer holds",
        ),
        (
            |d, r| {
                d.put(r, 1, 0, 0, 0, 0);
                d.publish(r, 2);
            },
            "completion producer index out of range",
        ),
    ];
    for (f, why) in cases {
        let mut r = Rings::new().unwrap();
        let mut d = FakeDevice::new();
        r.push(&req(1, &[0])).unwrap();
        d.take(&r).unwrap();
        f(&mut d, &r);
        assert_eq!(r.pop(1, 512, 64), Err(RingError(why)));
    }
    // A producer index that went backwards (u32::MAX ahead).
    let mut r = Rings::new().unwrap();
    r.push(&req(1, &[0])).unwrap();
    r.pages().0.write::<u32>(RS_CMP_PROD, u32::MAX);
    assert_eq!(r.pop(1, 512, 64), Err(RingError("completion producer index out of range")));
}

#[test]
fn random_device_writes_never_panic() {
    // Whatever the device scribbles over the state and completion pages,
    // `pop` returns a value or an error; accepted completions are in range.
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let mut r = Rings::new().unwrap();
        r.push(&req(1, &[0x28; 10])).unwrap();
        let (st, _, cmp) = r.pages();
        for _ in 0..8 {
            let off = (next() % (PAGE as u64 / 4)) as usize * 4;
            cmp.write::<u32>(off, next() as u32);
        }
        st.write::<u32>(RS_CMP_PROD, (next() % 4) as u32);
        st.write::<u32>(RS_REQ_CONS, next() as u32);
        if let Ok(Some(c)) = r.pop(1, 512, 64) {
            assert!(c.data_len <= 512 && c.sense_len <= 64);
        }
        let _ = r.push(&req(2, &[0]));
    }
}
