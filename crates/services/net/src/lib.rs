//! unikit's network service: a TCP/IP stack (smoltcp) over the kernel's
//! `NetDevice`, with blocking sockets shaped like `std::net`.
//!
//! The first use of `TcpListener::bind`, `TcpStream::connect` or
//! `UdpSocket::bind` (or an explicit [`init`]) starts the stack on the first
//! registered network device, configured by the `netdev.ip=` kernel option
//! (see [`config`]); DHCP is the default and gives up after 5 s. A kernel
//! thread named "net" drives the interface; socket calls sleep on a wait
//! queue until they can make progress.
//!
//! The app sees this through `unikit::net`.
// A std crate on the host (unit tests, with std stand-ins for the kernel), no_std in the guest.
#![warn(missing_docs)]
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod addr;
pub mod config;
mod device;
mod error;
pub mod loopback;
mod stack;
mod sys;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

pub use addr::ToSocketAddrs;
pub use config::{IpConfig, Options};
pub use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
pub use device::Stats;
pub use error::{Error, ErrorKind, Result};
pub use loopback::Loopback;
pub use stack::{Net, set_activity_hook};
pub use sys::{DevError, Doorbell, NetDevice};
pub use tcp::{Incoming, Readiness, Shutdown, TcpListener, TcpStream};
pub use udp::UdpSocket;

use alloc::format;

enum Global {
    NotStarted,
    Running(Net),
    Failed(Error),
}

static GLOBAL: sys::SleepLock<Global> = sys::SleepLock::new(Global::NotStarted);

/// The global stack, started on first use.
pub(crate) fn global() -> Result<Net> {
    let mut g = GLOBAL.lock();
    match &*g {
        Global::Running(net) => return ready(net),
        Global::Failed(e) => return Err(e.clone()),
        Global::NotStarted => {}
    }
    let opts = match Options::from_kernel_options(sys::kernel_options()) {
        Ok(o) => o,
        Err(e) => {
            *g = Global::Failed(e.clone());
            return Err(e);
        }
    };
    start_global(&mut g, opts)
}

fn start_global(g: &mut Global, opts: Options) -> Result<Net> {
    let Some(dev) = sys::net_devices().into_iter().next() else {
        let e = Error::new(ErrorKind::NotFound, "no network device");
        *g = Global::Failed(e.clone());
        return Err(e);
    };
    let timeout = opts.dhcp_timeout;
    let net = match Net::start(dev, opts) {
        Ok(n) => n,
        Err(e) => {
            *g = Global::Failed(e.clone());
            return Err(e);
        }
    };
    *g = Global::Running(net.clone());
    let r = net.wait_configured(timeout);
    match net.ipv4_config() {
        Some((a, p, gw)) => {
            let m = net.mac();
            let gw = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            log(format_args!(
                "net: {} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} {a}/{p}{gw}\n",
                net.device_name(),
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5]
            ));
        }
        None => log(format_args!(
            "net: {}: {}\n",
            net.device_name(),
            r.as_ref().err().map(|e| format!("{e}")).unwrap_or_default()
        )),
    }
    r.map(|_| net)
}

/// Calls made after a failed DHCP bring-up fail at once (until a lease
/// arrives later) instead of waiting again.
fn ready(net: &Net) -> Result<Net> {
    if net.ipv4_addr().is_some() {
        return Ok(net.clone());
    }
    Err(Error::new(
        ErrorKind::NetworkDown,
        format!(
            "network not configured: DHCP on {} got no lease within {} s",
            net.device_name(),
            net.options().dhcp_timeout.as_secs_f32()
        ),
    ))
}

/// Starts the global stack now: on the machine's network device, or, when
/// it has none, on a loopback device as 127.0.0.1/8 (so a program can
/// still talk TCP and UDP to itself). For programs that expect the
/// network to be up before their first socket call (a SYN that arrives
/// early gets an answer). Errors are those of the first use.
pub fn start_early() {
    let mut g = GLOBAL.lock();
    if !matches!(&*g, Global::NotStarted) {
        return;
    }
    let Ok(mut opts) = Options::from_kernel_options(sys::kernel_options()) else { return };
    if sys::net_devices().is_empty() {
        opts.ip = IpConfig::Static { addr: Ipv4Addr::new(127, 0, 0, 1), prefix: 8, gateway: None };
        if let Ok(net) = Net::start(Loopback::new(), opts) {
            *g = Global::Running(net);
        }
        return;
    }
    let _ = start_global(&mut g, opts);
}

/// If the global stack runs: waits (up to `timeout`) until every TCP
/// connection, closed ones included, has sent what it queued and had it
/// acknowledged. For a program ending: its data still goes out.
pub fn drain(timeout: core::time::Duration) {
    let net = match &*GLOBAL.lock() {
        Global::Running(n) => n.clone(),
        _ => return,
    };
    net.0.kick();
    let _ = net.0.wait(Some(timeout), "drain", |st| (!st.has_unsent()).then_some(Ok(())));
}

/// Starts the global stack now (with the kernel options) and waits for its
/// address; later calls return the running stack.
pub fn init() -> Result<Net> {
    global()
}

/// Starts the global stack with `opts` (buffer sizes, backlog, ...; the
/// kernel options are not read). Fails if it is already running.
pub fn init_with(opts: Options) -> Result<Net> {
    let mut g = GLOBAL.lock();
    if !matches!(&*g, Global::NotStarted) {
        return Err(Error::new(ErrorKind::InvalidInput, "the network stack is already started"));
    }
    start_global(&mut g, opts)
}

/// The kernel options with the defaults, as `init` would use them (for
/// apps that want to change a few fields and call `init_with`).
pub fn kernel_options() -> Result<Options> {
    Options::from_kernel_options(sys::kernel_options())
}

pub(crate) fn log(args: core::fmt::Arguments) {
    sys::log(args);
}

/// The kernel options this service reads (`netdev.*`, see [`config`]),
/// registered with the kernel so that it reports only options nobody reads.
pub const KERNEL_OPTIONS: &[&str] = &["netdev."];
