//! Attaching host resources to the manifest's devices: tap interfaces
//! (tenders/common/tap_attach.c) and files or block devices
//! (tenders/common/block_attach.c, hvt_module_blk.c `setup`).

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::hypercall::{Block, Net};

const IFNAMSIZ: usize = 16;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
const SIOCGIFMTU: libc::c_ulong = 0x8921;
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ifreq` (40 bytes): the name, then a union we use as flags, MTU or a pointer.
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    u: IfrU,
}

#[repr(C)]
union IfrU {
    flags: libc::c_short,
    mtu: libc::c_int,
    data: *mut libc::c_void,
    _pad: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> IfReq {
        let mut r = IfReq { name: [0; IFNAMSIZ], u: IfrU { _pad: [0; 24] } };
        let n = name.len().min(IFNAMSIZ - 1);
        r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        r
    }

    fn name(&self) -> String {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        String::from_utf8_lossy(&self.name[..len]).into_owned()
    }
}

fn os_err(what: String) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// A datagram socket for interface ioctls.
fn ctl_socket() -> Result<OwnedFd, String> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(os_err("cannot create a socket to query the interface".into()));
    }
    // SAFETY: `s` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(s) })
}

fn ifreq_ioctl(fd: RawFd, req: libc::c_ulong, r: &mut IfReq) -> bool {
    // SAFETY: `r` is a valid, writable `struct ifreq` for the whole call.
    unsafe { libc::ioctl(fd, req, r as *mut IfReq) >= 0 }
}

/// Open the tap `iface` (which must exist and be up) or take the already
/// open tap descriptor `@N`; returns it non-blocking, with its MTU.
pub fn attach_tap(iface: &str) -> Result<Net, String> {
    let sock = ctl_socket()?;
    let (fd, name) = if let Some(n) = iface.strip_prefix('@') {
        let raw: RawFd = n.parse().map_err(|_| format!("'{iface}' is not a descriptor number"))?;
        // SAFETY: fcntl on a caller-given descriptor number; failure is checked.
        if raw < 0 || unsafe { libc::fcntl(raw, libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
            return Err(os_err(format!("descriptor {raw}")));
        }
        // SAFETY: the descriptor was handed to us on the command line to own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut r = IfReq::new("");
        let name = ifreq_ioctl(raw, TUNGETIFF, &mut r).then(|| r.name());
        (fd, name)
    } else {
        if !Path::new("/sys/class/net").join(iface).exists() {
            return Err(format!("there is no network interface '{iface}'"));
        }
        let mut r = IfReq::new(iface);
        if !ifreq_ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut r) {
            return Err(os_err(format!("cannot read the flags of '{iface}'")));
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        if unsafe { r.u.flags } & libc::IFF_UP as libc::c_short == 0 {
            return Err(format!("interface '{iface}' is down (ip link set {iface} up)"));
        }
        // SAFETY: open(2) of a constant path; the result is checked.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(os_err("cannot open /dev/net/tun".into()));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut r = IfReq::new(iface);
        r.u.flags = IFF_TAP | IFF_NO_PI;
        if !ifreq_ioctl(raw, TUNSETIFF, &mut r) {
            return Err(os_err(format!("cannot attach to tap '{iface}' (is it a tap interface, and yours?)")));
        }
        if r.name() != iface {
            return Err(format!("attaching to '{iface}' gave interface '{}'", r.name()));
        }
        (fd, Some(iface.to_string()))
    };
    let mtu = match &name {
        Some(n) => {
            let mut r = IfReq::new(n);
            if !ifreq_ioctl(sock.as_raw_fd(), SIOCGIFMTU, &mut r) {
                return Err(os_err(format!("cannot read the MTU of '{n}'")));
            }
            // SAFETY: SIOCGIFMTU filled the mtu member of the union.
            unsafe { r.u.mtu }
        }
        None => 1500,
    };
    if !(68..=65535).contains(&mtu) {
        return Err(format!("interface {iface} has MTU {mtu}, outside 68..=65535"));
    }
    // Without IFF_VNET_HDR the kernel may still hand us GRO-merged frames
    // larger than the MTU; turn the offloads off (best effort, as tap_attach.c).
    if let Some(n) = &name {
        for cmd in [ETHTOOL_SGRO, ETHTOOL_SGSO] {
            let mut val = [cmd, 0u32];
            let mut r = IfReq::new(n);
            r.u.data = val.as_mut_ptr().cast();
            let _ = ifreq_ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut r);
        }
    }
    Ok(Net { fd, mtu: mtu as u64 })
}

/// A random locally administered unicast MAC (tap_attach.c `tap_attach_genmac`).
pub fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    // SAFETY: getrandom fills the 6-byte local buffer.
    let n = unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), 0) };
    if n != 6 {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let seed = (t as u64) ^ (std::process::id() as u64).rotate_left(32);
        mac.copy_from_slice(&seed.to_le_bytes()[..6]);
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Open a disk image or block device read-write; the capacity must be a
/// non-zero multiple of `block_size` (hvt_module_blk.c `setup`).
pub fn attach_block(path: &Path, block_size: u16) -> Result<Block, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let capacity =
        file.seek(SeekFrom::End(0)).map_err(|e| format!("cannot find the size of {}: {e}", path.display()))?;
    let bs = block_size as u64;
    if capacity % bs != 0 {
        return Err(format!(
            "{}: its size ({capacity} bytes) is not a multiple of the {bs}-byte block size",
            path.display()
        ));
    }
    if capacity < bs {
        return Err(format!("{}: it must hold at least one {bs}-byte block", path.display()));
    }
    Ok(Block { file, capacity, block_size: bs })
}

/// The descriptor of a file, for the seccomp rules.
pub fn fd_of(f: &File) -> RawFd {
    f.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn mac_is_local_unicast() {
        for _ in 0..32 {
            let m = random_mac();
            assert_eq!(m[0] & 1, 0);
            assert_eq!(m[0] & 2, 2);
        }
    }

    #[test]
    fn block_sizes() {
        let f = tempfile::NamedTempFile::new().unwrap();
        assert!(attach_block(f.path(), 512).unwrap_err().contains("at least one 512-byte block"));
        f.as_file().set_len(1000).unwrap();
        assert!(attach_block(f.path(), 512).unwrap_err().contains("not a multiple"));
        f.as_file().set_len(8192).unwrap();
        let b = attach_block(f.path(), 4096).unwrap();
        assert_eq!((b.capacity, b.block_size), (8192, 4096));
        assert!(attach_block(Path::new("/nonexistent/disk.img"), 512).unwrap_err().contains("cannot open"));
    }

    #[test]
    fn missing_tap() {
        assert_eq!(attach_tap("nosuchtap0").err().unwrap(), "there is no network interface 'nosuchtap0'");
        assert!(attach_tap("@notanumber").err().unwrap().contains("not a descriptor"));
    }
}
