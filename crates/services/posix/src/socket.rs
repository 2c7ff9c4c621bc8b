//! IPv4 TCP and UDP sockets over unikit's TCP/IP stack (`unikit-net`).
//!
//! Linux separates `bind` and `listen`; the stack listens as it binds, so a
//! TCP socket remembers its address until `listen` (or `connect`).

use crate::errno::*;
use crate::fd::{FileLike, POLLERR, POLLHUP, POLLIN, POLLOUT, S_IFSOCK, Stat};
use alloc::sync::Arc;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use unikit_net::{ErrorKind, Readiness, Shutdown, TcpListener, TcpStream, UdpSocket};

/// `SOCK_STREAM`.
pub const SOCK_STREAM: u32 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u32 = 2;

enum State {
    /// TCP before `listen` or `connect`.
    Fresh(Option<SocketAddrV4>),
    Listener(Arc<TcpListener>),
    Stream(Arc<TcpStream>),
    /// UDP, bound once it is used.
    Udp(Option<Arc<UdpSocket>>),
}

/// One socket.
pub struct Socket {
    state: Mutex<State>,
    kind: u32,
    nonblocking: AtomicBool,
    /// Error of the last failed connect (`SO_ERROR`).
    pending_error: Mutex<Errno>,
}

/// The errno of a network error.
pub fn errno(e: &unikit_net::Error) -> Errno {
    match e.kind() {
        ErrorKind::WouldBlock => EAGAIN,
        ErrorKind::ConnectionRefused => ECONNREFUSED,
        ErrorKind::ConnectionReset => ECONNRESET,
        ErrorKind::ConnectionAborted => ECONNABORTED,
        ErrorKind::NotConnected => ENOTCONN,
        ErrorKind::AddrInUse => EADDRINUSE,
        ErrorKind::AddrNotAvailable => EADDRNOTAVAIL,
        ErrorKind::BrokenPipe => EPIPE,
        ErrorKind::TimedOut => ETIMEDOUT,
        ErrorKind::OutOfMemory => ENOBUFS,
        ErrorKind::NetworkDown => 100, // ENETDOWN
        ErrorKind::NetworkUnreachable => ENETUNREACH,
        ErrorKind::HostUnreachable => EHOSTUNREACH,
        ErrorKind::Unsupported => EOPNOTSUPP,
        ErrorKind::InvalidInput => EINVAL,
        _ => EIO,
    }
}

/// Wakes `poll` and `epoll` waiters when the stack changed a socket.
fn activity() {
    crate::pipe::IO_EVENTS.notify_all();
}

impl Socket {
    /// A new socket of `kind` (`SOCK_STREAM` or `SOCK_DGRAM`).
    pub fn new(kind: u32, nonblocking: bool) -> Self {
        unikit_net::set_activity_hook(activity);
        let state = if kind == SOCK_STREAM { State::Fresh(None) } else { State::Udp(None) };
        Self { state: Mutex::new(state), kind, nonblocking: AtomicBool::new(nonblocking), pending_error: Mutex::new(0) }
    }

    /// The socket's type.
    pub fn kind(&self) -> u32 {
        self.kind
    }

    fn nb(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    fn udp(&self) -> Result<Arc<UdpSocket>, Errno> {
        let mut st = self.state.lock();
        match &mut *st {
            State::Udp(Some(u)) => Ok(u.clone()),
            State::Udp(slot @ None) => {
                let u = Arc::new(UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| errno(&e))?);
                u.set_nonblocking(self.nb()).ok();
                *slot = Some(u.clone());
                Ok(u)
            }
            _ => Err(EINVAL),
        }
    }

    fn stream(&self) -> Result<Arc<TcpStream>, Errno> {
        match &*self.state.lock() {
            State::Stream(s) => Ok(s.clone()),
            _ => Err(ENOTCONN),
        }
    }

    /// `bind`.
    pub fn bind(&self, addr: SocketAddrV4) -> Result<(), Errno> {
        let mut st = self.state.lock();
        match &mut *st {
            State::Fresh(a @ None) => {
                *a = Some(addr);
                Ok(())
            }
            State::Udp(slot @ None) => {
                let u = Arc::new(UdpSocket::bind(addr).map_err(|e| errno(&e))?);
                u.set_nonblocking(self.nb()).ok();
                *slot = Some(u);
                Ok(())
            }
            _ => Err(EINVAL),
        }
    }

    /// `listen`.
    pub fn listen(&self) -> Result<(), Errno> {
        let mut st = self.state.lock();
        match &*st {
            State::Fresh(a) => {
                let addr = a.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
                let l = TcpListener::bind(addr).map_err(|e| errno(&e))?;
                l.set_nonblocking(self.nb()).ok();
                *st = State::Listener(Arc::new(l));
                Ok(())
            }
            State::Listener(_) => Ok(()),
            _ => Err(EINVAL),
        }
    }

    /// `accept`: a new connected socket and the peer's address.
    pub fn accept(&self, nonblocking: bool) -> Result<(Socket, SocketAddr), Errno> {
        let l = match &*self.state.lock() {
            State::Listener(l) => l.clone(),
            _ => return Err(EINVAL),
        };
        let (s, peer) = l.accept().map_err(|e| errno(&e))?;
        s.set_nonblocking(nonblocking).ok();
        let sock = Socket {
            state: Mutex::new(State::Stream(Arc::new(s))),
            kind: SOCK_STREAM,
            nonblocking: AtomicBool::new(nonblocking),
            pending_error: Mutex::new(0),
        };
        Ok((sock, peer))
    }

    /// `connect` (completes before returning, non-blocking or not).
    pub fn connect(&self, addr: SocketAddrV4) -> Result<(), Errno> {
        if self.kind == SOCK_DGRAM {
            return self.udp()?.connect(addr).map_err(|e| errno(&e));
        }
        if !matches!(&*self.state.lock(), State::Fresh(_)) {
            return Err(EISCONN);
        }
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_nonblocking(self.nb()).ok();
                *self.state.lock() = State::Stream(Arc::new(s));
                Ok(())
            }
            Err(e) => {
                let n = errno(&e);
                *self.pending_error.lock() = n;
                Err(n)
            }
        }
    }

    /// `sendto` with an address (UDP).
    pub fn send_to(&self, buf: &[u8], to: SocketAddrV4) -> Result<usize, Errno> {
        if self.kind == SOCK_STREAM {
            return self.write(buf);
        }
        self.udp()?.send_to(buf, to).map_err(|e| errno(&e))
    }

    /// `recvfrom`: the bytes and, for UDP, the sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, Option<SocketAddr>), Errno> {
        if self.kind == SOCK_STREAM {
            return self.read(buf).map(|n| (n, None));
        }
        self.udp()?.recv_from(buf).map(|(n, a)| (n, Some(a))).map_err(|e| errno(&e))
    }

    /// `shutdown`.
    pub fn shutdown(&self, how: u64) -> Result<(), Errno> {
        let how = match how {
            0 => Shutdown::Read,
            1 => Shutdown::Write,
            2 => Shutdown::Both,
            _ => return Err(EINVAL),
        };
        self.stream()?.shutdown(how).map_err(|e| errno(&e))
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SocketAddr, Errno> {
        let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        match &*self.state.lock() {
            State::Fresh(a) => Ok(a.map(SocketAddr::V4).unwrap_or(any)),
            State::Listener(l) => l.local_addr().map_err(|e| errno(&e)),
            State::Stream(s) => s.local_addr().map_err(|e| errno(&e)),
            State::Udp(Some(u)) => u.local_addr().map_err(|e| errno(&e)),
            State::Udp(None) => Ok(any),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, Errno> {
        match &*self.state.lock() {
            State::Stream(s) => s.peer_addr().map_err(|e| errno(&e)),
            State::Udp(Some(u)) => u.peer_addr().map_err(|e| errno(&e)),
            _ => Err(ENOTCONN),
        }
    }

    /// `SO_ERROR`: the last connect error, cleared by reading it.
    pub fn take_error(&self) -> Errno {
        core::mem::take(&mut *self.pending_error.lock())
    }

    /// At exit: sends what is queued and waits (up to `timeout`) for the
    /// peer to acknowledge it, as a Linux kernel keeps sending after the
    /// process is gone; the VM then stops.
    pub fn linger(&self, timeout: core::time::Duration) {
        if let Ok(s) = self.stream() {
            let _ = s.set_write_timeout(Some(timeout));
            let _ = s.flush();
            let _ = s.shutdown(Shutdown::Write);
            let _ = s.flush();
        }
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) {
        if let Ok(s) = self.stream() {
            let _ = s.set_nodelay(on);
        }
    }

    fn readiness(&self) -> Option<Readiness> {
        match &*self.state.lock() {
            State::Fresh(_) => None,
            State::Listener(l) => Some(l.readiness()),
            State::Stream(s) => Some(s.readiness()),
            State::Udp(Some(u)) => Some(u.readiness()),
            State::Udp(None) => Some(Readiness { readable: false, writable: true, hangup: false }),
        }
    }
}

impl FileLike for Socket {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        if self.kind == SOCK_DGRAM {
            return self.recv_from(buf).map(|(n, _)| n);
        }
        self.stream()?.read(buf).map_err(|e| errno(&e))
    }

    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        if self.kind == SOCK_DGRAM {
            return self
                .udp()?
                .send(buf)
                .map_err(|e| if e.kind() == ErrorKind::NotConnected { EDESTADDRREQ } else { errno(&e) });
        }
        self.stream()?.write(buf).map_err(|e| errno(&e))
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: S_IFSOCK | 0o777, ino: self as *const Self as u64, ..Stat::default() })
    }

    fn poll(&self, events: u16) -> u16 {
        let Some(r) = self.readiness() else {
            return POLLOUT & events; // neither connected nor listening
        };
        let mut out = 0;
        if r.readable {
            out |= POLLIN;
        }
        if r.writable {
            out |= POLLOUT;
        }
        if r.hangup {
            out |= POLLHUP;
        }
        if *self.pending_error.lock() != 0 {
            out |= POLLERR;
        }
        out & (events | POLLERR | POLLHUP)
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        match &*self.state.lock() {
            State::Listener(l) => {
                l.set_nonblocking(on).ok();
            }
            State::Stream(s) => {
                s.set_nonblocking(on).ok();
            }
            State::Udp(Some(u)) => {
                u.set_nonblocking(on).ok();
            }
            _ => {}
        }
    }

    fn as_socket(&self) -> Option<&Socket> {
        Some(self)
    }
}
