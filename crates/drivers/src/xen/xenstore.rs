//! The xenstore client (io/xs_wire.h): requests and replies over the
//! shared ring page `struct xenstore_domain_interface` (1 KiB request ring,
//! 1 KiB response ring, four u32 indexes), kicked through an event channel.
//!
//! Messages are a 16-byte header `{type, req_id, tx_id, len}` and `len`
//! (<= 4096) payload bytes; they may be larger than a ring and are
//! streamed through it. One request is in flight at a time (callers from
//! several threads queue). Watch events arrive on the same ring, between
//! replies; they are queued per watch, never dropped unless a watch has
//! 16 events waiting (then it is marked as having fired, which is all a
//! waiter needs: it re-reads what it watches).
//!
//! xenstored is not trusted: indexes are checked (at most 1024 bytes
//! outstanding each way), lengths (<= 4096), reply ids, types and strings.
//! A ring-level violation drops the connection (every later call gets
//! `Broken`); a bad reply gets its request an error.
//!
//! [`Client`] holds the protocol and is generic over [`Env`] (clock,
//! notify, sleep), so the host tests run it against a fake xenstored. The
//! guest has one global client ([`init`](init()), [`read`](read()), [`write`](write()), ...) whose
//! event-channel handler wakes waiting threads, which then read the ring.
#![deny(unsafe_code)]
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering, fence};
use unikit_io::{Broken, DmaRegion};

pub const XS_DIRECTORY: u32 = 1;
pub const XS_READ: u32 = 2;
pub const XS_WATCH: u32 = 4;
pub const XS_UNWATCH: u32 = 5;
pub const XS_WRITE: u32 = 11;
pub const XS_WATCH_EVENT: u32 = 15;
pub const XS_ERROR: u32 = 16;

pub const RING_SIZE: u32 = 1024;
/// Largest payload of one message (XENSTORE_PAYLOAD_MAX).
pub const PAYLOAD_MAX: usize = 4096;
const HEADER: usize = 16;
// struct xenstore_domain_interface
const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;

/// How long one request (queueing included) may take.
pub const TIMEOUT_NS: u64 = 10_000_000_000;
/// Events kept per watch.
const WATCH_QUEUE: usize = 16;

/// Error names xenstored sends in XS_ERROR replies (xs_wire.h).
#[rustfmt::skip]
const ERRORS: [&str; 16] = [
    "EINVAL", "EACCES", "EEXIST", "EISDIR", "ENOENT", "ENOMEM", "ENOSPC", "EIO",
    "ENOTEMPTY", "ENOSYS", "EROFS", "EBUSY", "EAGAIN", "EISCONN", "E2BIG", "EPERM",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No xenstore ring (yet).
    NotReady,
    /// No reply (or no room in the ring, or no event) before the deadline.
    Timeout,
    /// The request is larger than a message can be, or has a NUL in a path.
    BadRequest,
    /// xenstored refused: "ENOENT", "EACCES", ...
    Remote(&'static str),
    /// A reply that does not parse (bad UTF-8, wrong type, wrong id).
    Malformed(&'static str),
    /// The ring protocol was violated; the connection is no longer used.
    Broken(&'static str),
    /// The value read does not parse as what the caller asked for.
    BadValue,
}

impl Error {
    pub fn is_not_found(&self) -> bool {
        *self == Error::Remote("ENOENT")
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::NotReady => f.write_str("xenstore not available"),
            Error::Timeout => f.write_str("xenstore timed out"),
            Error::BadRequest => f.write_str("bad xenstore request"),
            Error::Remote(e) => write!(f, "xenstore: {e}"),
            Error::Malformed(why) => write!(f, "bad xenstore reply: {why}"),
            Error::Broken(why) => write!(f, "xenstore ring broken: {why}"),
            Error::BadValue => f.write_str("unexpected xenstore value"),
        }
    }
}

/// One message read from the ring.
#[derive(Debug)]
pub struct Msg {
    pub ty: u32,
    pub req_id: u32,
    pub payload: Vec<u8>,
}

struct WatchSlot {
    token: String,
    path: String,
    events: VecDeque<String>,
    /// Events were dropped since the last wait (queue full).
    overflowed: bool,
}

/// The connection state: our ring indexes, the reply being assembled, the
/// request in flight and the watch queues. Host-testable; no locking.
pub struct Conn {
    page: &'static DmaRegion,
    /// Our indexes; the copies in the page are written, never read back.
    req_prod: u32,
    rsp_cons: u32,
    hdr: [u8; HEADER],
    hdr_got: usize,
    body: Vec<u8>,
    body_len: usize,
    next_id: u32,
    next_token: u32,
    /// Request being served, and its reply once complete.
    pending: Option<u32>,
    reply: Option<Result<Msg, Error>>,
    busy: bool,
    watches: Vec<WatchSlot>,
    broken: Broken,
}

impl Conn {
    /// The connection over `page`, the xenstore ring page (4 KiB; a shorter
    /// region is refused as broken).
    pub fn new(page: &'static DmaRegion) -> Self {
        let mut c = Self {
            page,
            req_prod: 0,
            rsp_cons: 0,
            hdr: [0; HEADER],
            hdr_got: 0,
            body: Vec::new(),
            body_len: 0,
            next_id: 1,
            next_token: 0,
            pending: None,
            reply: None,
            busy: false,
            watches: Vec::new(),
            broken: Broken::new(),
        };
        if page.len() < RSP + RING_SIZE as usize + 16 {
            c.broken.set("xenstore page too small");
            return c;
        }
        // Whatever ran before us (the domain builder) leaves the ring idle
        // but not necessarily at index 0: continue from where it is.
        c.req_prod = c.word(REQ_PROD).load(Ordering::Acquire);
        c.rsp_cons = c.word(RSP_CONS).load(Ordering::Acquire);
        let req_used = c.req_prod.wrapping_sub(c.word(REQ_CONS).load(Ordering::Acquire));
        let rsp_used = c.word(RSP_PROD).load(Ordering::Acquire).wrapping_sub(c.rsp_cons);
        if req_used > RING_SIZE || rsp_used > RING_SIZE {
            c.broken.set("ring indexes out of range at start");
        }
        c
    }

    /// One of the four index words; xenstored updates them concurrently,
    /// hence atomics.
    fn word(&self, off: usize) -> &AtomicU32 {
        self.page.atomic_u32(off)
    }

    fn fail(&mut self, why: &'static str) -> Error {
        Error::Broken(self.broken.set(why))
    }

    fn check(&self) -> Result<(), Error> {
        self.broken.check().map_err(Error::Broken)
    }

    /// Copies as much of `data[*sent..]` into the request ring as fits;
    /// returns whether anything was written (xenstored should be kicked).
    fn send(&mut self, data: &[u8], sent: &mut usize) -> Result<bool, Error> {
        self.check()?;
        let cons = self.word(REQ_CONS).load(Ordering::Acquire);
        let used = self.req_prod.wrapping_sub(cons);
        if used > RING_SIZE {
            return Err(self.fail("request ring consumer index out of range"));
        }
        let n = ((RING_SIZE - used) as usize).min(data.len() - *sent);
        for (i, &b) in data[*sent..*sent + n].iter().enumerate() {
            let at = REQ + (self.req_prod.wrapping_add(i as u32) % RING_SIZE) as usize;
            self.page.write::<u8>(at, b); // `at` < 1024: the request ring
        }
        fence(Ordering::Release); // bytes before the index
        self.req_prod = self.req_prod.wrapping_add(n as u32);
        self.word(REQ_PROD).store(self.req_prod, Ordering::Release);
        *sent += n;
        Ok(n > 0)
    }

    /// Reads everything xenstored has written and dispatches complete
    /// messages; returns whether anything was consumed (xenstored may be
    /// waiting for room: kick it).
    pub fn pump(&mut self) -> Result<bool, Error> {
        self.check()?;
        let prod = self.word(RSP_PROD).load(Ordering::Acquire);
        let avail = prod.wrapping_sub(self.rsp_cons);
        if avail > RING_SIZE {
            return Err(self.fail("response ring producer index out of range"));
        }
        fence(Ordering::Acquire); // index before the bytes
        for i in 0..avail {
            let at = RSP + (self.rsp_cons.wrapping_add(i) % RING_SIZE) as usize;
            let b = self.page.read::<u8>(at); // `at` < 2048: the response ring
            if let Err(why) = self.feed(b) {
                return Err(self.fail(why));
            }
        }
        fence(Ordering::SeqCst); // done with the bytes before freeing them
        self.rsp_cons = self.rsp_cons.wrapping_add(avail);
        self.word(RSP_CONS).store(self.rsp_cons, Ordering::Release);
        Ok(avail > 0)
    }

    fn feed(&mut self, b: u8) -> Result<(), &'static str> {
        if self.hdr_got < HEADER {
            self.hdr[self.hdr_got] = b;
            self.hdr_got += 1;
            if self.hdr_got < HEADER {
                return Ok(());
            }
            let len = u32::from_le_bytes(self.hdr[12..16].try_into().unwrap()) as usize;
            if len > PAYLOAD_MAX {
                return Err("message longer than XENSTORE_PAYLOAD_MAX");
            }
            self.body_len = len;
            self.body = Vec::with_capacity(len);
        } else {
            self.body.push(b);
        }
        if self.body.len() == self.body_len {
            let h = |i: usize| u32::from_le_bytes(self.hdr[i..i + 4].try_into().unwrap());
            let msg = Msg { ty: h(0), req_id: h(4), payload: core::mem::take(&mut self.body) };
            self.hdr_got = 0;
            self.deliver(msg);
        }
        Ok(())
    }

    fn deliver(&mut self, msg: Msg) {
        if msg.ty == XS_WATCH_EVENT {
            // "path\0token\0": queue it for its watch; events for watches
            // we no longer have (or malformed ones) wake nobody.
            let mut parts = msg.payload.split(|&b| b == 0);
            let (Some(path), Some(token)) = (parts.next(), parts.next()) else { return };
            let (Ok(path), Ok(token)) = (core::str::from_utf8(path), core::str::from_utf8(token)) else { return };
            if let Some(w) = self.watches.iter_mut().find(|w| w.token == token) {
                if w.events.len() < WATCH_QUEUE {
                    w.events.push_back(path.to_string());
                } else {
                    w.overflowed = true;
                }
            }
            return;
        }
        let Some(want) = self.pending else { return }; // late reply to an abandoned request
        if msg.req_id == want {
            self.reply = Some(Ok(msg));
        } else if (want.wrapping_sub(msg.req_id) as i32) > 0 {
            // An earlier request's reply, after we gave up on it: drop it.
        } else {
            self.reply = Some(Err(Error::Malformed("reply to a request that was not made")));
        }
        if self.reply.is_some() {
            self.pending = None;
        }
    }

    fn take_event(&mut self, token: &str) -> Option<String> {
        let w = self.watches.iter_mut().find(|w| w.token == token)?;
        if let Some(p) = w.events.pop_front() {
            return Some(p);
        }
        core::mem::take(&mut w.overflowed).then(|| w.path.clone())
    }
}

/// What the client needs from its surroundings.
pub trait Env {
    /// Monotonic nanoseconds.
    fn now(&self) -> u64;
    /// Notifies xenstored (event channel send).
    fn kick(&self);
    /// Waits until `cond()` holds (true) or `deadline` passes (false),
    /// re-checking it whenever the ring's event fires or [`Env::wake_all`]
    /// is called (and now and then regardless).
    fn wait_until(&self, cond: &mut dyn FnMut() -> bool, deadline: u64) -> bool;
    /// Wakes every waiter to re-check its condition.
    fn wake_all(&self);
}

pub struct Client<E: Env> {
    conn: spin::Mutex<Conn>,
    env: E,
}

/// Releases the client for the next request on every exit path.
struct Claim<'a, E: Env>(&'a Client<E>);

impl<E: Env> Drop for Claim<'_, E> {
    fn drop(&mut self) {
        self.0.conn.lock().busy = false;
        self.0.env.wake_all();
    }
}

fn payload_str(p: &[u8]) -> Result<&str, Error> {
    // Values come without a terminator; tolerate one trailing NUL.
    let p = p.strip_suffix(&[0]).unwrap_or(p);
    if p.contains(&0) {
        return Err(Error::Malformed("NUL inside a string"));
    }
    core::str::from_utf8(p).map_err(|_| Error::Malformed("string is not UTF-8"))
}

fn check_path(path: &str) -> Result<(), Error> {
    if path.is_empty() || path.contains('\0') { Err(Error::BadRequest) } else { Ok(()) }
}

impl<E: Env> Client<E> {
    /// The client over the xenstore ring page `page` (see [`Conn::new`]).
    pub fn new(page: &'static DmaRegion, env: E) -> Self {
        Self { conn: spin::Mutex::new(Conn::new(page)), env }
    }

    pub fn env(&self) -> &E {
        &self.env
    }

    /// Waits until `f` gives an answer, reading the ring each time.
    fn wait_for<R>(&self, deadline: u64, mut f: impl FnMut(&mut Conn) -> Option<Result<R, Error>>) -> Result<R, Error> {
        let mut out = None;
        {
            let mut cond = || {
                let mut c = self.conn.lock();
                out = match c.pump() {
                    Ok(consumed) => {
                        if consumed {
                            // Room for xenstored; and what we read may be for
                            // another waiter.
                            self.env.kick();
                            self.env.wake_all();
                        }
                        f(&mut c)
                    }
                    Err(e) => Some(Err(e)),
                };
                out.is_some()
            };
            self.env.wait_until(&mut cond, deadline);
        }
        out.unwrap_or(Err(Error::Timeout))
    }

    /// Sends one request made of `parts` and waits for its reply; an
    /// XS_ERROR reply becomes `Error::Remote`.
    pub fn request(&self, ty: u32, parts: &[&[u8]]) -> Result<Msg, Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX {
            return Err(Error::BadRequest);
        }
        let deadline = self.env.now().saturating_add(TIMEOUT_NS);
        self.wait_for(deadline, |c| (!c.busy).then(|| c.busy = true).map(Ok))?;
        let _claim = Claim(self);

        let id = {
            let mut c = self.conn.lock();
            let id = c.next_id;
            c.next_id = c.next_id.wrapping_add(1).max(1);
            c.pending = Some(id);
            c.reply = None;
            id
        };
        let mut bytes = Vec::with_capacity(HEADER + len);
        for v in [ty, id, 0, len as u32] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        for p in parts {
            bytes.extend_from_slice(p);
        }
        let mut sent = 0;
        let r = self.wait_for(deadline, |c| {
            if sent < bytes.len() {
                match c.send(&bytes, &mut sent) {
                    Ok(true) => self.env.kick(),
                    Ok(false) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
            c.reply.take()
        });
        if r.is_err() {
            let mut c = self.conn.lock();
            c.pending = None;
            if sent < bytes.len() && !c.broken.is_broken() {
                // Half a message in the ring: the stream cannot recover.
                c.fail("request timed out half-written");
            }
        }
        let msg = r?;
        if msg.ty == XS_ERROR {
            let name = payload_str(&msg.payload)?;
            return Err(Error::Remote(ERRORS.iter().find(|e| **e == name).copied().unwrap_or("EUNKNOWN")));
        }
        if msg.ty != ty {
            return Err(Error::Malformed("reply of another type"));
        }
        Ok(msg)
    }

    pub fn read(&self, path: &str) -> Result<String, Error> {
        check_path(path)?;
        let m = self.request(XS_READ, &[path.as_bytes(), b"\0"])?;
        payload_str(&m.payload).map(String::from)
    }

    /// Reads a number (decimal, surrounding whitespace ignored).
    pub fn read_int<T: core::str::FromStr>(&self, path: &str) -> Result<T, Error> {
        self.read(path)?.trim().parse().map_err(|_| Error::BadValue)
    }

    pub fn write(&self, path: &str, value: &str) -> Result<(), Error> {
        check_path(path)?;
        self.request(XS_WRITE, &[path.as_bytes(), b"\0", value.as_bytes()]).map(drop)
    }

    /// The names of `path`'s children.
    pub fn directory(&self, path: &str) -> Result<Vec<String>, Error> {
        check_path(path)?;
        let m = self.request(XS_DIRECTORY, &[path.as_bytes(), b"\0"])?;
        let p = m.payload.strip_suffix(&[0]).unwrap_or(&m.payload);
        if p.is_empty() {
            return Ok(Vec::new());
        }
        p.split(|&b| b == 0)
            .map(|name| match core::str::from_utf8(name) {
                Ok("") => Err(Error::Malformed("empty directory entry")),
                Ok(s) => Ok(s.to_string()),
                Err(_) => Err(Error::Malformed("directory entry is not UTF-8")),
            })
            .collect()
    }

    /// Watches `path` (and everything below it). xenstored fires the watch
    /// once right away, so a first `wait` returns at once.
    pub fn watch(&self, path: &str) -> Result<Watch<'_, E>, Error> {
        check_path(path)?;
        let token = {
            let mut c = self.conn.lock();
            let n = c.next_token;
            c.next_token = c.next_token.wrapping_add(1);
            let token = alloc::format!("unikit-{n}");
            // Registered before the request: the first event may come
            // before the reply.
            c.watches.push(WatchSlot {
                token: token.clone(),
                path: path.to_string(),
                events: VecDeque::new(),
                overflowed: false,
            });
            token
        };
        match self.request(XS_WATCH, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]) {
            Ok(_) => Ok(Watch { client: self, token, path: path.to_string() }),
            Err(e) => {
                self.conn.lock().watches.retain(|w| w.token != token);
                Err(e)
            }
        }
    }

    fn unwatch(&self, path: &str, token: &str) -> Result<(), Error> {
        let r = self.request(XS_UNWATCH, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]);
        self.conn.lock().watches.retain(|w| w.token != token);
        r.map(drop)
    }
}

/// A registered watch; dropping it unregisters it.
pub struct Watch<'a, E: Env> {
    client: &'a Client<E>,
    token: String,
    path: String,
}

impl<E: Env> Watch<'_, E> {
    /// Waits for the next event and returns the path that changed.
    pub fn wait(&self, deadline_ns: u64) -> Result<String, Error> {
        self.client.wait_for(deadline_ns, |c| c.take_event(&self.token).map(Ok))
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl<E: Env> Drop for Watch<'_, E> {
    fn drop(&mut self) {
        let _ = self.client.unwatch(&self.path, &self.token);
    }
}

#[cfg(target_os = "none")]
mod guest {
    use super::*;
    use unikit_kernel::sync::WaitQueue;

    /// Threads waiting for the ring: replies, room, watch events.
    static WAITERS: WaitQueue = WaitQueue::new();
    static CLIENT: spin::Once<Client<GuestEnv>> = spin::Once::new();
    /// Waits re-read the ring at least this often (a lost event costs
    /// latency, not a hang).
    const POLL_NS: u64 = 10_000_000;

    pub struct GuestEnv {
        port: u32,
    }

    impl Env for GuestEnv {
        fn now(&self) -> u64 {
            unikit_kernel::time::monotonic_ns()
        }
        fn kick(&self) {
            crate::xen::evtchn::notify(self.port);
        }
        fn wait_until(&self, cond: &mut dyn FnMut() -> bool, deadline: u64) -> bool {
            loop {
                let slice = deadline.min(self.now().saturating_add(POLL_NS));
                if WAITERS.wait_until_deadline(&mut *cond, Some(slice)) {
                    return true;
                }
                if self.now() >= deadline {
                    return false;
                }
            }
        }
        fn wake_all(&self) {
            WAITERS.notify_all();
        }
    }

    fn on_event(_port: u32) {
        WAITERS.notify_all();
    }

    /// Starts the client on the xenstore ring page (the platform maps it
    /// and hands it over for the life of the domain) and its event channel.
    pub fn init(ring: DmaRegion, port: u32) {
        CLIENT.call_once(|| Client::new(alloc::boxed::Box::leak(alloc::boxed::Box::new(ring)), GuestEnv { port }));
        crate::xen::evtchn::set_handler(port, Some(on_event));
    }

    pub fn client() -> Result<&'static Client<GuestEnv>, Error> {
        CLIENT.get().ok_or(Error::NotReady)
    }

    pub fn read(path: &str) -> Result<String, Error> {
        client()?.read(path)
    }
    pub fn read_int<T: core::str::FromStr>(path: &str) -> Result<T, Error> {
        client()?.read_int(path)
    }
    pub fn read_u32(path: &str) -> Result<u32, Error> {
        read_int(path)
    }
    pub fn write(path: &str, value: &str) -> Result<(), Error> {
        client()?.write(path, value)
    }
    pub fn directory(path: &str) -> Result<Vec<String>, Error> {
        client()?.directory(path)
    }
    pub fn watch(path: &str) -> Result<Watch<'static, GuestEnv>, Error> {
        client()?.watch(path)
    }
}

#[cfg(target_os = "none")]
pub use guest::{GuestEnv, client, directory, init, read, read_int, read_u32, watch, write};

#[cfg(test)]
#[path = "xenstore_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "xenstore_fuzz.rs"]
mod fuzz;
