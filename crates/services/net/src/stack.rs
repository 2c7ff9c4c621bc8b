//! The stack: one smoltcp `Interface` over one `NetDevice`, its sockets
//! behind a short-held lock, and the "net" thread that drives it.
//!
//! Blocking: socket calls run their operation as the condition of a wait,
//! so they sleep until it can make progress. A call on one socket waits on
//! that socket's own queue (`SockWait`), which smoltcp wakes through a
//! `Waker` when the socket gets data, room or a new state; waits on the
//! stack as a whole (accept, DHCP) use `Shared::wq`, notified after every
//! poll that changed socket state. A call that queued work (data, a SYN, a
//! FIN) kicks the stack's own doorbell, which the device rings too and the
//! net thread sleeps on, so it polls at once.
//!
//! Hostile load: a listener whose accept queue is full drops new SYNs (the
//! client retries), and a connection is admitted only while the frame
//! allocator keeps `Options::admission_reserve` free (else RST); every
//! buffer the stack allocates per socket is allocated fallibly, so running
//! out of memory costs connections, not the guest.
use crate::addr::{ToSocketAddrs, v4};
use crate::config::{IpConfig, Options};
use crate::device::{Adapter, Stats};
use crate::error::{Error, ErrorKind, Result};
use crate::sys::NetDevice;
use crate::sys::{self, Lock, WaitQueue};
use crate::tcp::{TcpListener, TcpStream};
use crate::udp::UdpSocket;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::time::Duration;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv4Cidr};

/// Received packets handled in one go before the net thread lets other
/// threads run.
const INGRESS_BUDGET: usize = 256;
const MS: u64 = 1_000_000;

/// The waiters of one socket. smoltcp wakes it (through a `Waker`) when
/// the socket may make progress: data or room, a state change. One wait
/// queue for every socket would wake all sleeping connection threads after
/// every change (a thousand idle keep-alive clients cost a thousand
/// wake-ups per request); this wakes only the socket's own.
pub(crate) struct SockWait {
    wq: WaitQueue,
    /// Times woken (tests check that idle sockets are left asleep).
    #[cfg(test)]
    pub wakes: core::sync::atomic::AtomicU64,
}

impl SockWait {
    /// A new waiter set, known to `sh` so that a device failure wakes it.
    pub fn new(sh: &Shared) -> Arc<SockWait> {
        let w = Arc::new(SockWait {
            wq: WaitQueue::new(),
            #[cfg(test)]
            wakes: core::sync::atomic::AtomicU64::new(0),
        });
        let mut all = sh.socket_waits.lock();
        if all.len().is_power_of_two() {
            all.retain(|w| w.strong_count() > 0);
        }
        if all.try_reserve(1).is_ok() {
            all.push(Arc::downgrade(&w));
        }
        w
    }
}

impl alloc::task::Wake for SockWait {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        #[cfg(test)]
        self.wakes.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        self.wq.notify_all();
    }
}

pub(crate) struct Shared {
    pub state: Lock<State>,
    /// Waits not tied to one socket (accept, DHCP); notified after every
    /// poll that changed sockets.
    pub wq: WaitQueue,
    /// Every socket's waiters (woken all at once when the device fails).
    pub socket_waits: Lock<Vec<Weak<SockWait>>>,
    pub dev: Arc<dyn NetDevice>,
    pub opts: Options,
    /// The stack's own doorbell: the device rings it (frames in, transmit
    /// room), socket calls kick it (work queued), the net thread sleeps on it.
    pub doorbell: &'static sys::Event,
}

struct Listener {
    endpoint: IpListenEndpoint,
    /// Sockets in LISTEN, ready for the next SYN.
    listening: Vec<SocketHandle>,
    /// Sockets that got a SYN, in arrival order; `accept` takes the first
    /// established one.
    pending: VecDeque<SocketHandle>,
}

pub(crate) struct State {
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    adapter: Adapter,
    dhcp: Option<SocketHandle>,
    listeners: BTreeMap<u64, Listener>,
    next_listener: u64,
    /// Dropped TCP sockets finishing their close, with a deadline after
    /// which they are aborted.
    closing: Vec<(SocketHandle, u64)>,
    /// A packet was processed since the activity hook last ran: an ACK
    /// that frees send room changes no socket's state, yet a `poll` or
    /// `epoll` waiting for room must hear of it.
    packets_seen: bool,
    next_port: u16,
    opts: Options,
    /// Connections refused for lack of memory (no listening socket could
    /// be made, so the SYN got a RST).
    refused: u64,
    /// In a refusing episode (logged once when it starts and ends).
    refusing: bool,
    /// Storage slots of `sockets` (its largest population so far).
    slots: usize,
}

/// The doorbell of `dev`'s stack. A device keeps the doorbell it was given
/// (it may ring it from an interrupt handler), so a later stack on the same
/// device shares it; the device is kept alive here so that its address is
/// never taken by another one.
fn doorbell_for(dev: &Arc<dyn NetDevice>) -> &'static sys::Event {
    static BELLS: Lock<Vec<(Arc<dyn NetDevice>, &'static sys::Event)>> = Lock::new(Vec::new());
    let mut bells = BELLS.lock();
    if let Some((_, bell)) = bells.iter().find(|(d, _)| Arc::ptr_eq(d, dev)) {
        return bell;
    }
    let bell = sys::new_doorbell();
    dev.set_doorbell(bell);
    bells.push((dev.clone(), bell));
    bell
}

fn oom() -> Error {
    Error::new(ErrorKind::OutOfMemory, "out of memory for a socket")
}

/// Zeroed bytes, or `None` if the heap has no room (no panic): the
/// fallible form of `vec![0; n]`.
#[allow(clippy::slow_vector_initialization)]
pub(crate) fn try_zeroed(n: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0);
    Some(v)
}

fn new_tcp_socket(rx: usize, tx: usize) -> Option<tcp::Socket<'static>> {
    Some(tcp::Socket::new(tcp::SocketBuffer::new(try_zeroed(rx)?), tcp::SocketBuffer::new(try_zeroed(tx)?)))
}

/// Whether `bytes` more could be allocated in one block now: asks the heap
/// for them and gives them back at once (nothing is written). Only for the
/// rare large block: a probe can make the heap claim a new arena.
fn headroom(bytes: usize) -> bool {
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).is_ok()
}

fn now_instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000) as i64)
}

pub(crate) fn endpoint_to_addr(e: IpEndpoint) -> SocketAddr {
    match e.addr {
        IpAddress::Ipv4(a) => SocketAddr::V4(SocketAddrV4::new(a, e.port)),
    }
}

pub(crate) fn deadline(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| sys::now_ns().saturating_add(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)))
}

impl State {
    /// A new TCP socket with the configured buffers, or `OutOfMemory`
    /// (never an allocation failure that would stop the guest).
    pub fn new_tcp(&self) -> Result<tcp::Socket<'static>> {
        new_tcp_socket(self.opts.tcp_rx_buffer, self.opts.tcp_tx_buffer).ok_or_else(oom)
    }

    /// Adds a socket to the set if memory allows: the frame allocator
    /// must keep `admission_reserve` free (what the app needs to serve the
    /// connection: a thread stack, buffers), and when the set's storage is
    /// about to double, the heap must have room for the doubled block.
    /// `None` when not: the caller refuses the connection.
    fn add_socket(&mut self, s: impl smoltcp::socket::AnySocket<'static>) -> Option<SocketHandle> {
        let reserve = self.opts.admission_reserve as u64;
        if sys::free_memory().is_some_and(|free| free < reserve) {
            self.note_refused();
            return None;
        }
        let live = self.sockets.iter().count();
        // smoltcp reuses free slots and pushes only when all are taken; a
        // Vec that is full at a power of two reallocates to twice that.
        if live >= self.slots && self.slots >= 4 && self.slots.is_power_of_two() {
            let doubled = 2 * self.slots * core::mem::size_of::<smoltcp::iface::SocketStorage>();
            if !headroom(doubled) {
                self.note_refused();
                return None;
            }
        }
        if self.refusing {
            self.refusing = false;
            crate::log(format_args!("net: memory available again; accepting connections\n"));
        }
        let h = self.sockets.add(s);
        self.slots = self.slots.max(live + 1);
        Some(h)
    }

    /// Counts a connection refused for memory; says so once per episode.
    fn note_refused(&mut self) {
        self.refused += 1;
        if !self.refusing {
            self.refusing = true;
            crate::log(format_args!(
                "net: low on memory ({} sockets open): refusing new connections\n",
                self.sockets.iter().count()
            ));
        }
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    pub fn udp(&mut self, h: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut::<udp::Socket>(h)
    }

    pub fn broken(&self) -> Option<&'static str> {
        self.adapter.broken.get()
    }

    /// One round: received packets, then transmissions, then bookkeeping.
    /// Returns whether sockets may have changed and how long until the next
    /// round is due.
    fn poll(&mut self, now_ns: u64) -> (bool, Option<u64>) {
        let ts = now_instant(now_ns);
        let mut changed = false;
        self.iface.poll_maintenance(ts);
        self.adapter.flush();
        let mut more = false;
        for i in 0.. {
            if i == INGRESS_BUDGET {
                more = true;
                break;
            }
            match self.iface.poll_ingress_single(ts, &mut self.adapter, &mut self.sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => self.packets_seen = true,
                PollIngressSingleResult::SocketStateChanged => {
                    changed = true;
                    // Refill listening sockets before the next SYN is seen.
                    self.service_listeners();
                }
            }
        }
        while self.iface.poll_egress(ts, &mut self.adapter, &mut self.sockets) == PollResult::SocketStateChanged {
            changed = true;
        }
        changed |= self.service_dhcp();
        self.service_closing(now_ns);
        self.service_listeners();
        let mut delay = if more || self.adapter.has_backlog() {
            Some(if more { 0 } else { MS })
        } else {
            self.iface.poll_delay(ts, &self.sockets).map(|d| d.total_micros().saturating_mul(1000))
        };
        if !self.closing.is_empty() {
            delay = Some(delay.map_or(1000 * MS, |d| d.min(1000 * MS)));
        }
        (changed, delay)
    }

    fn service_dhcp(&mut self) -> bool {
        let Some(h) = self.dhcp else { return false };
        let ev = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return false,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match ev {
            Some((addr, router)) => set_address(&mut self.iface, addr, router),
            None => {
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        true
    }

    fn service_closing(&mut self, now_ns: u64) {
        let sockets = &mut self.sockets;
        self.closing.retain_mut(|(h, dl)| {
            let s = sockets.get_mut::<tcp::Socket>(*h);
            // Nobody reads a closed socket any more: data the peer still
            // sends would fill the window and stall it until the linger
            // deadline. Reset it, as Linux does for data after close.
            if s.can_recv() && !matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
                s.abort();
                *dl = (*dl).min(now_ns.saturating_add(1000 * MS));
            }
            match s.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    sockets.remove(*h);
                    false
                }
                _ if now_ns >= *dl => {
                    s.abort(); // the RST goes out with the next poll, then it is removed
                    *dl = u64::MAX;
                    true
                }
                _ => true,
            }
        });
    }

    fn service_listeners(&mut self) {
        let (rx, tx) = (self.opts.tcp_rx_buffer, self.opts.tcp_tx_buffer);
        let (spare, backlog) = (self.opts.listen_spare.max(1), self.opts.backlog.max(1));
        let mut want = 0;
        for l in self.listeners.values_mut() {
            let mut i = 0;
            while i < l.listening.len() {
                let h = l.listening[i];
                if self.sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen {
                    if l.pending.try_reserve(1).is_err() {
                        // No room to track it: reset it rather than lose it.
                        self.sockets.get_mut::<tcp::Socket>(h).abort();
                        i += 1;
                        continue;
                    }
                    l.listening.swap_remove(i);
                    l.pending.push_back(h);
                } else {
                    i += 1;
                }
            }
            let sockets = &mut self.sockets;
            let listening = &mut l.listening;
            l.pending.retain(|&h| match sockets.get::<tcp::Socket>(h).state() {
                // A SYN-RECEIVED socket that got a RST goes back to LISTEN.
                tcp::State::Listen if listening.try_reserve(1).is_ok() => {
                    listening.push(h);
                    false
                }
                tcp::State::Listen => {
                    sockets.remove(h);
                    false
                }
                tcp::State::Closed => {
                    sockets.remove(h);
                    false
                }
                _ => true,
            });
            // A SYN that finds no LISTEN socket is reset by smoltcp: that is
            // how connections beyond the backlog or beyond memory are
            // refused. Only count here; the sockets are made below.
            if l.pending.len() < backlog {
                want += spare.saturating_sub(l.listening.len());
            }
        }
        self.adapter.syn_gate.clear();
        for l in self.listeners.values() {
            if l.listening.is_empty() && l.pending.len() >= backlog && self.adapter.syn_gate.try_reserve(1).is_ok() {
                self.adapter.syn_gate.push(l.endpoint.port);
            }
        }
        if want == 0 {
            return;
        }
        let ids: Vec<u64> = self.listeners.keys().copied().collect();
        for id in ids {
            loop {
                let l = &self.listeners[&id];
                if l.listening.len() >= spare || l.pending.len() >= backlog {
                    break;
                }
                let endpoint = l.endpoint;
                let Some(mut s) = new_tcp_socket(rx, tx) else {
                    self.note_refused();
                    return;
                };
                if s.listen(endpoint).is_err() {
                    break;
                }
                if self.listeners[&id].listening.len() == self.listeners[&id].listening.capacity()
                    && self.listeners.get_mut(&id).is_some_and(|l| l.listening.try_reserve(1).is_err())
                {
                    return;
                }
                let Some(h) = self.add_socket(s) else { return };
                if let Some(l) = self.listeners.get_mut(&id) {
                    l.listening.push(h);
                }
            }
        }
    }

    fn port_in_use(&self, port: u16, tcp_proto: bool) -> bool {
        self.sockets.iter().any(|(_, s)| match s {
            smoltcp::socket::Socket::Tcp(t) if tcp_proto => {
                t.listen_endpoint().port == port || t.local_endpoint().is_some_and(|e| e.port == port)
            }
            smoltcp::socket::Socket::Udp(u) if !tcp_proto => u.endpoint().port == port,
            _ => false,
        })
    }

    pub fn ephemeral_port(&mut self, tcp_proto: bool) -> Result<u16> {
        for _ in 0..16384 {
            let p = self.next_port;
            self.next_port = p.checked_add(1).unwrap_or(49152);
            if !self.port_in_use(p, tcp_proto) {
                return Ok(p);
            }
        }
        Err(Error::new(ErrorKind::AddrInUse, "no free ephemeral port"))
    }

    /// Takes the first established connection waiting on listener `id`.
    /// Whether a TCP connection still has data to send or unacknowledged.
    pub(crate) fn has_unsent(&mut self) -> bool {
        self.sockets.iter().any(|(_, s)| match s {
            smoltcp::socket::Socket::Tcp(t) => t.send_queue() > 0 && t.state() != tcp::State::Closed,
            _ => false,
        })
    }

    /// Whether listener `id` has a connection ready to accept.
    pub(crate) fn has_pending(&self, id: u64) -> bool {
        let Some(l) = self.listeners.get(&id) else { return false };
        l.pending.iter().any(|&h| {
            !matches!(
                self.sockets.get::<tcp::Socket>(h).state(),
                tcp::State::Listen | tcp::State::SynReceived | tcp::State::SynSent
            )
        })
    }

    fn take_accepted(&mut self, id: u64) -> Option<(SocketHandle, SocketAddr)> {
        let l = self.listeners.get_mut(&id)?;
        let sockets = &self.sockets;
        let pos = l.pending.iter().position(|&h| {
            !matches!(
                sockets.get::<tcp::Socket>(h).state(),
                tcp::State::Listen | tcp::State::SynReceived | tcp::State::SynSent
            )
        })?;
        let h = l.pending.remove(pos)?;
        let peer = self.sockets.get::<tcp::Socket>(h).remote_endpoint().map(endpoint_to_addr);
        self.service_listeners();
        Some((h, peer.unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))))
    }

    /// Closes a TCP socket gracefully; it is freed once closed.
    pub fn release_tcp(&mut self, h: SocketHandle, abort: bool) {
        let linger = u64::try_from(self.opts.linger_timeout.as_nanos()).unwrap_or(u64::MAX);
        // Unread data at close means the peer's request was not taken: reset,
        // as Linux does, rather than leave the peer blocked on a full window.
        let abort = abort || self.tcp(h).recv_queue() > 0;
        let s = self.tcp(h);
        if abort {
            s.abort();
        } else {
            s.close();
        }
        if self.closing.try_reserve(1).is_err() {
            // No room to track its close: reset it and free it at once.
            self.tcp(h).abort();
            self.sockets.remove(h);
            return;
        }
        self.closing.push((h, sys::now_ns().saturating_add(linger)));
    }
}

fn set_address(iface: &mut Interface, addr: Ipv4Cidr, gateway: Option<Ipv4Addr>) {
    iface.update_ip_addrs(|a| {
        a.clear();
        let _ = a.push(IpCidr::Ipv4(addr));
    });
    match gateway {
        Some(g) => {
            let _ = iface.routes_mut().add_default_ipv4_route(g);
        }
        None => {
            iface.routes_mut().remove_default_ipv4_route();
        }
    }
}

impl Shared {
    /// Wakes the net thread (work was queued).
    pub fn kick(&self) {
        self.doorbell.signal();
    }

    /// Sleeps until `op` returns `Some` (it runs with the stack locked, on
    /// every wake-up) or `timeout` passes (`TimedOut`, naming `what`).
    pub fn wait<R>(
        &self,
        timeout: Option<Duration>,
        what: &str,
        op: impl FnMut(&mut State) -> Option<Result<R>>,
    ) -> Result<R> {
        self.wait_on(&self.wq, timeout, what, op)
    }

    /// As `wait`, for an operation on socket `h` alone (`tcp`: a TCP
    /// socket, else UDP): woken only by that socket, through `ws`.
    pub fn wait_socket<R>(
        &self,
        h: SocketHandle,
        tcp_socket: bool,
        ws: &Arc<SockWait>,
        timeout: Option<Duration>,
        what: &str,
        mut op: impl FnMut(&mut State) -> Option<Result<R>>,
    ) -> Result<R> {
        let waker = core::task::Waker::from(ws.clone());
        self.wait_on(&ws.wq, timeout, what, |st| {
            let r = op(st);
            if r.is_none() {
                // Registered under the stack lock, before the waiter sleeps:
                // a wake after this point is not lost (WaitQueue protocol).
                if tcp_socket {
                    let s = st.tcp(h);
                    s.register_recv_waker(&waker);
                    s.register_send_waker(&waker);
                } else {
                    let s = st.udp(h);
                    s.register_recv_waker(&waker);
                    s.register_send_waker(&waker);
                }
            }
            r
        })
    }

    fn wait_on<R>(
        &self,
        wq: &WaitQueue,
        timeout: Option<Duration>,
        what: &str,
        mut op: impl FnMut(&mut State) -> Option<Result<R>>,
    ) -> Result<R> {
        let mut out = None;
        wq.wait_until_deadline(
            || {
                if out.is_none() {
                    let mut st = self.state.lock();
                    out = match st.broken() {
                        Some(why) => {
                            Some(Err(Error::new(ErrorKind::NetworkDown, format!("network device failed: {why}"))))
                        }
                        None => op(&mut st),
                    };
                }
                out.is_some()
            },
            deadline(timeout),
        );
        out.unwrap_or_else(|| Err(Error::new(ErrorKind::TimedOut, format!("{what} timed out"))))
    }
}

/// A running network stack (one interface). Cheap to clone. Most apps use
/// the global one implicitly through `TcpListener::bind` and friends.
#[derive(Clone)]
pub struct Net(pub(crate) Arc<Shared>);

impl Net {
    /// Starts a stack over `dev` and its "net" thread. With `IpConfig::Dhcp`
    /// it returns at once; see [`Net::wait_configured`].
    pub fn start(dev: Arc<dyn NetDevice>, opts: Options) -> Result<Net> {
        let mut adapter = Adapter::new(dev.clone());
        let mac = dev.mac();
        let now = sys::now_ns();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mac_bits = mac.iter().fold(0u64, |a, &b| (a << 8) | b as u64);
        let seed = now.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ mac_bits;
        config.random_seed = seed;
        if !EthernetAddress(mac).is_unicast() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{}: MAC address {} is not unicast", dev.name(), EthernetAddress(mac)),
            ));
        }
        let mut iface = Interface::new(config, &mut adapter, now_instant(now));
        let mut sockets = SocketSet::new(Vec::new());
        let dhcp = match opts.ip {
            IpConfig::Static { addr, prefix, gateway } => {
                set_address(&mut iface, Ipv4Cidr::new(addr, prefix), gateway);
                None
            }
            IpConfig::Dhcp => Some(sockets.add(dhcpv4::Socket::new())),
        };
        let next_port = 49152 + (seed % 16384) as u16;
        let state = State {
            iface,
            sockets,
            adapter,
            dhcp,
            listeners: BTreeMap::new(),
            next_listener: 1,
            closing: Vec::new(),
            packets_seen: false,
            next_port,
            opts: opts.clone(),
            refused: 0,
            refusing: false,
            slots: usize::from(dhcp.is_some()),
        };
        let doorbell = doorbell_for(&dev);
        let shared = Arc::new(Shared {
            state: Lock::new(state),
            wq: WaitQueue::new(),
            socket_waits: Lock::new(Vec::new()),
            dev: dev.clone(),
            opts,
            doorbell,
        });
        let weak = Arc::downgrade(&shared);
        if !sys::spawn("net", Box::new(move || run(weak, dev, doorbell))) {
            return Err(Error::new(ErrorKind::OutOfMemory, "cannot start the net thread"));
        }
        Ok(Net(shared))
    }

    /// Waits until the interface has an IPv4 address (at once for a static
    /// one); `TimedOut` after `timeout`.
    pub fn wait_configured(&self, timeout: Duration) -> Result<Ipv4Addr> {
        self.0.wait(Some(timeout), "DHCP", |st| st.iface.ipv4_addr().map(Ok)).map_err(|e| match e.kind() {
            ErrorKind::TimedOut => Error::new(
                ErrorKind::TimedOut,
                format!("DHCP on {}: no lease within {} s", self.0.dev.name(), timeout.as_secs_f32()),
            ),
            _ => e,
        })
    }

    /// The interface's IPv4 address, once configured (DHCP may still be running).
    pub fn ipv4_addr(&self) -> Option<Ipv4Addr> {
        self.0.state.lock().iface.ipv4_addr()
    }

    /// Address with prefix length, and the default gateway if any.
    pub fn ipv4_config(&self) -> Option<(Ipv4Addr, u8, Option<Ipv4Addr>)> {
        let mut st = self.0.state.lock();
        let IpCidr::Ipv4(cidr) = *st.iface.ip_addrs().first()?;
        let mut gw = None;
        st.iface.routes_mut().update(|r| {
            gw = r.iter().find(|r| r.cidr.prefix_len() == 0).map(|r| match r.via_router {
                IpAddress::Ipv4(a) => a,
            })
        });
        Some((cidr.address(), cidr.prefix_len(), gw))
    }

    /// Name of the device the stack runs on.
    pub fn device_name(&self) -> String {
        String::from(self.0.dev.name())
    }

    /// MAC address of the device the stack runs on.
    pub fn mac(&self) -> [u8; 6] {
        self.0.dev.mac()
    }

    /// Frame counters of the device adapter.
    pub fn stats(&self) -> Stats {
        self.0.state.lock().adapter.stats.get()
    }

    /// Number of smoltcp sockets alive (listening, connected, closing, DHCP).
    pub fn socket_count(&self) -> usize {
        self.0.state.lock().sockets.iter().count()
    }

    /// Connections refused because the heap had no room for them.
    pub fn refused_for_memory(&self) -> u64 {
        self.0.state.lock().refused
    }

    /// The options the stack was started with.
    pub fn options(&self) -> &Options {
        &self.0.opts
    }

    /// Binds a TCP listener, like `TcpListener::bind`.
    pub fn tcp_bind(&self, addr: impl ToSocketAddrs) -> Result<TcpListener> {
        let a = v4(addr.to_socket_addr()?)?;
        let mut st = self.0.state.lock();
        let port = match a.port() {
            0 => st.ephemeral_port(true)?,
            p if st.listeners.values().any(|l| l.endpoint.port == p) => {
                return Err(Error::new(ErrorKind::AddrInUse, format!("TCP port {p} is already in use")));
            }
            p => p,
        };
        let endpoint = IpListenEndpoint {
            addr: if a.ip().is_unspecified() { None } else { Some(IpAddress::Ipv4(*a.ip())) },
            port,
        };
        let id = st.next_listener;
        st.next_listener += 1;
        st.listeners.insert(id, Listener { endpoint, listening: Vec::new(), pending: VecDeque::new() });
        st.service_listeners();
        if st.listeners[&id].listening.is_empty() {
            st.listeners.remove(&id);
            return Err(Error::new(ErrorKind::InvalidInput, format!("cannot listen on {a}")));
        }
        drop(st);
        Ok(TcpListener::new(self.0.clone(), id, SocketAddr::V4(SocketAddrV4::new(*a.ip(), port))))
    }

    /// Connects a TCP stream, waiting at most `timeout` (forever if `None`).
    pub fn tcp_connect(&self, addr: impl ToSocketAddrs, timeout: Option<Duration>) -> Result<TcpStream> {
        let target = addr.to_socket_addr()?;
        let a = v4(target)?;
        if a.ip().is_unspecified() || a.port() == 0 {
            return Err(Error::new(ErrorKind::InvalidInput, format!("cannot connect to {a}")));
        }
        let h = {
            let mut st = self.0.state.lock();
            if st.iface.ipv4_addr().is_none() {
                return Err(Error::new(ErrorKind::NetworkUnreachable, "the interface has no IPv4 address yet"));
            }
            let port = st.ephemeral_port(true)?;
            let mut s = st.new_tcp()?;
            s.connect(st.iface.context(), (IpAddress::Ipv4(*a.ip()), a.port()), port)
                .map_err(|e| Error::new(ErrorKind::NetworkUnreachable, format!("connect to {a}: {e} (no route?)")))?;
            st.add_socket(s).ok_or_else(oom)?
        };
        self.0.kick();
        let timeout = timeout.unwrap_or(self.0.opts.connect_timeout);
        let ws = SockWait::new(&self.0);
        let r = self.0.wait_socket(h, true, &ws, Some(timeout), "connect", |st| match st.tcp(h).state() {
            tcp::State::SynSent | tcp::State::SynReceived => None,
            tcp::State::Closed => {
                Some(Err(Error::new(ErrorKind::ConnectionRefused, format!("connection to {a} refused"))))
            }
            _ => Some(Ok(())),
        });
        match r {
            Ok(()) => Ok(TcpStream::new(self.0.clone(), h)),
            Err(e) => {
                self.0.state.lock().release_tcp(h, true);
                self.0.kick();
                Err(match e.kind() {
                    ErrorKind::TimedOut => Error::new(ErrorKind::TimedOut, format!("connection to {a} timed out")),
                    _ => e,
                })
            }
        }
    }

    /// Binds a UDP socket, like `UdpSocket::bind`.
    pub fn udp_bind(&self, addr: impl ToSocketAddrs) -> Result<UdpSocket> {
        UdpSocket::bind_on(self.0.clone(), v4(addr.to_socket_addr()?)?)
    }
}

impl State {
    pub(crate) fn remove_listener(&mut self, id: u64) {
        if let Some(l) = self.listeners.remove(&id) {
            for h in l.listening {
                self.sockets.remove(h);
            }
            for h in l.pending {
                self.release_tcp(h, true); // connections never accepted: reset
            }
        }
    }

    pub(crate) fn accept(&mut self, id: u64) -> Option<(SocketHandle, SocketAddr)> {
        self.take_accepted(id)
    }
}

static ACTIVITY_HOOK: spin::Once<fn()> = spin::Once::new();

/// Calls `hook` after every poll of the stack that changed a socket (for
/// waits on many sockets at once: `poll`, `epoll`). Set once.
pub fn set_activity_hook(hook: fn()) {
    ACTIVITY_HOOK.call_once(|| hook);
}

/// The net thread: poll, wake socket users, sleep until the device or a
/// socket user signals or smoltcp's next timer is due.
fn run(weak: Weak<Shared>, dev: Arc<dyn NetDevice>, doorbell: &'static sys::Event) {
    // Devices without interrupts are polled every millisecond.
    let poll_every = if dev.has_interrupts() { None } else { Some(MS) };
    let mut reported = false;
    loop {
        let Some(sh) = weak.upgrade() else { return };
        let now = sys::now_ns();
        let (changed, delay) = {
            let mut st = sh.state.lock();
            let r = st.poll(now);
            if let (Some(why), false) = (st.broken(), reported) {
                reported = true;
                crate::log(format_args!("net: device {} failed: {why}; the network is down\n", dev.name()));
            }
            r
        };
        // Socket users are woken by their sockets (smoltcp's wakers) during
        // the poll; this queue holds the waits on the stack as a whole.
        if changed || reported {
            sh.wq.notify_all();
        }
        let packets = core::mem::take(&mut sh.state.lock().packets_seen);
        if (changed || reported || packets)
            && let Some(hook) = ACTIVITY_HOOK.get()
        {
            hook();
        }
        if reported {
            let all: Vec<Arc<SockWait>> = sh.socket_waits.lock().iter().filter_map(Weak::upgrade).collect();
            for w in all {
                w.wq.notify_all();
            }
        }
        drop(sh);
        if reported {
            return;
        }
        let mut deadline = delay.map(|d| now.saturating_add(d));
        if let Some(p) = poll_every {
            let next = now + p;
            deadline = Some(deadline.map_or(next, |d| d.min(next)));
        }
        // Let the threads just woken run before polling again.
        sys::yield_now();
        sys::wait_event(doorbell, deadline);
    }
}
