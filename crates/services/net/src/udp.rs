//! UDP sockets shaped like `std::net::UdpSocket`.
use crate::addr::{ToSocketAddrs, v4};
use crate::error::{Error, ErrorKind, Result};
use crate::stack::{Shared, SockWait, endpoint_to_addr};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::{SocketAddr, SocketAddrV4};
use core::time::Duration;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

const IP_UDP_HEADERS: usize = 28;

/// A UDP socket, like `std::net::UdpSocket`.
pub struct UdpSocket {
    sh: Arc<Shared>,
    handle: SocketHandle,
    /// This socket's waiters (woken by the socket alone).
    waiters: Arc<SockWait>,
    local: SocketAddr,
    read_timeout: spin::Mutex<Option<Duration>>,
    write_timeout: spin::Mutex<Option<Duration>>,
    peer: spin::Mutex<Option<SocketAddrV4>>,
    nonblocking: core::sync::atomic::AtomicBool,
}

impl UdpSocket {
    /// The timeout `t` of an operation, or none at all when non-blocking.
    fn timeout(&self, t: Option<Duration>) -> Option<Duration> {
        if self.nonblocking.load(core::sync::atomic::Ordering::Relaxed) { Some(Duration::ZERO) } else { t }
    }

    fn would_block<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Err(e)
                if e.kind() == ErrorKind::TimedOut && self.nonblocking.load(core::sync::atomic::Ordering::Relaxed) =>
            {
                Err(Error::new(ErrorKind::WouldBlock, "operation would block"))
            }
            r => r,
        }
    }

    /// In non-blocking mode sends and receives fail with `WouldBlock`
    /// instead of waiting.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        self.nonblocking.store(on, core::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// What the socket is ready for now.
    pub fn readiness(&self) -> crate::Readiness {
        let mut st = self.sh.state.lock();
        let s = st.udp(self.handle);
        crate::Readiness { readable: s.can_recv(), writable: s.can_send(), hangup: false }
    }
}

impl UdpSocket {
    /// Binds with the global stack (port 0 picks a free port).
    pub fn bind(addr: impl ToSocketAddrs) -> Result<UdpSocket> {
        crate::global()?.udp_bind(addr)
    }

    pub(crate) fn bind_on(sh: Arc<Shared>, a: SocketAddrV4) -> Result<UdpSocket> {
        let handle;
        let port;
        {
            let mut st = sh.state.lock();
            port = match a.port() {
                0 => st.ephemeral_port(false)?,
                p => p,
            };
            let taken = st
                .sockets
                .iter()
                .any(|(_, s)| matches!(s, smoltcp::socket::Socket::Udp(u) if u.endpoint().port == port));
            if taken {
                return Err(Error::new(ErrorKind::AddrInUse, format!("UDP port {port} is already in use")));
            }
            let o = &sh.opts;
            let n = o.udp_packets.max(1);
            let oom = || Error::new(ErrorKind::OutOfMemory, "out of memory for a UDP socket");
            let meta = || {
                let mut v = Vec::new();
                v.try_reserve_exact(n).ok()?;
                v.resize(n, udp::PacketMetadata::EMPTY);
                Some(v)
            };
            let (rx_meta, tx_meta) = (meta().ok_or_else(oom)?, meta().ok_or_else(oom)?);
            let rx = crate::stack::try_zeroed(o.udp_rx_buffer).ok_or_else(oom)?;
            let tx = crate::stack::try_zeroed(o.udp_tx_buffer).ok_or_else(oom)?;
            let mut s = udp::Socket::new(udp::PacketBuffer::new(rx_meta, rx), udp::PacketBuffer::new(tx_meta, tx));
            let addr = if a.ip().is_unspecified() { None } else { Some(IpAddress::Ipv4(*a.ip())) };
            s.bind(IpListenEndpoint { addr, port })
                .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("cannot bind UDP {a}: {e}")))?;
            handle = st.sockets.add(s);
        }
        Ok(UdpSocket {
            waiters: SockWait::new(&sh),
            sh,
            handle,
            local: SocketAddr::V4(SocketAddrV4::new(*a.ip(), port)),
            read_timeout: spin::Mutex::new(None),
            write_timeout: spin::Mutex::new(None),
            peer: spin::Mutex::new(None),
            nonblocking: core::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sends one datagram (waits for buffer room). Datagrams must fit one
    /// Ethernet frame: there is no IP fragmentation.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> Result<usize> {
        let to = v4(addr.to_socket_addr()?)?;
        let max = self.sh.dev.mtu().saturating_sub(IP_UDP_HEADERS);
        if buf.len() > max {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("datagram of {} bytes is larger than {max}", buf.len()),
            ));
        }
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(Error::new(ErrorKind::InvalidInput, format!("cannot send to {to}")));
        }
        let h = self.handle;
        let ep = IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port());
        let t = self.timeout(*self.write_timeout.lock());
        let r = self
            .sh
            .wait_socket(h, false, &self.waiters, t, "send_to", |st| {
                let s = st.udp(h);
                if buf.len() > s.payload_send_capacity() {
                    return Some(Err(Error::new(ErrorKind::InvalidInput, "datagram larger than the send buffer")));
                }
                match s.send_slice(buf, ep) {
                    Ok(()) => Some(Ok(buf.len())),
                    Err(udp::SendError::BufferFull) => None,
                    Err(udp::SendError::Unaddressable) => {
                        Some(Err(Error::new(ErrorKind::NetworkUnreachable, format!("cannot send to {to}"))))
                    }
                }
            })
            .inspect(|_| self.sh.kick());
        self.would_block(r)
    }

    /// Receives one datagram; a datagram longer than `buf` is truncated.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        let h = self.handle;
        let t = self.timeout(*self.read_timeout.lock());
        let peer = *self.peer.lock();
        let r = self.sh.wait_socket(h, false, &self.waiters, t, "recv_from", |st| {
            let s = st.udp(h);
            loop {
                let (data, meta) = s.recv().ok()?;
                let from = endpoint_to_addr(meta.endpoint);
                if peer.is_some_and(|p| SocketAddr::V4(p) != from) {
                    continue; // connected: datagrams from others are dropped
                }
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                return Some(Ok((n, from)));
            }
        });
        self.would_block(r)
    }

    /// Sets the default destination of `send` and the only source `recv` accepts.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> Result<()> {
        *self.peer.lock() = Some(v4(addr.to_socket_addr()?)?);
        Ok(())
    }

    /// Sends `buf` to the connected peer.
    pub fn send(&self, buf: &[u8]) -> Result<usize> {
        let p =
            self.peer.lock().ok_or_else(|| Error::new(ErrorKind::NotConnected, "the UDP socket is not connected"))?;
        self.send_to(buf, p)
    }

    /// Receives one datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.local)
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.peer.lock().map(SocketAddr::V4).ok_or_else(|| Error::new(ErrorKind::NotConnected, "not connected"))
    }

    /// Sets how long a receive may block (`None`: forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> Result<()> {
        check(t)?;
        *self.read_timeout.lock() = t;
        Ok(())
    }

    /// Sets how long a send may block (`None`: forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> Result<()> {
        check(t)?;
        *self.write_timeout.lock() = t;
        Ok(())
    }
}

fn check(t: Option<Duration>) -> Result<()> {
    if t.is_some_and(|d| d.is_zero()) {
        return Err(Error::new(ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
    }
    Ok(())
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        // Datagrams still queued are dropped with the socket.
        self.sh.state.lock().sockets.remove(self.handle);
    }
}

impl core::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpSocket").field("local", &self.local).finish()
    }
}
