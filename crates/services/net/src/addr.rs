//! Socket addresses: `core::net`'s types (the same as std's) and a
//! `ToSocketAddrs` that accepts what std's does, minus name resolution.
use crate::error::{Error, ErrorKind, Result};
use alloc::format;
use alloc::string::String;
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Things that name one socket address: `"10.0.2.15:80"`, `"localhost:80"`,
/// `(Ipv4Addr, u16)`, `SocketAddr`, or a bare port (`80`, meaning
/// `0.0.0.0:80`). No DNS yet: names other than `localhost` are an error.
pub trait ToSocketAddrs {
    /// The one address named (`localhost` is 127.0.0.1).
    fn to_socket_addr(&self) -> Result<SocketAddr>;
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        (**self).to_socket_addr()
    }
}

impl ToSocketAddrs for SocketAddr {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        Ok(*self)
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        Ok(SocketAddr::V4(*self))
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        Ok(SocketAddr::new(IpAddr::V4(self.0), self.1))
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        Ok(SocketAddr::new(self.0, self.1))
    }
}

impl ToSocketAddrs for ([u8; 4], u16) {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        Ok(SocketAddr::new(IpAddr::V4(self.0.into()), self.1))
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        Ok(SocketAddr::new(parse_host(self.0)?, self.1))
    }
}

/// A bare port: the unspecified address `0.0.0.0`.
impl ToSocketAddrs for u16 {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *self))
    }
}

/// A bare port given as an untyped integer literal (`bind(80)`).
impl ToSocketAddrs for i32 {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        let p = u16::try_from(*self)
            .map_err(|_| Error::new(ErrorKind::InvalidInput, format!("port {self} is out of range (0-65535)")))?;
        p.to_socket_addr()
    }
}

impl ToSocketAddrs for str {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        if let Ok(a) = self.parse::<SocketAddr>() {
            return Ok(a);
        }
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, format!("'{self}': expected HOST:PORT")))?;
        let port: u16 =
            port.parse().map_err(|_| Error::new(ErrorKind::InvalidInput, format!("'{self}': bad port '{port}'")))?;
        Ok(SocketAddr::new(parse_host(host)?, port))
    }
}

impl ToSocketAddrs for String {
    fn to_socket_addr(&self) -> Result<SocketAddr> {
        self.as_str().to_socket_addr()
    }
}

fn parse_host(host: &str) -> Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Err(Error::new(ErrorKind::InvalidInput, format!("'{host}': not an IP address (no DNS resolver yet)")))
}

/// The IPv4 half of an address; IPv6 is not supported yet.
pub(crate) fn v4(a: SocketAddr) -> Result<SocketAddrV4> {
    match a {
        SocketAddr::V4(v) => Ok(v),
        SocketAddr::V6(_) => Err(Error::new(ErrorKind::Unsupported, format!("{a}: IPv6 is not supported yet"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!("10.0.2.15:80".to_socket_addr().unwrap(), sa("10.0.2.15:80"));
        assert_eq!("localhost:8080".to_socket_addr().unwrap(), sa("127.0.0.1:8080"));
        assert_eq!(("10.0.0.1", 7).to_socket_addr().unwrap(), sa("10.0.0.1:7"));
        assert_eq!((Ipv4Addr::new(1, 2, 3, 4), 5).to_socket_addr().unwrap(), sa("1.2.3.4:5"));
        assert_eq!(80u16.to_socket_addr().unwrap(), sa("0.0.0.0:80"));
        assert_eq!(80.to_socket_addr().unwrap(), sa("0.0.0.0:80"));
        assert_eq!(String::from("1.1.1.1:53").to_socket_addr().unwrap(), sa("1.1.1.1:53"));
        for bad in ["", "1.2.3.4", "1.2.3.4:99999", "example.com:80", "1.2.3.4:x"] {
            assert_eq!(bad.to_socket_addr().unwrap_err().kind(), ErrorKind::InvalidInput, "{bad}");
        }
        assert!((-1).to_socket_addr().is_err());
        assert_eq!(v4(sa("[::1]:80")).unwrap_err().kind(), ErrorKind::Unsupported);
    }
}
