//! VMware's RPCI channel (guest to host remote procedure calls) over the
//! backdoor, enough to read `guestinfo` variables (`info-get`).
//!
//! The facts (open-vm-tools' `backdoor_def.h`, `guest_msg_def.h`,
//! `rpcout.h`): backdoor command MESSAGE (30) carries the subcommand in the
//! high half of `ecx` and the channel id in the high half of `edx`; the host
//! answers with status bits in the high half of `ecx`. A call opens a
//! channel for protocol `RPCI`, sends the request's size then its bytes four
//! at a time in `ebx`, asks for the reply's size, takes it four bytes at a
//! time, acknowledges it, and closes the channel. A reply starts with `1 `
//! (success) or `0 ` (failure).
//!
//! Everything here is pure logic over [`Backdoor`], so host tests drive it
//! with a fake VMware. Every loop is bounded and every size checked: a host
//! that lies gets an [`Error`], never a hang or an overflow.
use arch::hypervisor::{Backdoor, BackdoorRegs};

/// The backdoor's magic and port (`VMXh`, `VX`).
const MAGIC: u32 = 0x564d_5868;
const PORT: u32 = 0x5658;
/// Backdoor command MESSAGE.
const CMD_MESSAGE: u32 = 30;

// Message subcommands (`MessageType`).
const OPEN: u32 = 0;
const SEND_SIZE: u32 = 1;
const SEND_PAYLOAD: u32 = 2;
const RECV_SIZE: u32 = 3;
const RECV_PAYLOAD: u32 = 4;
const RECV_STATUS: u32 = 5;
const CLOSE: u32 = 6;

// Status bits, in the high half of `ecx` on the way back.
const STATUS_SUCCESS: u32 = 0x0001;
const STATUS_DORECV: u32 = 0x0002;
/// A checkpoint interrupted the transfer: start it again.
const STATUS_CPT: u32 = 0x0010;

/// The protocol number of RPCI (`RPCI` in memory, little endian).
const PROTO_RPCI: u32 = 0x4943_5052;
/// Open flag: the host hands out a cookie that guards the channel.
const FLAG_COOKIE: u32 = 0x8000_0000;

/// How many times a transfer starts over after checkpoints.
const MAX_ATTEMPTS: usize = 3;
/// Longest request we send.
pub const MAX_REQUEST: usize = 256;

/// Why a call gave no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No channel opens: no backdoor, or one without messages (QEMU's
    /// vmport).
    NoChannel,
    /// The host refused the request.
    Send,
    /// The host had no reply, or failed while giving it.
    Receive,
    /// The reply is longer than the buffer (its announced size).
    TooLong(u32),
    /// The host broke the protocol (a reply of the wrong type).
    Protocol,
    /// The reply does not start with `1 ` or `0 `.
    BadReply,
    /// Checkpoints interrupted every attempt.
    Interrupted,
    /// The channel did not close.
    Close,
    /// The request is empty or longer than [`MAX_REQUEST`].
    Request,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::NoChannel => f.write_str("no RPCI channel"),
            Self::Send => f.write_str("the host refused the request"),
            Self::Receive => f.write_str("the host gave no reply"),
            Self::TooLong(n) => write!(f, "a reply of {n} bytes is too long"),
            Self::Protocol => f.write_str("the host broke the message protocol"),
            Self::BadReply => f.write_str("the reply is not an RPCI reply"),
            Self::Interrupted => f.write_str("checkpoints interrupted every attempt"),
            Self::Close => f.write_str("the channel did not close"),
            Self::Request => f.write_str("the request is empty or too long"),
        }
    }
}

/// An open message channel: its id and cookie.
struct Channel<'a> {
    bd: &'a dyn Backdoor,
    id: u32,
    cookie: (u32, u32),
}

fn status(r: &BackdoorRegs) -> u32 {
    r.ecx >> 16
}

impl<'a> Channel<'a> {
    /// Opens an RPCI channel, with a cookie if the host offers them.
    fn open(bd: &'a dyn Backdoor) -> Result<Self, Error> {
        for flags in [FLAG_COOKIE, 0] {
            let r = bd.call(BackdoorRegs {
                eax: MAGIC,
                ebx: PROTO_RPCI | flags,
                ecx: OPEN << 16 | CMD_MESSAGE,
                edx: PORT,
                esi: 0,
                edi: 0,
            });
            if status(&r) & STATUS_SUCCESS != 0 {
                return Ok(Self { bd, id: r.edx >> 16, cookie: (r.esi, r.edi) });
            }
        }
        Err(Error::NoChannel)
    }

    // One copy of the call, not one per use (the port backdoor inlines).
    #[inline(never)]
    fn call(&self, kind: u32, ebx: u32) -> BackdoorRegs {
        self.bd.call(BackdoorRegs {
            eax: MAGIC,
            ebx,
            ecx: kind << 16 | CMD_MESSAGE,
            edx: self.id << 16 | PORT,
            esi: self.cookie.0,
            edi: self.cookie.1,
        })
    }

    /// Sends `msg`, four bytes a call.
    fn send(&self, msg: &[u8]) -> Result<(), Error> {
        'attempt: for _ in 0..MAX_ATTEMPTS {
            if status(&self.call(SEND_SIZE, msg.len() as u32)) & STATUS_SUCCESS == 0 {
                return Err(Error::Send);
            }
            for chunk in msg.chunks(4) {
                let mut word = [0u8; 4];
                word[..chunk.len()].copy_from_slice(chunk);
                let s = status(&self.call(SEND_PAYLOAD, u32::from_le_bytes(word)));
                if s & STATUS_SUCCESS == 0 {
                    if s & STATUS_CPT != 0 {
                        continue 'attempt;
                    }
                    return Err(Error::Send);
                }
            }
            return Ok(());
        }
        Err(Error::Interrupted)
    }

    /// Receives the host's reply into `buf`; its length.
    fn receive(&self, buf: &mut [u8]) -> Result<usize, Error> {
        'attempt: for _ in 0..MAX_ATTEMPTS {
            let r = self.call(RECV_SIZE, 0);
            let s = status(&r);
            if s & STATUS_SUCCESS == 0 || s & STATUS_DORECV == 0 {
                return Err(Error::Receive);
            }
            if r.edx >> 16 != SEND_SIZE {
                return Err(Error::Protocol);
            }
            let size = r.ebx;
            let Some(dst) = buf.get_mut(..size as usize) else {
                // Tell the host the reception failed (status 0), as
                // open-vm-tools does for a reply its buffer cannot hold.
                self.call(RECV_PAYLOAD, 0);
                return Err(Error::TooLong(size));
            };
            // At most buf.len() / 4 + 1 calls: `dst` bounds the loop.
            for chunk in dst.chunks_mut(4) {
                let r = self.call(RECV_PAYLOAD, STATUS_SUCCESS);
                let s = status(&r);
                if s & STATUS_SUCCESS == 0 {
                    if s & STATUS_CPT != 0 {
                        continue 'attempt;
                    }
                    return Err(Error::Receive);
                }
                if r.edx >> 16 != SEND_PAYLOAD {
                    self.call(RECV_PAYLOAD, 0);
                    return Err(Error::Protocol);
                }
                let n = chunk.len();
                chunk.copy_from_slice(&r.ebx.to_le_bytes()[..n]);
            }
            let s = status(&self.call(RECV_STATUS, STATUS_SUCCESS));
            if s & STATUS_SUCCESS == 0 {
                if s & STATUS_CPT != 0 {
                    continue 'attempt;
                }
                return Err(Error::Receive);
            }
            return Ok(size as usize);
        }
        Err(Error::Interrupted)
    }

    fn close(self) -> Result<(), Error> {
        if status(&self.call(CLOSE, 0)) & STATUS_SUCCESS == 0 { Err(Error::Close) } else { Ok(()) }
    }
}

/// Makes the host run one RPCI command (`request`) on a channel of its
/// own. The reply goes to `buf` (the longest reply taken is `buf.len()`);
/// gives whether the host said `1` and the text after `1 ` or `0 `.
pub fn call<'b>(bd: &dyn Backdoor, request: &[u8], buf: &'b mut [u8]) -> Result<(bool, &'b [u8]), Error> {
    if request.is_empty() || request.len() > MAX_REQUEST {
        return Err(Error::Request);
    }
    let ch = Channel::open(bd)?;
    let got = ch.send(request).and_then(|()| ch.receive(buf));
    // Closed whatever happened: a channel left open is one of the host's
    // few (8 in open-vm-tools' headers) taken until it times out.
    let closed = ch.close();
    let n = got?;
    closed?;
    let reply = &buf[..n];
    match reply.get(..2) {
        Some(b"1 ") => Ok((true, &reply[2..])),
        Some(b"0 ") => Ok((false, &reply[2..])),
        _ => Err(Error::BadReply),
    }
}

/// The guestinfo variable `guestinfo.<key>`: `None` if the host has none
/// by that name (`info-get` answers `0 No value found`).
pub fn guestinfo<'b>(bd: &dyn Backdoor, key: &str, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, Error> {
    const PREFIX: &[u8] = b"info-get guestinfo.";
    let mut req = [0u8; MAX_REQUEST];
    let len = PREFIX.len() + key.len();
    if len > MAX_REQUEST {
        return Err(Error::Request);
    }
    req[..PREFIX.len()].copy_from_slice(PREFIX);
    req[PREFIX.len()..len].copy_from_slice(key.as_bytes());
    let (ok, value) = call(bd, &req[..len], buf)?;
    Ok(ok.then_some(value))
}

/// Why a guestinfo command line is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// Not UTF-8, or holding a NUL or another control character.
    Text,
    /// Longer than the buffer, with the disk's boot-disk option in front.
    TooLong,
}

/// The command line to boot with when the host gives `guest` in
/// `guestinfo.unikit.cmdline`: `guest`, behind the disk's own boot-disk
/// option (the first token of `disk`, when it is `unikit.bootdisk=...`),
/// written to `out`. `None` when `guest` is blank: the disk's line stays.
pub fn merge_cmdline<'o>(disk: &str, guest: &[u8], out: &'o mut [u8]) -> Result<Option<&'o str>, LineError> {
    // Tabs and line ends are whitespace to the tokenizer; any other control
    // character is not something a user meant to type.
    if guest.iter().any(|&b| (b < 0x20 || b == 0x7f) && !b.is_ascii_whitespace()) {
        return Err(LineError::Text);
    }
    let guest = guest.trim_ascii();
    if guest.is_empty() {
        return Ok(None);
    }
    let first = disk.split_ascii_whitespace().next().unwrap_or("");
    let keep = if first.starts_with(unikit_kernel::dev::BOOT_DISK_OPTION) { first.as_bytes() } else { b"" };
    let sep: &[u8] = if keep.is_empty() { b"" } else { b" " };
    let len = keep.len() + sep.len() + guest.len();
    let Some(dst) = out.get_mut(..len) else { return Err(LineError::TooLong) };
    let (a, rest) = dst.split_at_mut(keep.len());
    a.copy_from_slice(keep);
    let (b, c) = rest.split_at_mut(sep.len());
    b.copy_from_slice(sep);
    c.copy_from_slice(guest);
    // The one UTF-8 check: `keep` is text and ends a token, so the line is
    // text exactly when `guest` is.
    core::str::from_utf8(&out[..len]).map(Some).map_err(|_| LineError::Text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// How the fake host misbehaves.
    #[derive(Clone, Copy, Default, PartialEq, Eq)]
    enum Hostile {
        #[default]
        None,
        /// No backdoor: the port reads as all ones, registers stay.
        NoBackdoor,
        /// QEMU's vmport: `eax` all ones for an unknown command, the rest as sent.
        QemuVmport,
        /// Opens only without the cookie flag (old hosts).
        NoCookies,
        /// Announces a reply of this size whatever it holds.
        Size(u32),
        /// Never sets SUCCESS on payload calls.
        PayloadFails,
        /// Reports a checkpoint on every payload call.
        CheckpointForever,
        /// Reports a checkpoint once, on the first payload call.
        CheckpointOnce,
        /// Gives the channel a new id after the request is sent.
        IdChanges,
        /// Tags reply payload with the wrong type.
        WrongPayloadType,
        /// Reply payload never runs out: every call gives 4 more bytes.
        EndlessReply,
        /// No reply to fetch (DORECV clear).
        NoReply,
        /// The reply as given, not an RPCI reply.
        Raw(&'static [u8]),
        /// Fails to close the channel.
        CloseFails,
    }

    #[derive(Default)]
    struct Chan {
        id: u32,
        cookie: (u32, u32),
        want: usize,
        request: Vec<u8>,
        reply: Vec<u8>,
        pos: usize,
    }

    /// A VMware host: a message channel answering `info-get guestinfo.*`.
    #[derive(Default)]
    struct Fake {
        vars: HashMap<String, String>,
        hostile: Hostile,
        chan: RefCell<Option<Chan>>,
        calls: RefCell<usize>,
        checkpoints: RefCell<usize>,
        requests: RefCell<Vec<Vec<u8>>>,
        opens: RefCell<usize>,
        closes: RefCell<usize>,
        /// Replies the guest said it failed to take (status 0).
        aborts: RefCell<usize>,
    }

    fn ok(mut r: BackdoorRegs, bits: u32) -> BackdoorRegs {
        r.ecx = (STATUS_SUCCESS | bits) << 16 | CMD_MESSAGE;
        r
    }
    fn fail(mut r: BackdoorRegs, bits: u32) -> BackdoorRegs {
        r.ecx = bits << 16 | CMD_MESSAGE;
        r
    }

    impl Fake {
        fn with(vars: &[(&str, &str)], hostile: Hostile) -> Self {
            let vars = vars.iter().map(|(k, v)| (format!("guestinfo.{k}"), v.to_string())).collect();
            Self { vars, hostile, ..Default::default() }
        }

        fn answer(&self, request: &[u8]) -> Vec<u8> {
            if let Hostile::Raw(r) = self.hostile {
                return r.to_vec();
            }
            let req = String::from_utf8_lossy(request);
            match req.strip_prefix("info-get ") {
                Some(k) => match self.vars.get(k.trim()) {
                    Some(v) => format!("1 {v}").into_bytes(),
                    None => b"0 No value found".to_vec(),
                },
                None => b"0 Unknown command".to_vec(),
            }
        }

        fn checkpoint(&self, r: BackdoorRegs) -> Option<BackdoorRegs> {
            let once = self.hostile == Hostile::CheckpointOnce && *self.checkpoints.borrow() == 0;
            (self.hostile == Hostile::CheckpointForever || once).then(|| {
                *self.checkpoints.borrow_mut() += 1;
                fail(r, STATUS_CPT)
            })
        }
    }

    impl Backdoor for Fake {
        fn call(&self, r: BackdoorRegs) -> BackdoorRegs {
            *self.calls.borrow_mut() += 1;
            assert!(*self.calls.borrow() < 10_000, "the guest does not stop calling");
            assert_eq!(r.edx & 0xffff, PORT);
            match self.hostile {
                Hostile::NoBackdoor => return BackdoorRegs { eax: u32::MAX, ..r },
                Hostile::QemuVmport if r.ecx & 0xffff != 10 => return BackdoorRegs { eax: u32::MAX, ..r },
                _ => {}
            }
            assert_eq!(r.eax, MAGIC);
            assert_eq!(r.ecx & 0xffff, CMD_MESSAGE);
            let kind = r.ecx >> 16;
            let mut chan = self.chan.borrow_mut();
            if kind == OPEN {
                if r.ebx & !FLAG_COOKIE != PROTO_RPCI
                    || (self.hostile == Hostile::NoCookies && r.ebx & FLAG_COOKIE != 0)
                    || chan.is_some()
                {
                    return fail(r, 0);
                }
                *self.opens.borrow_mut() += 1;
                let c = Chan { id: 3, cookie: (0x1234_5678, 0x9abc_def0), ..Default::default() };
                let out = BackdoorRegs { edx: c.id << 16 | PORT, esi: c.cookie.0, edi: c.cookie.1, ..r };
                *chan = Some(c);
                return ok(out, 0);
            }
            let Some(c) = chan.as_mut() else { return fail(r, 0) };
            let cookie_ok = self.hostile == Hostile::NoCookies || (r.esi, r.edi) == c.cookie;
            if r.edx >> 16 != c.id || !cookie_ok {
                return fail(r, 0);
            }
            match kind {
                SEND_SIZE => {
                    c.want = r.ebx as usize;
                    c.request.clear();
                    ok(r, 0)
                }
                SEND_PAYLOAD => {
                    if self.hostile == Hostile::PayloadFails {
                        return fail(r, 0);
                    }
                    if let Some(f) = self.checkpoint(r) {
                        return f;
                    }
                    let n = (c.want - c.request.len()).min(4);
                    c.request.extend_from_slice(&r.ebx.to_le_bytes()[..n]);
                    if c.request.len() == c.want {
                        self.requests.borrow_mut().push(c.request.clone());
                        c.reply = self.answer(&c.request);
                        c.pos = 0;
                        if self.hostile == Hostile::IdChanges {
                            c.id = 4;
                        }
                    }
                    ok(r, 0)
                }
                RECV_SIZE => {
                    if self.hostile == Hostile::NoReply {
                        return ok(r, 0);
                    }
                    c.pos = 0;
                    let size = match self.hostile {
                        Hostile::Size(n) => n,
                        Hostile::EndlessReply => u32::MAX,
                        _ => c.reply.len() as u32,
                    };
                    ok(BackdoorRegs { ebx: size, edx: SEND_SIZE << 16 | PORT, ..r }, STATUS_DORECV)
                }
                RECV_PAYLOAD => {
                    if r.ebx != STATUS_SUCCESS {
                        *self.aborts.borrow_mut() += 1;
                        return ok(r, 0);
                    }
                    if self.hostile == Hostile::PayloadFails {
                        return fail(r, 0);
                    }
                    if let Some(f) = self.checkpoint(r) {
                        return f;
                    }
                    let mut w = [0u8; 4];
                    for (i, b) in w.iter_mut().enumerate() {
                        *b = c.reply.get(c.pos + i).copied().unwrap_or(b'x');
                    }
                    c.pos += 4;
                    let ty = if self.hostile == Hostile::WrongPayloadType { SEND_SIZE } else { SEND_PAYLOAD };
                    ok(BackdoorRegs { ebx: u32::from_le_bytes(w), edx: ty << 16 | PORT, ..r }, 0)
                }
                RECV_STATUS => ok(r, 0),
                CLOSE => {
                    *chan = None;
                    *self.closes.borrow_mut() += 1;
                    if self.hostile == Hostile::CloseFails { fail(r, 0) } else { ok(r, 0) }
                }
                _ => fail(r, 0),
            }
        }
    }

    const KEY: &str = "unikit.cmdline";

    fn get(f: &Fake, buf: &mut [u8]) -> Result<Option<Vec<u8>>, Error> {
        guestinfo(f, KEY, buf).map(|v| v.map(<[u8]>::to_vec))
    }

    #[test]
    fn reads_a_variable_the_host_has() {
        let f = Fake::with(&[(KEY, "netdev.ip=10.0.0.2/24:10.0.0.1 -- a b")], Hostile::None);
        let mut buf = [0u8; 4096];
        assert_eq!(get(&f, &mut buf), Ok(Some(b"netdev.ip=10.0.0.2/24:10.0.0.1 -- a b".to_vec())));
        assert_eq!(f.requests.borrow().as_slice(), &[b"info-get guestinfo.unikit.cmdline".to_vec()]);
        assert_eq!((*f.opens.borrow(), *f.closes.borrow()), (1, 1));
    }

    #[test]
    fn a_missing_variable_is_none() {
        let f = Fake::with(&[("other", "x")], Hostile::None);
        assert_eq!(get(&f, &mut [0u8; 4096]), Ok(None));
        assert_eq!(*f.closes.borrow(), 1);
    }

    #[test]
    fn every_length_modulo_four_round_trips() {
        for n in 0..9 {
            let v: String = "abcdefghij"[..n].into();
            let f = Fake::with(&[(KEY, &v)], Hostile::None);
            let mut buf = [0u8; 64];
            assert_eq!(get(&f, &mut buf), Ok(Some(v.clone().into_bytes())), "{n}");
            // The key too: requests of every length.
            let key = &"kkkkkkkk"[..n];
            let f = Fake::with(&[(key, "v")], Hostile::None);
            assert_eq!(guestinfo(&f, key, &mut buf).map(|v| v.map(<[u8]>::to_vec)), Ok(Some(b"v".to_vec())));
        }
    }

    #[test]
    fn a_reply_exactly_the_buffer_fits_one_more_does_not() {
        let v = "y".repeat(4094);
        let f = Fake::with(&[(KEY, &v)], Hostile::None);
        assert_eq!(get(&f, &mut [0u8; 4096]), Ok(Some(v.clone().into_bytes())));
        let v = "y".repeat(4095);
        let f = Fake::with(&[(KEY, &v)], Hostile::None);
        assert_eq!(get(&f, &mut [0u8; 4096]), Err(Error::TooLong(4097)));
        assert_eq!(*f.closes.borrow(), 1);
    }

    #[test]
    fn hosts_without_cookies_still_answer() {
        let f = Fake::with(&[(KEY, "v")], Hostile::NoCookies);
        assert_eq!(get(&f, &mut [0u8; 16]), Ok(Some(b"v".to_vec())));
    }

    #[test]
    fn no_backdoor_and_qemus_vmport_have_no_channel() {
        for h in [Hostile::NoBackdoor, Hostile::QemuVmport] {
            let f = Fake::with(&[(KEY, "v")], h);
            assert_eq!(get(&f, &mut [0u8; 16]), Err(Error::NoChannel));
            // One open with the cookie flag, one without; nothing else.
            assert_eq!(*f.calls.borrow(), 2);
        }
    }

    #[test]
    fn huge_announced_sizes_are_refused_without_reading() {
        for size in [u32::MAX, 0x8000_0000, 4097, 1 << 20] {
            let f = Fake::with(&[(KEY, "v")], Hostile::Size(size));
            assert_eq!(get(&f, &mut [0u8; 4096]), Err(Error::TooLong(size)));
            assert!(*f.calls.borrow() < 30, "{} calls", f.calls.borrow());
            assert_eq!((*f.aborts.borrow(), *f.closes.borrow()), (1, 1));
        }
        let f = Fake::with(&[(KEY, "v")], Hostile::EndlessReply);
        assert_eq!(get(&f, &mut [0u8; 4096]), Err(Error::TooLong(u32::MAX)));
    }

    #[test]
    fn a_short_announced_size_gives_a_bad_reply_not_garbage() {
        // "1" alone: shorter than the "1 " every reply starts with.
        let f = Fake::with(&[(KEY, "v")], Hostile::Size(1));
        assert_eq!(get(&f, &mut [0u8; 16]), Err(Error::BadReply));
        let f = Fake::with(&[(KEY, "v")], Hostile::Size(0));
        assert_eq!(get(&f, &mut [0u8; 16]), Err(Error::BadReply));
    }

    #[test]
    fn wrong_status_bits_are_errors() {
        let cases = [
            (Hostile::PayloadFails, Error::Send),
            (Hostile::NoReply, Error::Receive),
            (Hostile::WrongPayloadType, Error::Protocol),
            (Hostile::CloseFails, Error::Close),
        ];
        for (h, e) in cases {
            let f = Fake::with(&[(KEY, "v")], h);
            assert_eq!(get(&f, &mut [0u8; 64]), Err(e));
            assert_eq!(*f.closes.borrow(), 1, "{e:?}: the channel is closed");
            assert_eq!(*f.aborts.borrow(), usize::from(e == Error::Protocol), "{e:?}");
        }
    }

    #[test]
    fn checkpoints_restart_a_bounded_number_of_times() {
        let f = Fake::with(&[(KEY, "value")], Hostile::CheckpointOnce);
        assert_eq!(get(&f, &mut [0u8; 64]), Ok(Some(b"value".to_vec())));
        assert_eq!(*f.checkpoints.borrow(), 1);
        let f = Fake::with(&[(KEY, "value")], Hostile::CheckpointForever);
        assert_eq!(get(&f, &mut [0u8; 64]), Err(Error::Interrupted));
        assert_eq!(*f.checkpoints.borrow(), MAX_ATTEMPTS);
    }

    #[test]
    fn a_channel_whose_id_changes_is_an_error() {
        let f = Fake::with(&[(KEY, "v")], Hostile::IdChanges);
        // The host no longer knows our id: the reply and the close fail.
        assert_eq!(get(&f, &mut [0u8; 64]), Err(Error::Receive));
    }

    #[test]
    fn replies_without_a_status_prefix_are_refused() {
        for raw in [&b"yes"[..], b"1", b"2 x", b"1\tx", b"", b"10"] {
            let f = Fake::with(&[], Hostile::Raw(raw));
            assert_eq!(get(&f, &mut [0u8; 64]), Err(Error::BadReply), "{raw:?}");
        }
        let f = Fake::with(&[], Hostile::Raw(b"0 "));
        assert_eq!(get(&f, &mut [0u8; 64]), Ok(None));
        let f = Fake::with(&[], Hostile::Raw(b"1 "));
        assert_eq!(get(&f, &mut [0u8; 64]), Ok(Some(vec![])));
    }

    #[test]
    fn overlong_requests_are_refused_before_any_call() {
        let f = Fake::with(&[], Hostile::None);
        let key = "k".repeat(MAX_REQUEST);
        assert_eq!(guestinfo(&f, &key, &mut [0u8; 8]).map(|_| ()), Err(Error::Request));
        assert_eq!(call(&f, b"", &mut [0u8; 8]).map(|_| ()), Err(Error::Request));
        assert_eq!(*f.calls.borrow(), 0);
    }

    const DISK: &str = "unikit.bootdisk=00112233445566778899aabbccddeeff unikit.quiet A=1 -- one two";

    fn merge(disk: &str, guest: &[u8], cap: usize) -> Result<Option<String>, LineError> {
        let mut out = vec![0u8; cap];
        merge_cmdline(disk, guest, &mut out).map(|o| o.map(String::from))
    }

    #[test]
    fn the_guestinfo_line_replaces_all_but_the_boot_disk() {
        assert_eq!(
            merge(DISK, b"  netdev.ip=10.0.0.2/24:10.0.0.1 -- x \"y z\"\n", 4096),
            Ok(Some(
                "unikit.bootdisk=00112233445566778899aabbccddeeff netdev.ip=10.0.0.2/24:10.0.0.1 -- x \"y z\"".into()
            ))
        );
        // A disk line without the option (a loader that names no disk).
        assert_eq!(merge("unikit.quiet -- a", b"-- b", 64), Ok(Some("-- b".into())));
        assert_eq!(merge("", b"-- b", 64), Ok(Some("-- b".into())));
    }

    #[test]
    fn a_blank_guestinfo_line_keeps_the_disk_line() {
        assert_eq!(merge(DISK, b"", 4096), Ok(None));
        assert_eq!(merge(DISK, b" \t\n", 4096), Ok(None));
    }

    #[test]
    fn bad_guestinfo_lines_are_refused() {
        assert_eq!(merge(DISK, b"a\xffb", 4096), Err(LineError::Text));
        assert_eq!(merge(DISK, b"a\0b", 4096), Err(LineError::Text));
        assert_eq!(merge(DISK, b"a\x1bb", 4096), Err(LineError::Text));
        // 48 bytes of boot-disk option, a space, then 16: 65 does not fit in 64.
        assert_eq!(merge(DISK, &[b'a'; 16], 64), Err(LineError::TooLong));
        assert_eq!(merge(DISK, &[b'a'; 15], 64).map(|o| o.map(|s| s.len())), Ok(Some(64)));
        // Multi-byte text is kept whole.
        assert_eq!(merge("", "-- héllo".as_bytes(), 64), Ok(Some("-- héllo".into())));
    }
}
