//! Property test: a hostile xenstored (arbitrary reply headers, types, ids,
//! lengths, payload bytes and strings, raw garbage, index jumps) never
//! panics the client, never makes it write outside its request ring and
//! its own two indexes, and a broken ring stays broken.
use super::*;
use core::cell::{Cell, RefCell};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Act {
    /// Raw bytes into the response ring.
    Raw(Vec<u8>),
    /// A message: type, id (`None`: the id of the request being served),
    /// length field (`None`: the true length), payload.
    Msg { ty: u32, id: Option<u32>, len: Option<u32>, payload: Vec<u8> },
    /// Sets the response producer index to anything.
    RspProd(u32),
    /// Sets the request consumer index to anything.
    ReqCons(u32),
    /// Consumes the requests (and does nothing else this step).
    Consume,
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // Strings: NUL-separated words, sometimes not UTF-8.
        prop::collection::vec(prop_oneof![Just(0u8), 0x20u8..0x7f, Just(0xc3), Just(0xff)], 0..128),
        prop::collection::vec(any::<u8>(), 0..5000),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    let ty = prop_oneof![
        Just(XS_READ),
        Just(XS_WRITE),
        Just(XS_DIRECTORY),
        Just(XS_ERROR),
        Just(XS_WATCH),
        Just(XS_UNWATCH),
        Just(XS_WATCH_EVENT),
        any::<u32>(),
    ];
    let id = prop_oneof![4 => Just(None), 1 => any::<u32>().prop_map(Some)];
    let len = prop_oneof![6 => Just(None), 1 => any::<u32>().prop_map(Some), 1 => (0u32..5000).prop_map(Some)];
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Act::Raw),
        8 => (ty, id, len, payload()).prop_map(|(ty, id, len, payload)| Act::Msg { ty, id, len, payload }),
        1 => any::<u32>().prop_map(Act::RspProd),
        1 => any::<u32>().prop_map(Act::ReqCons),
        2 => Just(Act::Consume),
    ]
}

struct Hostile {
    page: &'static DmaRegion,
    acts: Vec<Act>,
    next: usize,
    req_cons: u32,
    rsp_prod: u32,
    inbuf: Vec<u8>,
    /// Id of the last complete request read.
    last_id: u32,
    out: VecDeque<u8>,
    /// What the response ring must hold: the marker, or what we wrote.
    shadow: Vec<u8>,
}

impl Hostile {
    fn step(&mut self) {
        // Read requests like a real xenstored (to learn their ids).
        let prod = self.page.read::<u32>(REQ_PROD);
        let mut n = 0;
        while self.req_cons != prod && n < RING_SIZE {
            self.inbuf.push(self.page.read::<u8>(REQ + (self.req_cons % RING_SIZE) as usize));
            self.req_cons = self.req_cons.wrapping_add(1);
            n += 1;
        }
        self.page.write::<u32>(REQ_CONS, self.req_cons);
        while self.inbuf.len() >= HEADER {
            let len = u32::from_le_bytes(self.inbuf[12..16].try_into().unwrap()) as usize;
            if self.inbuf.len() < HEADER + len {
                break;
            }
            self.last_id = u32::from_le_bytes(self.inbuf[4..8].try_into().unwrap());
            self.inbuf.drain(..HEADER + len);
        }
        if let Some(a) = self.acts.get(self.next).cloned() {
            self.next += 1;
            match a {
                Act::Raw(b) => self.out.extend(b),
                Act::Msg { ty, id, len, payload } => {
                    let len = len.unwrap_or(payload.len() as u32);
                    for v in [ty, id.unwrap_or(self.last_id), 0, len] {
                        self.out.extend(v.to_le_bytes());
                    }
                    self.out.extend(payload);
                }
                Act::RspProd(v) => {
                    self.rsp_prod = v;
                    self.page.write::<u32>(RSP_PROD, v);
                }
                Act::ReqCons(v) => {
                    self.req_cons = v;
                    self.page.write::<u32>(REQ_CONS, v);
                }
                Act::Consume => {}
            }
        }
        // Write what fits, as far as the (claimed) consumer index allows.
        let used = self.rsp_prod.wrapping_sub(self.page.read::<u32>(RSP_CONS));
        let room = RING_SIZE.saturating_sub(used) as usize;
        for _ in 0..room.min(self.out.len()) {
            let b = self.out.pop_front().unwrap();
            self.page.write::<u8>(RSP + (self.rsp_prod % RING_SIZE) as usize, b);
            self.shadow[(self.rsp_prod % RING_SIZE) as usize] = b;
            self.rsp_prod = self.rsp_prod.wrapping_add(1);
        }
        self.page.write::<u32>(RSP_PROD, self.rsp_prod);
    }
}

struct Env2 {
    xs: RefCell<Hostile>,
    clock: Cell<u64>,
}

impl Env for Env2 {
    fn now(&self) -> u64 {
        self.clock.get()
    }
    fn kick(&self) {}
    fn wait_until(&self, cond: &mut dyn FnMut() -> bool, deadline: u64) -> bool {
        loop {
            if cond() {
                return true;
            }
            if self.clock.get() >= deadline {
                return false;
            }
            self.xs.borrow_mut().step();
            self.clock.set(self.clock.get() + 1_000_000_000);
        }
    }
    fn wake_all(&self) {}
}

#[derive(Clone, Debug)]
enum Call {
    Read,
    Write,
    Directory,
    Watch,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn hostile_xenstored_never_panics_or_corrupts(
        acts in prop::collection::vec(act(), 0..40),
        calls in prop::collection::vec(prop_oneof![Just(Call::Read), Just(Call::Write), Just(Call::Directory), Just(Call::Watch)], 1..12),
    ) {
        let page: &'static DmaRegion = Box::leak(Box::new(DmaRegion::alloc(4096, 4096).unwrap()));
        // Everything the client must leave alone gets a marker byte.
        page.fill(RSP, 4096 - RSP, 0x5a);
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            page.write::<u32>(off, 0);
        }
        let xs = Hostile { page, acts, next: 0, req_cons: 0, rsp_prod: 0, inbuf: Vec::new(), last_id: 0, out: VecDeque::new(), shadow: vec![0x5a; RING_SIZE as usize] };
        let c = Client::new(page, Env2 { xs: RefCell::new(xs), clock: Cell::new(0) });
        let mut broken: Option<&'static str> = None;
        for call in calls {
            let r: Result<(), Error> = match call {
                Call::Read => c.read("device/vif/0/state").map(|_| ()),
                Call::Write => c.write("device/vif/0/state", "4").map(|_| ()),
                Call::Directory => c.directory("device/vif").map(|d| {
                    for name in d {
                        assert!(!name.contains('\0'));
                    }
                }),
                Call::Watch => c.watch("backend").and_then(|w| {
                    let now = c.env().now();
                    w.wait(now + 3_000_000_000).map(|_| ())
                }),
            };
            if let Some(why) = broken {
                prop_assert!(matches!(r, Err(Error::Broken(w)) if w == why), "broken ring answered {:?}", r);
            } else if let Err(Error::Broken(why)) = r {
                broken = Some(why);
            }
        }
        // The client wrote nothing but its request ring and its own indexes:
        // the response ring holds only the marker or what the fake wrote.
        let xs = c.env().xs.borrow();
        for i in 0..RING_SIZE as usize {
            prop_assert_eq!(page.read::<u8>(RSP + i), xs.shadow[i], "client wrote into the response ring at {}", i);
        }
        for off in RSP_PROD + 4..4096 {
            prop_assert_eq!(page.read::<u8>(off), 0x5a, "client wrote past the indexes at {:#x}", off);
        }
    }
}
