//! TCP sockets shaped like `std::net::{TcpListener, TcpStream}`.
use crate::addr::ToSocketAddrs;
use crate::error::{Error, ErrorKind, Result};
use crate::stack::{Shared, SockWait, endpoint_to_addr};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

/// Which halves of a connection [`TcpStream::shutdown`] closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// The receiving half.
    Read,
    /// The sending half.
    Write,
    /// Both halves.
    Both,
}

/// A timeout stored in an atomic: `u64::MAX` means none.
struct Timeout(AtomicU64);

impl Timeout {
    const fn new() -> Self {
        Self(AtomicU64::new(u64::MAX))
    }
    fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }
    fn set(&self, t: Option<Duration>) -> Result<()> {
        let ns = match t {
            None => u64::MAX,
            Some(d) if d.is_zero() => {
                return Err(Error::new(ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
            }
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1).min(u64::MAX - 1),
        };
        self.0.store(ns, Ordering::Relaxed);
        Ok(())
    }
}

/// A TCP server socket. Keeps a few listening sockets on its port and a
/// queue of connections waiting for [`TcpListener::accept`] (up to the
/// backlog in [`crate::Options`]).
pub struct TcpListener {
    sh: Arc<Shared>,
    id: u64,
    local: SocketAddr,
    accept_timeout: Timeout,
    nonblocking: AtomicBool,
}

/// The timeout of an operation: none at all in non-blocking mode (it
/// fails with `WouldBlock` instead of waiting).
fn effective(nonblocking: &AtomicBool, t: &Timeout) -> Option<Duration> {
    if nonblocking.load(Ordering::Relaxed) { Some(Duration::ZERO) } else { t.get() }
}

/// `TimedOut` of a non-blocking operation is `WouldBlock`.
fn would_block<T>(nonblocking: &AtomicBool, r: Result<T>) -> Result<T> {
    match r {
        Err(e) if e.kind() == ErrorKind::TimedOut && nonblocking.load(Ordering::Relaxed) => {
            Err(Error::new(ErrorKind::WouldBlock, "operation would block"))
        }
        r => r,
    }
}

/// What a socket is ready for now (`poll`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// A read (or accept) would not wait.
    pub readable: bool,
    /// A write would not wait.
    pub writable: bool,
    /// The connection is closed (reads return end of stream or an error).
    pub hangup: bool,
}

impl TcpListener {
    pub(crate) fn new(sh: Arc<Shared>, id: u64, local: SocketAddr) -> Self {
        Self { sh, id, local, accept_timeout: Timeout::new(), nonblocking: AtomicBool::new(false) }
    }

    /// Listens on `addr` (`"0.0.0.0:80"`, `80`, ...; port 0 picks a free
    /// port) with the global stack, starting it if needed.
    pub fn bind(addr: impl ToSocketAddrs) -> Result<TcpListener> {
        crate::global()?.tcp_bind(addr)
    }

    /// Waits for a connection.
    pub fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        let id = self.id;
        let t = effective(&self.nonblocking, &self.accept_timeout);
        let (h, peer) = would_block(&self.nonblocking, self.sh.wait(t, "accept", |st| st.accept(id).map(Ok)))?;
        self.sh.kick();
        Ok((TcpStream::new(self.sh.clone(), h), peer))
    }

    /// Makes `accept` give up with `TimedOut` after `t` (`None`: wait forever).
    /// Not in std; handy for servers that also do other work.
    pub fn set_accept_timeout(&self, t: Option<Duration>) -> Result<()> {
        self.accept_timeout.set(t)
    }

    /// An endless iterator of `accept` results.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.local)
    }

    /// In non-blocking mode `accept` fails with `WouldBlock` instead of
    /// waiting.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        self.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Whether a connection is waiting for `accept`.
    pub fn readiness(&self) -> Readiness {
        let st = self.sh.state.lock();
        Readiness { readable: st.has_pending(self.id), ..Readiness::default() }
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        self.sh.state.lock().remove_listener(self.id);
        self.sh.kick();
    }
}

/// An endless iterator over accepted connections ([`TcpListener::incoming`]).
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = Result<TcpStream>;
    fn next(&mut self) -> Option<Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection. Reads and writes block (up to the timeouts set);
/// dropping it closes the connection gracefully.
pub struct TcpStream {
    sh: Arc<Shared>,
    handle: SocketHandle,
    /// This socket's waiters (woken by the socket alone).
    pub(crate) waiters: Arc<SockWait>,
    local: SocketAddr,
    peer: SocketAddr,
    read_timeout: Timeout,
    write_timeout: Timeout,
    read_shut: AtomicBool,
    write_shut: AtomicBool,
    /// The peer's FIN was seen (so a later CLOSED is not a reset).
    eof: AtomicBool,
    nonblocking: AtomicBool,
}

fn reset_error() -> Error {
    Error::new(ErrorKind::ConnectionReset, "connection reset by peer")
}

impl TcpStream {
    pub(crate) fn new(sh: Arc<Shared>, handle: SocketHandle) -> Self {
        let (local, peer) = {
            let mut st = sh.state.lock();
            let s = st.tcp(handle);
            let unspec = SocketAddr::from(([0, 0, 0, 0], 0));
            (
                s.local_endpoint().map(endpoint_to_addr).unwrap_or(unspec),
                s.remote_endpoint().map(endpoint_to_addr).unwrap_or(unspec),
            )
        };
        Self {
            waiters: SockWait::new(&sh),
            sh,
            handle,
            local,
            peer,
            read_timeout: Timeout::new(),
            write_timeout: Timeout::new(),
            read_shut: AtomicBool::new(false),
            write_shut: AtomicBool::new(false),
            eof: AtomicBool::new(false),
            nonblocking: AtomicBool::new(false),
        }
    }

    /// In non-blocking mode reads and writes fail with `WouldBlock`
    /// instead of waiting.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        self.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// What the connection is ready for now.
    pub fn readiness(&self) -> Readiness {
        let mut st = self.sh.state.lock();
        let s = st.tcp(self.handle);
        let closed = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) || !s.may_recv();
        Readiness {
            readable: s.can_recv() || closed || self.read_shut.load(Ordering::Relaxed),
            writable: s.can_send() || !s.may_send(),
            hangup: closed,
        }
    }

    /// Connects with the global stack. A refused connection (RST) is
    /// `ConnectionRefused`; no answer within the connect timeout of
    /// [`crate::Options`] is `TimedOut`.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
        crate::global()?.tcp_connect(addr, None)
    }

    /// Connects to `addr`, failing with `TimedOut` after `timeout`.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<TcpStream> {
        if timeout.is_zero() {
            return Err(Error::new(ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
        }
        crate::global()?.tcp_connect(addr, Some(timeout))
    }

    /// Reads what has arrived (at least one byte; waits if none). Returns 0
    /// at end of stream.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() || self.read_shut.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let h = self.handle;
        let eof = &self.eof;
        let t = effective(&self.nonblocking, &self.read_timeout);
        let n = would_block(
            &self.nonblocking,
            self.sh.wait_socket(h, true, &self.waiters, t, "read", |st| {
                let s = st.tcp(h);
                match s.recv_slice(buf) {
                    Ok(0) => None,
                    Ok(n) => Some(Ok(n)),
                    Err(tcp::RecvError::Finished) => {
                        eof.store(true, Ordering::Relaxed);
                        Some(Ok(0))
                    }
                    Err(tcp::RecvError::InvalidState) if eof.load(Ordering::Relaxed) => Some(Ok(0)),
                    Err(tcp::RecvError::InvalidState) => Some(Err(reset_error())),
                }
            }),
        )?;
        if n > 0 {
            self.sh.kick(); // the window opened: let the net thread tell the peer
        }
        Ok(n)
    }

    /// Reads exactly `buf.len()` bytes (`UnexpectedEof` if the stream ends first).
    pub fn read_exact(&self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.read(buf)? {
                0 => return Err(Error::new(ErrorKind::UnexpectedEof, "failed to fill whole buffer")),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Reads until end of stream, appending to `out`; returns the count.
    pub fn read_to_end(&self, out: &mut Vec<u8>) -> Result<usize> {
        let start = out.len();
        let mut chunk = [0u8; 2048];
        loop {
            match self.read(&mut chunk)? {
                0 => return Ok(out.len() - start),
                n => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Queues bytes for sending (at least one; waits for buffer room).
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.write_shut.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::BrokenPipe, "the stream was shut down for writing"));
        }
        let h = self.handle;
        let eof = &self.eof;
        let t = effective(&self.nonblocking, &self.write_timeout);
        let n = would_block(
            &self.nonblocking,
            self.sh.wait_socket(h, true, &self.waiters, t, "write", |st| {
                let s = st.tcp(h);
                if s.can_send() {
                    return Some(s.send_slice(buf).map_err(|_| reset_error()));
                }
                if s.may_send() {
                    return None; // buffer full
                }
                Some(Err(match s.state() {
                    tcp::State::Closed if !eof.load(Ordering::Relaxed) => reset_error(),
                    _ => Error::new(ErrorKind::BrokenPipe, "the connection is closed"),
                }))
            }),
        )?;
        self.sh.kick();
        Ok(n)
    }

    /// Writes all of `buf`, blocking as needed.
    pub fn write_all(&self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.write(buf)? {
                0 => return Err(Error::new(ErrorKind::WriteZero, "failed to write whole buffer")),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Waits until everything written so far has been acknowledged by the
    /// peer (stronger than std, where flush does nothing for TCP).
    pub fn flush(&self) -> Result<()> {
        let h = self.handle;
        self.sh.wait_socket(h, true, &self.waiters, self.write_timeout.get(), "flush", |st| {
            let s = st.tcp(h);
            if s.send_queue() == 0 {
                Some(Ok(()))
            } else if s.state() == tcp::State::Closed {
                Some(Err(reset_error()))
            } else {
                None
            }
        })
    }

    /// Closes one or both halves: `Write` sends FIN after queued data (the
    /// peer reads end of stream), `Read` makes reads return 0.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.read_shut.store(true, Ordering::Relaxed);
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) && !self.write_shut.swap(true, Ordering::Relaxed) {
            let mut st = self.sh.state.lock();
            let s = st.tcp(self.handle);
            if s.state() == tcp::State::Closed {
                return Err(Error::new(ErrorKind::NotConnected, "the connection is closed"));
            }
            s.close();
            drop(st);
            self.sh.kick();
        }
        Ok(())
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.peer)
    }

    /// This end's address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.local)
    }

    /// `None`: reads wait forever; otherwise they fail with `TimedOut`.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> Result<()> {
        self.read_timeout.set(t)
    }

    /// Sets how long a write may block (`None`: forever).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> Result<()> {
        self.write_timeout.set(t)
    }

    /// How long a read may block.
    pub fn read_timeout(&self) -> Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// How long a write may block.
    pub fn write_timeout(&self) -> Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Disables Nagle's algorithm (small writes go out at once).
    pub fn set_nodelay(&self, nodelay: bool) -> Result<()> {
        self.sh.state.lock().tcp(self.handle).set_nagle_enabled(!nodelay);
        Ok(())
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self) -> Result<bool> {
        Ok(!self.sh.state.lock().tcp(self.handle).nagle_enabled())
    }

    /// Sends keep-alive probes after `interval` of silence.
    pub fn set_keepalive(&self, interval: Option<Duration>) -> Result<()> {
        self.sh
            .state
            .lock()
            .tcp(self.handle)
            .set_keep_alive(interval.map(|d| smoltcp::time::Duration::from_micros(d.as_micros() as u64)));
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.sh.state.lock().release_tcp(self.handle, false);
        self.sh.kick();
    }
}

impl core::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpStream").field("local", &self.local).field("peer", &self.peer).finish()
    }
}

impl core::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TcpListener").field("local", &self.local).finish()
    }
}
