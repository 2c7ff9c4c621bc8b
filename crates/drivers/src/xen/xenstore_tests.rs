//! The xenstore client against a fake xenstored that can misbehave.
use super::*;
use alloc::collections::BTreeMap;
use core::cell::{Cell, RefCell};

type Page = &'static DmaRegion;

/// A zeroed ring page shared by the client and the fake xenstored.
fn new_page() -> Page {
    Box::leak(Box::new(DmaRegion::alloc(4096, 4096).unwrap()))
}
fn get(p: Page, off: usize) -> u32 {
    p.read::<u32>(off)
}
fn set(p: Page, off: usize, v: u32) {
    p.write::<u32>(off, v)
}

fn message(ty: u32, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    for v in [ty, id, 0, payload.len() as u32] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(payload);
    m
}

/// A xenstored serving one domain's ring, with knobs for misbehaviour.
struct FakeXs {
    page: Page,
    req_cons: u32,
    rsp_prod: u32,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    store: BTreeMap<String, String>,
    watches: Vec<(String, String)>,
    /// Bytes written into the response ring per step.
    chunk: usize,
    /// Read requests but never answer.
    silent: bool,
    /// Keep replies here instead of sending them.
    hold: bool,
    held: Vec<u8>,
    /// A write's watch events go out before its reply.
    events_first: bool,
    /// Added to the request id of replies.
    id_skew: u32,
}

impl FakeXs {
    fn step(&mut self) {
        let prod = get(self.page, REQ_PROD);
        while self.req_cons != prod {
            let b = self.page.read::<u8>(REQ + (self.req_cons % RING_SIZE) as usize);
            self.inbuf.push(b);
            self.req_cons = self.req_cons.wrapping_add(1);
        }
        set(self.page, REQ_CONS, self.req_cons);
        while self.inbuf.len() >= HEADER {
            let len = u32::from_le_bytes(self.inbuf[12..16].try_into().unwrap()) as usize;
            if self.inbuf.len() < HEADER + len {
                break;
            }
            let m: Vec<u8> = self.inbuf.drain(..HEADER + len).collect();
            let ty = u32::from_le_bytes(m[0..4].try_into().unwrap());
            let id = u32::from_le_bytes(m[4..8].try_into().unwrap());
            if !self.silent {
                self.handle(ty, id, &m[HEADER..]);
            }
        }
        let used = self.rsp_prod.wrapping_sub(get(self.page, RSP_CONS));
        let n = ((RING_SIZE - used) as usize).min(self.chunk).min(self.out.len());
        for _ in 0..n {
            let b = self.out.pop_front().unwrap();
            self.page.write::<u8>(RSP + (self.rsp_prod % RING_SIZE) as usize, b);
            self.rsp_prod = self.rsp_prod.wrapping_add(1);
        }
        set(self.page, RSP_PROD, self.rsp_prod);
    }

    fn reply(&mut self, ty: u32, id: u32, payload: &[u8]) {
        let m = message(ty, id.wrapping_add(self.id_skew), payload);
        if self.hold { self.held.extend(m) } else { self.out.extend(m) }
    }

    fn event(&mut self, path: &str, token: &str) {
        let p = alloc::format!("{path}\0{token}\0");
        self.out.extend(message(XS_WATCH_EVENT, 0, p.as_bytes()));
    }

    /// Another domain (the backend) changes a node.
    fn external_write(&mut self, path: &str, value: &str) {
        self.store.insert(path.into(), value.into());
        self.fire(path);
    }

    fn fire(&mut self, path: &str) {
        let hits: Vec<String> = self
            .watches
            .iter()
            .filter(|(w, _)| path == w || path.starts_with(&alloc::format!("{w}/")))
            .map(|(_, t)| t.clone())
            .collect();
        for t in hits {
            self.event(path, &t);
        }
    }

    fn handle(&mut self, ty: u32, id: u32, payload: &[u8]) {
        let s = String::from_utf8_lossy(payload).into_owned();
        let mut parts = s.splitn(2, '\0');
        let path = parts.next().unwrap_or("").to_string();
        let rest = parts.next().unwrap_or("").to_string();
        match ty {
            XS_READ => match self.store.get(&path).cloned() {
                Some(v) => self.reply(ty, id, v.as_bytes()),
                None => self.reply(XS_ERROR, id, b"ENOENT\0"),
            },
            XS_WRITE => {
                self.store.insert(path.clone(), rest);
                if self.events_first {
                    self.fire(&path);
                    self.reply(ty, id, b"OK\0");
                } else {
                    self.reply(ty, id, b"OK\0");
                    self.fire(&path);
                }
            }
            XS_DIRECTORY => {
                let prefix = alloc::format!("{path}/");
                let mut names: Vec<String> = self
                    .store
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(|r| r.split('/').next().unwrap().to_string())
                    .collect();
                names.dedup();
                if names.is_empty() && !self.store.contains_key(&path) {
                    self.reply(XS_ERROR, id, b"ENOENT\0");
                } else {
                    let mut p = Vec::new();
                    for n in names {
                        p.extend_from_slice(n.as_bytes());
                        p.push(0);
                    }
                    self.reply(ty, id, &p);
                }
            }
            XS_WATCH => {
                let token = rest.trim_end_matches('\0').to_string();
                self.watches.push((path.clone(), token.clone()));
                self.reply(ty, id, b"OK\0");
                self.event(&path, &token);
            }
            XS_UNWATCH => {
                let token = rest.trim_end_matches('\0').to_string();
                self.watches.retain(|(p, t)| !(p == &path && t == &token));
                self.reply(ty, id, b"OK\0");
            }
            _ => self.reply(XS_ERROR, id, b"ENOSYS\0"),
        }
    }
}

struct FakeEnv {
    xs: RefCell<FakeXs>,
    clock: Cell<u64>,
    kicks: Cell<u32>,
}

impl Env for FakeEnv {
    fn now(&self) -> u64 {
        self.clock.get()
    }
    fn kick(&self) {
        self.kicks.set(self.kicks.get() + 1);
    }
    fn wait_until(&self, cond: &mut dyn FnMut() -> bool, deadline: u64) -> bool {
        loop {
            if cond() {
                return true;
            }
            if self.clock.get() >= deadline {
                return false;
            }
            self.xs.borrow_mut().step();
            self.clock.set(self.clock.get() + 10_000_000);
        }
    }
    fn wake_all(&self) {}
}

/// A client on a fresh ring whose four indexes all start at `start`.
fn setup(start: u32) -> Client<FakeEnv> {
    let p = new_page();
    for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
        set(p, off, start);
    }
    let xs = FakeXs {
        page: p,
        req_cons: start,
        rsp_prod: start,
        inbuf: Vec::new(),
        out: VecDeque::new(),
        store: BTreeMap::new(),
        watches: Vec::new(),
        chunk: usize::MAX,
        silent: false,
        hold: false,
        held: Vec::new(),
        events_first: false,
        id_skew: 0,
    };
    let env = FakeEnv { xs: RefCell::new(xs), clock: Cell::new(0), kicks: Cell::new(0) };
    Client::new(p, env)
}

/// The id the client's next request gets.
fn next_id(c: &Client<FakeEnv>) -> u32 {
    c.conn.lock().next_id
}

fn xs(c: &Client<FakeEnv>) -> core::cell::RefMut<'_, FakeXs> {
    c.env().xs.borrow_mut()
}

#[test]
fn read_write_directory() {
    let c = setup(0);
    c.write("device/vif/0/state", "1").unwrap();
    c.write("device/vif/0/mac", "00:16:3e:00:00:01").unwrap();
    c.write("device/vbd/768/state", "1").unwrap();
    assert_eq!(c.read("device/vif/0/mac").unwrap(), "00:16:3e:00:00:01");
    assert_eq!(c.directory("device").unwrap(), ["vbd", "vif"]);
    assert_eq!(c.directory("device/vif/0").unwrap(), ["mac", "state"]);
    assert_eq!(c.read_int::<u32>("device/vif/0/state").unwrap(), 1);
    assert!(c.env().kicks.get() > 0);
}

#[test]
fn error_replies() {
    let c = setup(0);
    let e = c.read("nothing/here").unwrap_err();
    assert_eq!(e, Error::Remote("ENOENT"));
    assert!(e.is_not_found());
    assert!(c.directory("nothing").unwrap_err().is_not_found());
    let id = next_id(&c);
    xs(&c).out.extend(message(XS_ERROR, id, b"EWHATEVER\0"));
    assert_eq!(c.read("x").unwrap_err(), Error::Remote("EUNKNOWN"));
}

#[test]
fn long_messages_cross_the_wrap_in_pieces() {
    let c = setup(u32::MAX - 700); // free-running indexes wrap too
    xs(&c).chunk = 97;
    let long: String = (0..3000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    c.write("data/long", &long).unwrap();
    assert_eq!(c.read("data/long").unwrap(), long);
    for i in 0..20 {
        c.write(&alloc::format!("data/k{i}"), &alloc::format!("{i}")).unwrap();
    }
    assert_eq!(c.directory("data").unwrap().len(), 21);
}

#[test]
fn oversized_length_breaks_the_connection() {
    let c = setup(0);
    c.write("a", "1").unwrap();
    xs(&c).out.extend(message(XS_READ, 2, &[]).iter().take(12).copied());
    xs(&c).out.extend(5000u32.to_le_bytes());
    assert!(matches!(c.read("a"), Err(Error::Broken(_))));
    assert!(matches!(c.read("a"), Err(Error::Broken(_))));
}

#[test]
fn response_index_out_of_range_breaks_the_connection() {
    let c = setup(0);
    c.write("a", "1").unwrap();
    let cons = get(xs(&c).page, RSP_CONS);
    set(xs(&c).page, RSP_PROD, cons.wrapping_add(1025));
    xs(&c).rsp_prod = cons.wrapping_add(1025);
    assert!(matches!(c.read("a"), Err(Error::Broken(_))));
}

#[test]
fn request_index_out_of_range_breaks_the_connection() {
    let c = setup(0);
    c.write("a", "1").unwrap();
    set(xs(&c).page, REQ_CONS, 0x8000_0000);
    xs(&c).silent = true;
    assert!(matches!(c.read("a"), Err(Error::Broken(_))));
}

#[test]
fn reply_with_a_foreign_id_is_an_error_but_not_fatal() {
    let c = setup(0);
    c.write("a", "1").unwrap();
    xs(&c).id_skew = 5;
    assert_eq!(c.read("a"), Err(Error::Malformed("reply to a request that was not made")));
    xs(&c).id_skew = 0;
    assert_eq!(c.read("a").unwrap(), "1");
}

#[test]
fn late_reply_after_a_timeout_is_dropped() {
    let c = setup(0);
    c.write("a", "1").unwrap();
    xs(&c).hold = true;
    assert_eq!(c.read("a"), Err(Error::Timeout));
    assert!(c.env().clock.get() >= TIMEOUT_NS);
    let mut x = xs(&c);
    x.hold = false;
    let held = core::mem::take(&mut x.held);
    x.out.extend(held);
    drop(x);
    c.write("a", "2").unwrap();
    assert_eq!(c.read("a").unwrap(), "2");
}

#[test]
fn silent_xenstored_times_out() {
    let c = setup(0);
    xs(&c).silent = true;
    assert_eq!(c.write("a", "1"), Err(Error::Timeout));
}

#[test]
fn bad_strings_are_refused() {
    let c = setup(0);
    xs(&c).store.insert("bin".into(), String::new());
    // Each injected reply comes before the fake's own, which then arrives
    // late (after the next request went out) and is dropped.
    let inject = |ty: u32, payload: &[u8]| {
        let id = next_id(&c);
        xs(&c).out.extend(message(ty, id, payload));
    };
    inject(XS_READ, &[0xff, 0xfe]);
    assert_eq!(c.read("bin"), Err(Error::Malformed("string is not UTF-8")));
    inject(XS_READ, b"a\0b");
    assert_eq!(c.read("bin"), Err(Error::Malformed("NUL inside a string")));
    inject(XS_DIRECTORY, b"a\0\0b\0");
    assert_eq!(c.directory("bin"), Err(Error::Malformed("empty directory entry")));
    inject(XS_WRITE, b"OK\0");
    assert_eq!(c.read("bin"), Err(Error::Malformed("reply of another type")));
    xs(&c).store.insert("v".into(), " 42\n".into());
    assert_eq!(c.read_int::<u32>("v"), Ok(42));
    xs(&c).store.insert("v".into(), "x".into());
    assert_eq!(c.read_int::<u32>("v"), Err(Error::BadValue));
    assert_eq!(c.read("a\0b"), Err(Error::BadRequest));
    assert_eq!(c.write("big", &"x".repeat(PAYLOAD_MAX)), Err(Error::BadRequest));
}

#[test]
fn watch_events_interleaved_with_replies_are_kept() {
    let c = setup(1000);
    let w = c.watch("backend/vif/1/0/state").unwrap();
    // The initial event xenstored sends on registration.
    assert_eq!(w.wait(u64::MAX).unwrap(), "backend/vif/1/0/state");
    let deadline = c.env().clock.get() + 50_000_000;
    assert_eq!(w.wait(deadline), Err(Error::Timeout));

    // Events before and after the replies of other requests.
    xs(&c).events_first = true;
    c.write("backend/vif/1/0/state", "2").unwrap();
    xs(&c).external_write("backend/vif/1/0/state", "4");
    xs(&c).external_write("elsewhere", "1");
    assert_eq!(c.read("backend/vif/1/0/state").unwrap(), "4");
    assert_eq!(w.wait(u64::MAX).unwrap(), "backend/vif/1/0/state");
    assert_eq!(w.wait(u64::MAX).unwrap(), "backend/vif/1/0/state");
    let deadline = c.env().clock.get() + 50_000_000;
    assert_eq!(w.wait(deadline), Err(Error::Timeout));

    drop(w);
    assert!(xs(&c).watches.is_empty());
    assert!(c.conn.lock().watches.is_empty());
}

#[test]
fn watch_queue_overflow_still_wakes() {
    let c = setup(0);
    let w = c.watch("node").unwrap();
    w.wait(u64::MAX).unwrap();
    // 25 short events, all in the ring before the client looks.
    for i in 0..25 {
        xs(&c).external_write(&alloc::format!("node/{i}"), "x");
    }
    xs(&c).step();
    let mut got = 0;
    let deadline = c.env().clock.get() + 1_000_000_000;
    while w.wait(deadline).is_ok() {
        got += 1;
    }
    assert_eq!(got, WATCH_QUEUE + 1); // the queue, then one "it fired"
}

#[test]
fn unknown_or_malformed_watch_events_are_ignored() {
    let c = setup(0);
    xs(&c).event("some/path", "not-ours");
    xs(&c).out.extend(message(XS_WATCH_EVENT, 0, b"no-token"));
    xs(&c).out.extend(message(XS_WATCH_EVENT, 0, &[0xff, 0, 0xfe, 0]));
    c.write("a", "1").unwrap();
    assert_eq!(c.read("a").unwrap(), "1");
}

#[test]
fn ring_indexes_out_of_range_at_start() {
    let p = new_page();
    set(p, RSP_PROD, 5000);
    let mut conn = Conn::new(p);
    assert!(matches!(conn.pump(), Err(Error::Broken(_))));
}
