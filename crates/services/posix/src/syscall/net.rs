//! The socket calls (AF_INET; IPv6 and AF_UNIX are refused with
//! EAFNOSUPPORT, which runtimes such as Go's take as "use IPv4").

use super::SysResult;
use crate::errno::*;
use crate::fd::{self, Fd};
use crate::socket::{SOCK_DGRAM, SOCK_STREAM, Socket};
use crate::vm;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

const AF_INET: u16 = 2;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const MAX_IO: usize = 1 << 20;

fn with_socket<R>(fd: i64, f: impl FnOnce(&Socket) -> Result<R, Errno>) -> Result<R, Errno> {
    let file = fd::get(fd)?;
    let s = file.as_socket().ok_or(ENOTSOCK)?;
    f(s)
}

/// The send calls: a datagram (UDP) goes out whole, to `to` or the
/// connected peer; a stream (TCP, a `socketpair` end) is written a chunk
/// at a time, as `write` does (an address given with it is ignored, as
/// Linux does on a connected stream).
fn send(fd: i64, pieces: &[(u64, u64)], to: Option<SocketAddrV4>) -> SysResult {
    let file = fd::get(fd)?;
    if !file.is_socket() {
        return Err(ENOTSOCK);
    }
    match file.as_socket() {
        Some(s) if s.kind() == SOCK_DGRAM => {
            let mut data = Vec::new();
            for &(b, l) in pieces {
                if data.len() + l as usize > 65536 {
                    return Err(EMSGSIZE);
                }
                data.extend_from_slice(&vm::read_vec(b, l as usize)?);
            }
            match to {
                Some(a) => s.send_to(&data, a),
                None => crate::fd::FileLike::write(s, &data),
            }
            .map(|n| n as u64)
        }
        _ => super::fs::write_gather(&*file, pieces),
    }
}

/// Receives on an addressless socket: a plain read.
fn recv_plain(fd: i64, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    let file = fd::get(fd)?;
    if file.as_socket().is_some() {
        return Ok(None);
    }
    if !file.is_socket() {
        return Err(ENOTSOCK);
    }
    file.read(buf).map(Some)
}

fn read_addr(addr: u64, len: u64) -> Result<SocketAddrV4, Errno> {
    if len < 8 {
        return Err(EINVAL);
    }
    let mut b = [0u8; 8];
    vm::read(addr, &mut b)?;
    if u16::from_le_bytes([b[0], b[1]]) != AF_INET {
        return Err(EAFNOSUPPORT);
    }
    Ok(SocketAddrV4::new(Ipv4Addr::new(b[4], b[5], b[6], b[7]), u16::from_be_bytes([b[2], b[3]])))
}

/// Writes `a` as a `sockaddr_in` to `(addr, *lenp)`, truncated as Linux does.
fn write_addr(addr: u64, lenp: u64, a: SocketAddr) -> Result<(), Errno> {
    if addr == 0 || lenp == 0 {
        return Ok(());
    }
    let SocketAddr::V4(a) = a else { return Err(EAFNOSUPPORT) };
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&AF_INET.to_le_bytes());
    b[2..4].copy_from_slice(&a.port().to_be_bytes());
    b[4..8].copy_from_slice(&a.ip().octets());
    let mut l = [0u8; 4];
    vm::read(lenp, &mut l)?;
    let room = (u32::from_le_bytes(l) as usize).min(16);
    vm::write(addr, &b[..room])?;
    vm::write(lenp, &16u32.to_le_bytes())
}

pub fn socket(domain: u64, ty: u64, _proto: u64) -> SysResult {
    if domain != AF_INET as u64 {
        return Err(EAFNOSUPPORT);
    }
    let kind = (ty & 0xf) as u32;
    if kind != SOCK_STREAM && kind != SOCK_DGRAM {
        return Err(EPROTONOSUPPORT);
    }
    let s = Socket::new(kind, ty & SOCK_NONBLOCK != 0);
    let flags = 2 | if ty & SOCK_NONBLOCK != 0 { 0o4000 } else { 0 };
    Ok(fd::insert(Fd { file: Arc::new(s), cloexec: ty & SOCK_CLOEXEC != 0, flags }, 0)? as u64)
}

/// `socketpair(AF_UNIX, SOCK_STREAM)`: two connected ends, each reading
/// what the other writes (two pipes).
pub fn socketpair(domain: u64, ty: u64, fds: u64) -> SysResult {
    const AF_UNIX: u64 = 1;
    if domain != AF_UNIX {
        return Err(EAFNOSUPPORT);
    }
    if ty & 0xf != SOCK_STREAM as u64 {
        return Err(EOPNOTSUPP);
    }
    let (a, b) = crate::pipe::socket_pair(ty & SOCK_NONBLOCK != 0);
    let cloexec = ty & SOCK_CLOEXEC != 0;
    super::fs::install_pair(fds, Fd { file: a, cloexec, flags: 2 }, Fd { file: b, cloexec, flags: 2 })
}

pub fn bind(fd: i64, addr: u64, len: u64) -> SysResult {
    let a = read_addr(addr, len)?;
    with_socket(fd, |s| s.bind(a)).map(|_| 0)
}

pub fn listen(fd: i64) -> SysResult {
    with_socket(fd, |s| s.listen()).map(|_| 0)
}

pub fn accept4(fd: i64, addr: u64, lenp: u64, flags: u64) -> SysResult {
    let (sock, peer) = with_socket(fd, |s| s.accept(flags & SOCK_NONBLOCK != 0))?;
    write_addr(addr, lenp, peer)?;
    let fl = 2 | if flags & SOCK_NONBLOCK != 0 { 0o4000 } else { 0 };
    Ok(fd::insert(Fd { file: Arc::new(sock), cloexec: flags & SOCK_CLOEXEC != 0, flags: fl }, 0)? as u64)
}

pub fn connect(fd: i64, addr: u64, len: u64) -> SysResult {
    let a = read_addr(addr, len)?;
    with_socket(fd, |s| s.connect(a)).map(|_| 0)
}

pub fn sendto(fd: i64, buf: u64, len: u64, _flags: u64, addr: u64, alen: u64) -> SysResult {
    let to = if addr != 0 { Some(read_addr(addr, alen)?) } else { None };
    send(fd, &[(buf, len)], to)
}

pub fn recvfrom(fd: i64, buf: u64, len: u64, _flags: u64, addr: u64, lenp: u64) -> SysResult {
    let mut tmp = vec![0u8; (len as usize).min(MAX_IO)];
    if let Some(n) = recv_plain(fd, &mut tmp)? {
        vm::write(buf, &tmp[..n])?;
        return Ok(n as u64);
    }
    let (n, from) = with_socket(fd, |s| s.recv_from(&mut tmp))?;
    vm::write(buf, &tmp[..n])?;
    if let Some(a) = from {
        write_addr(addr, lenp, a)?;
    }
    Ok(n as u64)
}

/// `struct msghdr`: name, namelen, iovecs (base, length).
type MsgHdr = (u64, u64, Vec<(u64, u64)>);

fn msghdr(p: u64) -> Result<MsgHdr, Errno> {
    let raw = vm::read_vec(p, 56)?;
    let w = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap());
    let (name, namelen, iov, iovlen) = (w(0), w(1) & 0xffff_ffff, w(2), w(3));
    if iovlen > 1024 {
        return Err(EMSGSIZE);
    }
    Ok((name, namelen, vm::read_iovecs(iov, iovlen)?))
}

pub fn sendmsg(fd: i64, msg: u64, _flags: u64) -> SysResult {
    let (name, namelen, iovs) = msghdr(msg)?;
    let to = if name != 0 { Some(read_addr(name, namelen)?) } else { None };
    send(fd, &iovs, to)
}

pub fn recvmsg(fd: i64, msg: u64, _flags: u64) -> SysResult {
    let (name, _namelen, iovs) = msghdr(msg)?;
    let total: u64 = iovs.iter().map(|&(_, l)| l).sum();
    let mut tmp = vec![0u8; (total as usize).min(MAX_IO)];
    let (n, from) = match recv_plain(fd, &mut tmp)? {
        Some(n) => (n, None),
        None => with_socket(fd, |s| s.recv_from(&mut tmp))?,
    };
    let mut off = 0;
    for (b, l) in iovs {
        let take = (l as usize).min(n - off);
        vm::write(b, &tmp[off..off + take])?;
        off += take;
        if off == n {
            break;
        }
    }
    if let Some(a) = from {
        write_addr(name, msg + 8, a)?; // msg_namelen is the second field
    }
    vm::write(msg + 48, &0u32.to_le_bytes())?; // msg_flags
    vm::write(msg + 40, &0u64.to_le_bytes())?; // msg_controllen: no ancillary data
    Ok(n as u64)
}

pub fn shutdown(fd: i64, how: u64) -> SysResult {
    with_socket(fd, |s| s.shutdown(how)).map(|_| 0)
}

pub fn getsockname(fd: i64, addr: u64, lenp: u64) -> SysResult {
    let a = with_socket(fd, |s| s.local_addr())?;
    write_addr(addr, lenp, a).map(|_| 0)
}

pub fn getpeername(fd: i64, addr: u64, lenp: u64) -> SysResult {
    let a = with_socket(fd, |s| s.peer_addr())?;
    write_addr(addr, lenp, a).map(|_| 0)
}

pub fn setsockopt(fd: i64, level: u64, name: u64, val: u64, len: u64) -> SysResult {
    const IPPROTO_TCP: u64 = 6;
    const TCP_NODELAY: u64 = 1;
    with_socket(fd, |s| {
        if level == IPPROTO_TCP && name == TCP_NODELAY && len >= 4 {
            let mut b = [0u8; 4];
            vm::read(val, &mut b)?;
            s.set_nodelay(u32::from_le_bytes(b) != 0);
        }
        // The rest (SO_REUSEADDR, SO_KEEPALIVE, buffer sizes, ...) has no
        // effect on this stack and is accepted.
        Ok(0)
    })
}

pub fn getsockopt(fd: i64, level: u64, name: u64, val: u64, lenp: u64) -> SysResult {
    const SOL_SOCKET: u64 = 1;
    const SO_TYPE: u64 = 3;
    const SO_ERROR: u64 = 4;
    const SO_SNDBUF: u64 = 7;
    const SO_RCVBUF: u64 = 8;
    let v: u32 = with_socket(fd, |s| {
        Ok(match (level, name) {
            (SOL_SOCKET, SO_TYPE) => s.kind(),
            (SOL_SOCKET, SO_ERROR) => s.take_error() as u32,
            (SOL_SOCKET, SO_SNDBUF | SO_RCVBUF) => 65536,
            _ => 0,
        })
    })?;
    let mut l = [0u8; 4];
    vm::read(lenp, &mut l)?;
    let n = (u32::from_le_bytes(l) as usize).min(4);
    vm::write(val, &v.to_le_bytes()[..n])?;
    vm::write(lenp, &(n as u32).to_le_bytes())?;
    Ok(0)
}
