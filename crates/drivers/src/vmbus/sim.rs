//! A simulated Hyper-V host for the host tests: synthetic MSRs, the SynIC
//! message slot, a VMBus server (version negotiation, offers, GPADLs,
//! OPENCHANNEL) and the host's end of each channel's rings. It is written
//! from the host's side of the same public layouts, independently of the
//! guest code, and can be told to misbehave (`rewrite`).
#![allow(unsafe_code)] // the host reaches guest pages by address, as Hyper-V does

use super::Platform;
use super::abi::{self, Descriptor, Le, Offer, Out, msg};
use crate::io::DmaRegion;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// Replies the host is about to queue for a message of this type; a test
/// may replace them to misbehave.
pub type Rewrite = Box<dyn FnMut(u32, Vec<Vec<u8>>) -> Vec<Vec<u8>>>;

pub struct Gpadl {
    pub relid: u32,
    pub bytes: usize,
    pub pfns: Vec<u64>,
}

#[derive(Default)]
pub struct State {
    pub msrs: HashMap<u32, u64>,
    pub queue: VecDeque<Vec<u8>>,
    /// Every message the guest posted: (connection id, payload).
    pub posted: Vec<(u32, Vec<u8>)>,
    pub signals: Vec<u32>,
    pub eoms: u32,
    /// Highest protocol version the host speaks.
    pub max_version: u32,
    pub msg_conn_id: u32,
    pub offers: Vec<Offer>,
    pub gpadls: HashMap<u32, Gpadl>,
    /// relid -> (gpadl handle, downstream page offset).
    pub open: HashMap<u32, (u32, u32)>,
    pub rewrite: Option<Rewrite>,
    /// Raw slot writes instead of well-formed messages (hostile tests).
    pub raw_slot: Option<(u32, u8, u8)>,
    /// The host's device side, run whenever the guest waits (it serves
    /// the channel rings); false when it has nothing more to do.
    pub on_wait: Option<Box<dyn FnMut() -> bool>>,
    /// Posts to refuse first, and with which status.
    pub refuse_posts: (u32, u16),
    /// The last post was refused (so a wait is worth it: the queue drains).
    pub refused_last: bool,
}

#[derive(Clone)]
pub struct Sim(pub Rc<RefCell<State>>);

/// The guest page at guest physical address `gpa` (host tests: the
/// address is the pointer).
pub fn page(gpa: u64, len: usize) -> DmaRegion {
    // SAFETY: every address handed to the simulated host is one of the
    // guest code's own live DmaRegions (identity "DMA" on the host), and
    // the tests keep them alive while the host uses them.
    unsafe { DmaRegion::from_raw(gpa as *mut u8, len) }.expect("null guest page")
}

impl Sim {
    pub fn new(max_version: u32, offers: Vec<Offer>) -> Self {
        Self(Rc::new(RefCell::new(State { max_version, msg_conn_id: 0x7, offers, ..State::default() })))
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }

    fn simp(&self) -> Option<DmaRegion> {
        let v = *self.0.borrow().msrs.get(&abi::MSR_SIMP)?;
        (v & 1 != 0).then(|| page(v & !0xfff, abi::PAGE))
    }

    /// Puts the next queued message into the VMBus slot if it is free.
    /// True if the slot holds a message afterwards.
    pub fn deliver(&self) -> bool {
        let Some(simp) = self.simp() else { return false };
        let slot = abi::VMBUS_MESSAGE_SINT * abi::MESSAGE_SIZE;
        if simp.read::<u32>(slot) != 0 {
            return true;
        }
        let mut s = self.0.borrow_mut();
        let Some(m) = s.queue.pop_front() else { return false };
        let more = !s.queue.is_empty();
        let (ty, size, flags) = s.raw_slot.take().unwrap_or((abi::HVMSG_CHANNEL, m.len() as u8, more as u8));
        simp.write_bytes(slot + 16, &m[..m.len().min(abi::MESSAGE_PAYLOAD)]);
        simp.write::<u8>(slot + 4, size);
        simp.write::<u8>(slot + 5, flags);
        simp.write::<u32>(slot, ty);
        true
    }

    fn reply(&self, ty: u32, replies: Vec<Vec<u8>>) {
        let mut s = self.0.borrow_mut();
        let replies = match s.rewrite.as_mut() {
            Some(f) => f(ty, replies),
            None => replies,
        };
        s.queue.extend(replies);
    }

    fn serve(&self, conn: u32, m: &[u8]) {
        let ty = m.u32_at(0).unwrap();
        let mut out = Vec::new();
        match ty {
            msg::INITIATE_CONTACT => {
                let v = m.u32_at(8).unwrap();
                let s = self.0.borrow();
                let want_conn = if v >= 5 << 16 { abi::MESSAGE_CONNECTION_ID_4 } else { abi::MESSAGE_CONNECTION_ID };
                let ok = v <= s.max_version && conn == want_conn;
                let mut r = Out::message(msg::VERSION_RESPONSE);
                r.u8(ok as u8).u8(0).u16(0).u32(s.msg_conn_id);
                out.push(r.0);
            }
            msg::REQUESTOFFERS => {
                out.extend(self.0.borrow().offers.iter().map(|o| o.encode()));
                out.push(Out::message(msg::ALLOFFERS_DELIVERED).0);
            }
            msg::GPADL_HEADER => {
                let (relid, handle) = (m.u32_at(8).unwrap(), m.u32_at(12).unwrap());
                assert_eq!(m.u16_at(18), Some(1), "one range");
                let bytes = m.u32_at(20).unwrap() as usize;
                assert_eq!(m.u16_at(16).unwrap() as usize, 8 + 8 * bytes.div_ceil(abi::PAGE), "range_buflen");
                let pfns = (28..m.len()).step_by(8).map(|o| m.u64_at(o).unwrap()).collect();
                self.0.borrow_mut().gpadls.insert(handle, Gpadl { relid, bytes, pfns });
                out.extend(self.gpadl_done(handle));
            }
            msg::GPADL_BODY => {
                let handle = m.u32_at(12).unwrap();
                let pfns: Vec<u64> = (16..m.len()).step_by(8).map(|o| m.u64_at(o).unwrap()).collect();
                self.0.borrow_mut().gpadls.get_mut(&handle).expect("body of an unknown GPADL").pfns.extend(pfns);
                out.extend(self.gpadl_done(handle));
            }
            msg::OPENCHANNEL => {
                let (relid, openid, gpadl, down) =
                    (m.u32_at(8).unwrap(), m.u32_at(12).unwrap(), m.u32_at(16).unwrap(), m.u32_at(24).unwrap());
                let ok = self.0.borrow().gpadls.get(&gpadl).is_some_and(|g| g.relid == relid);
                if ok {
                    self.0.borrow_mut().open.insert(relid, (gpadl, down));
                }
                let mut r = Out::message(msg::OPENCHANNEL_RESULT);
                r.u32(relid).u32(openid).u32(if ok { 0 } else { 0xc000_0001 });
                out.push(r.0);
            }
            _ => {}
        }
        self.reply(ty, out);
    }

    fn gpadl_done(&self, handle: u32) -> Option<Vec<u8>> {
        let s = self.0.borrow();
        let g = &s.gpadls[&handle];
        (g.pfns.len() * abi::PAGE >= g.bytes).then(|| {
            let mut r = Out::message(msg::GPADL_CREATED);
            r.u32(g.relid).u32(handle).u32(0);
            r.0
        })
    }

    /// The host's view of channel `relid`'s rings: (guest-to-host ring,
    /// host-to-guest ring), each (header offset, data size) in `mem`.
    pub fn rings(&self, relid: u32) -> (DmaRegion, HostRing, HostRing) {
        let s = self.0.borrow();
        let (gpadl, down) = s.open[&relid];
        let g = &s.gpadls[&gpadl];
        // The guest's ring memory is one contiguous block: its frames follow each other.
        for w in g.pfns.windows(2) {
            assert_eq!(w[1], w[0] + 1);
        }
        let pages = g.pfns.len();
        let down = down as usize;
        let mem = page(g.pfns[0] << 12, pages * abi::PAGE);
        let from_guest = HostRing { base: 0, size: (down - 1) * abi::PAGE };
        let to_guest = HostRing { base: down * abi::PAGE, size: (pages - down - 1) * abi::PAGE };
        (mem, from_guest, to_guest)
    }
}

/// The host's end of one ring.
#[derive(Clone, Copy)]
pub struct HostRing {
    pub base: usize,
    pub size: usize,
}

impl HostRing {
    fn data(&self) -> usize {
        self.base + abi::PAGE
    }
    pub fn write_index(&self, mem: &DmaRegion) -> usize {
        mem.read::<u32>(self.base) as usize
    }
    pub fn read_index(&self, mem: &DmaRegion) -> usize {
        mem.read::<u32>(self.base + 4) as usize
    }
    fn copy_in(&self, mem: &DmaRegion, pos: usize, b: &[u8]) -> usize {
        for (i, &x) in b.iter().enumerate() {
            mem.write::<u8>(self.data() + (pos + i) % self.size, x);
        }
        (pos + b.len()) % self.size
    }
    fn copy_out(&self, mem: &DmaRegion, pos: usize, n: usize) -> Vec<u8> {
        (0..n).map(|i| mem.read::<u8>(self.data() + (pos + i) % self.size)).collect()
    }

    /// Host sends a packet (to the guest). False if there is no room.
    pub fn send(&self, mem: &DmaRegion, ty: u16, trans_id: u64, payload: &[u8]) -> bool {
        self.send_with_head(mem, ty, trans_id, &[], payload)
    }

    /// Host sends a packet with type-specific header bytes (a multiple of 8)
    /// between the descriptor and the payload.
    pub fn send_with_head(&self, mem: &DmaRegion, ty: u16, trans_id: u64, head: &[u8], payload: &[u8]) -> bool {
        let hdr = 16 + head.len();
        let len = (hdr + payload.len()).next_multiple_of(8);
        let (w, r) = (self.write_index(mem), self.read_index(mem));
        let free = if w >= r { self.size - (w - r) } else { r - w };
        if free <= len + 8 {
            return false;
        }
        let d = Descriptor { ty, offset8: (hdr / 8) as u16, len8: (len / 8) as u16, flags: 0, trans_id };
        let mut p = self.copy_in(mem, w, &d.encode());
        p = self.copy_in(mem, p, head);
        p = self.copy_in(mem, p, payload);
        p = self.copy_in(mem, p, &vec![0; len - hdr - payload.len()]);
        p = self.copy_in(mem, p, &((w as u64) << 32).to_le_bytes());
        mem.write::<u32>(self.base, p as u32);
        true
    }

    /// Host takes a packet (from the guest): descriptor and payload.
    pub fn recv(&self, mem: &DmaRegion) -> Option<(Descriptor, Vec<u8>)> {
        self.recv_raw(mem).map(|(d, raw)| (d, raw[d.offset8 as usize * 8..].to_vec()))
    }

    /// Host takes a packet (from the guest): descriptor and the whole packet.
    pub fn recv_raw(&self, mem: &DmaRegion) -> Option<(Descriptor, Vec<u8>)> {
        let (w, r) = (self.write_index(mem), self.read_index(mem));
        if w == r {
            return None;
        }
        let d = Descriptor::parse(&self.copy_out(mem, r, 16).try_into().unwrap());
        let raw = self.copy_out(mem, r, d.len8 as usize * 8);
        let trailer = u64::from_le_bytes(self.copy_out(mem, r + d.len8 as usize * 8, 8).try_into().unwrap());
        assert_eq!(trailer >> 32, r as u64, "trailer names the packet's start");
        mem.write::<u32>(self.base + 4, ((r + d.len8 as usize * 8 + 8) % self.size) as u32);
        Some((d, raw))
    }
}

impl Platform for Sim {
    fn rdmsr(&self, msr: u32) -> u64 {
        self.0.borrow().msrs.get(&msr).copied().unwrap_or(if msr >= abi::MSR_SINT0 { abi::SINT_MASKED } else { 0 })
    }

    fn wrmsr(&self, msr: u32, value: u64) {
        if msr == abi::MSR_EOM {
            self.0.borrow_mut().eoms += 1;
            self.deliver();
            return;
        }
        self.0.borrow_mut().msrs.insert(msr, value);
    }

    fn post_message(&self, connection_id: u32, payload: &[u8]) -> u16 {
        assert!(payload.len() <= abi::MESSAGE_PAYLOAD, "message over 240 bytes");
        {
            let mut s = self.0.borrow_mut();
            s.refused_last = s.refuse_posts.0 > 0;
            if s.refuse_posts.0 > 0 {
                s.refuse_posts.0 -= 1;
                return s.refuse_posts.1;
            }
        }
        self.0.borrow_mut().posted.push((connection_id, payload.to_vec()));
        self.serve(connection_id, payload);
        self.deliver();
        0
    }

    fn signal_event(&self, connection_id: u32) -> u16 {
        self.0.borrow_mut().signals.push(connection_id);
        0
    }

    fn wait(&self, _waited: u32) -> bool {
        let hook = self.0.borrow_mut().on_wait.take();
        let served = hook.map(|mut h| {
            let r = h();
            self.0.borrow_mut().on_wait = Some(h);
            r
        });
        // A host with a full message queue frees it in time: worth waiting for.
        let busy = self.0.borrow().refused_last;
        self.deliver() || served == Some(true) || busy
    }
}
