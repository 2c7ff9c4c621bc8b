//! Networking, shaped like `std::net`: TCP and UDP sockets over IPv4.
//!
//! The stack starts on first use, on the first network device the platform
//! registered, configured by the `netdev.ip=` kernel option
//! (`ADDR/PREFIX[:GATEWAY]`, or `dhcp`, the default; DHCP gives up after
//! 5 s). Calls block the calling thread only.
//!
//! ```ignore
//! use unikit::net::TcpListener;
//! let listener = TcpListener::bind("0.0.0.0:80")?;
//! loop {
//!     let (stream, peer) = listener.accept()?;
//!     unikit::thread::spawn(move || {
//!         let mut buf = [0u8; 1024];
//!         while let Ok(n) = stream.read(&mut buf) {
//!             if n == 0 || stream.write_all(&buf[..n]).is_err() { break }
//!         }
//!     });
//! }
//! ```
//!
//! Differences from std: no DNS (`"localhost"` only) and no IPv6 yet;
//! `TcpStream::flush` waits until the peer acknowledged everything written;
//! methods take `&self`, so a stream can be shared between threads in an
//! `Arc` (like std's `impl Read for &TcpStream`).
pub use unikit_net::{
    Error, ErrorKind, Incoming, IpAddr, IpConfig, Ipv4Addr, Ipv6Addr, Loopback, Net, Options, Result, Shutdown,
    SocketAddr, SocketAddrV4, TcpListener, TcpStream, ToSocketAddrs, UdpSocket, init, init_with, kernel_options,
};

/// Registers a network device with the kernel (e.g. [`Loopback::new()`] to
/// talk to yourself over 127.0.0.1 without a NIC). Call it before the
/// first use of the network.
pub fn register_device(dev: alloc::sync::Arc<dyn unikit_kernel::dev::NetDevice>) {
    unikit_kernel::dev::register_net(dev);
}
