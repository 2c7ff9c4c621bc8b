//! Stack configuration: the `netdev.*` kernel options and tunables.
//!
//! - `netdev.ip=ADDR/PREFIX[:GATEWAY]` (e.g. `10.0.2.15/24:10.0.2.2`) sets a
//!   static address; `netdev.ip=dhcp` (the default) asks DHCP.
//! - `netdev.dhcp_timeout=SECONDS` is how long bring-up waits for a lease
//!   (default 5).
//! - `netdev.tcp_rx_buffer=BYTES` / `netdev.tcp_tx_buffer=BYTES` size every
//!   TCP socket's buffers (defaults 4096 / 8192, 256 to 1048576), and
//!   `netdev.backlog=N` a listener's accept queue (default 256).
use crate::error::{Error, ErrorKind, Result};
use alloc::format;
use core::net::Ipv4Addr;
use core::time::Duration;

/// How the interface gets its IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpConfig {
    /// Ask a DHCP server (the default).
    Dhcp,
    /// A fixed address (`--ip ADDR/PREFIX[:GW]`).
    Static {
        /// The interface's address.
        addr: Ipv4Addr,
        /// Network prefix length (24 for a /24).
        prefix: u8,
        /// Default route, if any.
        gateway: Option<Ipv4Addr>,
    },
}

/// Everything the stack can be tuned with. `Options::default()` plus the
/// kernel options is what the first use of the API starts with; an app
/// wanting other buffer sizes calls [`crate::init_with`] first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// How the interface gets its address.
    pub ip: IpConfig,
    /// Receive / send buffer of every TCP socket, in bytes. Small by
    /// default (4 KiB / 8 KiB, a few pages per idle connection, as Linux's
    /// initial buffers): what one connection costs bounds how many a
    /// small VM holds. The receive buffer is also the advertised window.
    pub tcp_rx_buffer: usize,
    /// Send buffer of every TCP socket, in bytes.
    pub tcp_tx_buffer: usize,
    /// Receive / send buffer of every UDP socket, in bytes, and how many
    /// datagrams each may hold.
    pub udp_rx_buffer: usize,
    /// Send buffer of every UDP socket, in bytes.
    pub udp_tx_buffer: usize,
    /// Datagrams each UDP socket buffer holds.
    pub udp_packets: usize,
    /// Connections a listener keeps waiting for `accept` (like `listen(2)`'s
    /// backlog). Beyond it, new connections are refused.
    pub backlog: usize,
    /// Listening sockets kept ready per listener (refilled after every
    /// received packet, so a small number absorbs bursts of SYNs).
    pub listen_spare: usize,
    /// How long bring-up waits for a DHCP lease.
    pub dhcp_timeout: Duration,
    /// How long `TcpStream::connect` waits for the handshake.
    pub connect_timeout: Duration,
    /// How long a closed socket may linger (FIN not acknowledged, peer never
    /// closing its side) before it is aborted and freed.
    pub linger_timeout: Duration,
    /// Memory the frame allocator must still have free for a connection
    /// to be admitted; otherwise its SYN gets a RST. It keeps
    /// room for what the app spends on a connection (a thread, buffers),
    /// so that a flood of clients costs refused connections, not a guest
    /// stopped by a failed allocation.
    pub admission_reserve: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ip: IpConfig::Dhcp,
            tcp_rx_buffer: 4 * 1024,
            tcp_tx_buffer: 8 * 1024,
            udp_rx_buffer: 64 * 1024,
            udp_tx_buffer: 64 * 1024,
            udp_packets: 64,
            backlog: 256,
            listen_spare: 4,
            dhcp_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(60),
            admission_reserve: 256 * 1024,
        }
    }
}

impl Options {
    /// Defaults overridden by `netdev.*` options (later ones win). Unknown
    /// `netdev.*` options and malformed values are errors.
    pub fn from_kernel_options<'a>(opts: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut o = Options::default();
        for opt in opts {
            let Some(rest) = opt.strip_prefix("netdev.") else { continue };
            let (key, value) = rest.split_once('=').ok_or_else(|| {
                Error::new(ErrorKind::InvalidInput, format!("kernel option '{opt}': expected netdev.KEY=VALUE"))
            })?;
            match key {
                "ip" => o.ip = parse_ip_config(value)?,
                "dhcp_timeout" => {
                    let s: u64 = value.parse().ok().filter(|&s| s > 0 && s <= 3600).ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("netdev.dhcp_timeout='{value}': expected a number of seconds (1-3600)"),
                        )
                    })?;
                    o.dhcp_timeout = Duration::from_secs(s);
                }
                "tcp_rx_buffer" => o.tcp_rx_buffer = parse_range(key, value, 256, 1 << 20)?,
                "tcp_tx_buffer" => o.tcp_tx_buffer = parse_range(key, value, 256, 1 << 20)?,
                "backlog" => o.backlog = parse_range(key, value, 1, 65535)?,
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "unknown kernel option '{opt}' (known: netdev.ip, netdev.dhcp_timeout, \
                             netdev.tcp_rx_buffer, netdev.tcp_tx_buffer, netdev.backlog)"
                        ),
                    ));
                }
            }
        }
        Ok(o)
    }
}

fn parse_range(key: &str, value: &str, lo: usize, hi: usize) -> Result<usize> {
    value.parse().ok().filter(|v| (lo..=hi).contains(v)).ok_or_else(|| {
        Error::new(ErrorKind::InvalidInput, format!("netdev.{key}='{value}': expected a number from {lo} to {hi}"))
    })
}

fn bad(value: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("netdev.ip='{value}': {why} (expected 'dhcp' or ADDR/PREFIX[:GATEWAY], e.g. 10.0.2.15/24:10.0.2.2)"),
    )
}

fn parse_v4(value: &str, s: &str, what: &str) -> Result<Ipv4Addr> {
    s.parse::<Ipv4Addr>().map_err(|_| bad(value, &format!("'{s}' is not an IPv4 {what}")))
}

/// Parses the value of `netdev.ip=`.
pub fn parse_ip_config(value: &str) -> Result<IpConfig> {
    if value.eq_ignore_ascii_case("dhcp") {
        return Ok(IpConfig::Dhcp);
    }
    if value.is_empty() {
        return Err(bad(value, "empty value"));
    }
    let (cidr, gw) = match value.split_once(':') {
        Some((c, g)) => (c, Some(g)),
        None => (value, None),
    };
    let (addr, prefix) = cidr.split_once('/').ok_or_else(|| bad(value, "missing /PREFIX"))?;
    let addr = parse_v4(value, addr, "address")?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|&p| (1..=32).contains(&p))
        .ok_or_else(|| bad(value, &format!("prefix '{prefix}' is not a number from 1 to 32")))?;
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
        return Err(bad(value, &format!("{addr} cannot be an interface address")));
    }
    let mask = u32::MAX << (32 - prefix as u32);
    let net = u32::from(addr) & mask;
    if prefix <= 30 && (u32::from(addr) == net || u32::from(addr) == net | !mask) {
        return Err(bad(value, &format!("{addr} is the network or broadcast address of /{prefix}")));
    }
    let gateway = match gw {
        None => None,
        Some(g) => {
            let g = parse_v4(value, g, "gateway")?;
            if u32::from(g) & mask != net {
                return Err(bad(value, &format!("gateway {g} is outside {addr}/{prefix}")));
            }
            if g == addr {
                return Err(bad(value, "the gateway is the interface's own address"));
            }
            Some(g)
        }
    };
    Ok(IpConfig::Static { addr, prefix, gateway })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_values() {
        assert_eq!(parse_ip_config("dhcp").unwrap(), IpConfig::Dhcp);
        assert_eq!(parse_ip_config("DHCP").unwrap(), IpConfig::Dhcp);
        assert_eq!(
            parse_ip_config("10.0.2.15/24:10.0.2.2").unwrap(),
            IpConfig::Static {
                addr: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2))
            }
        );
        assert_eq!(
            parse_ip_config("127.0.0.1/8").unwrap(),
            IpConfig::Static { addr: Ipv4Addr::LOCALHOST, prefix: 8, gateway: None }
        );
        assert!(parse_ip_config("192.168.1.7/32").is_ok());
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("foo", "missing /PREFIX"),
            ("10.0.2.15", "missing /PREFIX"),
            ("10.0.2/24", "not an IPv4 address"),
            ("10.0.2.300/24", "not an IPv4 address"),
            ("10.0.2.15/33", "prefix '33'"),
            ("10.0.2.15/0", "prefix '0'"),
            ("10.0.2.15/x", "prefix 'x'"),
            ("10.0.2.15/24:", "not an IPv4 gateway"),
            ("10.0.2.15/24:gw", "not an IPv4 gateway"),
            ("10.0.2.15/24:10.0.3.1", "outside"),
            ("10.0.2.15/24:10.0.2.15", "own address"),
            ("0.0.0.0/8", "cannot be an interface address"),
            ("224.0.0.1/4", "cannot be an interface address"),
            ("10.0.2.0/24", "network or broadcast"),
            ("10.0.2.255/24", "network or broadcast"),
            ("10.0.2.15/24:10.0.2.2:1", "not an IPv4 gateway"),
        ];
        for (input, why) in cases {
            let e = parse_ip_config(input).expect_err(input);
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            let msg = alloc::string::ToString::to_string(&e);
            assert!(msg.contains(why), "{input}: {msg}");
            assert!(msg.contains("netdev.ip="), "{msg}");
        }
    }

    #[test]
    fn kernel_options() {
        let o =
            Options::from_kernel_options(["unikit.quiet", "netdev.ip=10.0.0.2/8", "netdev.dhcp_timeout=2"]).unwrap();
        assert_eq!(o.ip, IpConfig::Static { addr: Ipv4Addr::new(10, 0, 0, 2), prefix: 8, gateway: None });
        assert_eq!(o.dhcp_timeout, Duration::from_secs(2));
        assert_eq!(Options::from_kernel_options([]).unwrap(), Options::default());
        let o = Options::from_kernel_options(["netdev.ip=10.0.0.2/8", "netdev.ip=dhcp"]).unwrap();
        assert_eq!(o.ip, IpConfig::Dhcp);
        assert!(Options::from_kernel_options(["netdev.ip"]).is_err());
        assert!(Options::from_kernel_options(["netdev.dhcp_timeout=0"]).is_err());
        assert!(Options::from_kernel_options(["netdev.dhcp_timeout=abc"]).is_err());
        let o = Options::from_kernel_options(["netdev.tcp_rx_buffer=2048", "netdev.backlog=16"]).unwrap();
        assert_eq!((o.tcp_rx_buffer, o.backlog), (2048, 16));
        assert!(Options::from_kernel_options(["netdev.tcp_tx_buffer=10"]).is_err());
        assert!(Options::from_kernel_options(["netdev.backlog=x"]).is_err());
        let e = Options::from_kernel_options(["netdev.mtu=9000"]).unwrap_err();
        assert!(alloc::string::ToString::to_string(&e).contains("unknown kernel option 'netdev.mtu=9000'"));
    }
}
