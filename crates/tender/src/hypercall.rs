//! The hypercalls (include/hvt_abi.h; semantics from tenders/hvt/hvt_core.c,
//! hvt_module_blk.c, hvt_module_net.c).
//!
//! The guest passes the guest-physical address of an argument structure in
//! a 32-bit `outl`. Every pointer and length in it is hostile:
//! - the structure itself, any data buffer and the halt cookie must lie
//!   inside guest memory (checked, no overflow); buffers the tender writes
//!   (block/net read) must also be writable; otherwise the run stops with
//!   "guest passed an invalid ..." ([`Fault::Invalid`]);
//! - handles, offsets and lengths that are inside memory but wrong for the
//!   device (unknown handle, not a block/net device, past the capacity, not
//!   sector-aligned, frame larger than MTU + ethernet header, read buffer
//!   smaller than one frame) return `SOLO5_R_EINVAL` to the guest, as the
//!   Solo5 API specifies.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::abi::{self, args, hc, result};
use crate::mem::{BadRange, GuestMem};

/// A block device attached to a manifest entry.
#[derive(Debug)]
pub struct Block {
    pub file: File,
    pub capacity: u64,
    pub block_size: u64,
}

/// A network device attached to a manifest entry (a non-blocking tap fd).
#[derive(Debug)]
pub struct Net {
    pub fd: OwnedFd,
    pub mtu: u64,
}

#[derive(Debug)]
pub enum Device {
    Block(Block),
    Net(Net),
}

/// What the hypercalls can reach: the devices by manifest index (the
/// guest's handle) and the console descriptor.
pub struct Context {
    pub devices: Vec<Option<Device>>,
    pub console: RawFd,
}

/// Why the run must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The guest passed an invalid `thing`; `details` say which and why.
    Invalid { thing: String, details: String },
    /// The host side failed (a disk write error, a tap that went away).
    HostIo(String),
}

/// After a hypercall: keep running, or stop with the guest's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Halt(i32),
}

fn invalid(thing: impl Into<String>, details: String) -> Fault {
    Fault::Invalid { thing: thing.into(), details }
}

/// Check the argument structure of hypercall `nr` at `gpa`.
fn arg_struct(mem: &GuestMem, nr: u16, gpa: u64, size: u64) -> Result<(), Fault> {
    mem.range_mut(gpa, size).map(|_| ()).map_err(|why| {
        invalid(
            format!("{} argument pointer", hc::name(nr)),
            format!("struct at {gpa:#x}, {size} bytes, {why}; guest memory is {:#x} bytes", mem.size()),
        )
    })
}

fn buffer(nr: u16, what: &str, gpa: u64, len: u64, why: BadRange, mem: &GuestMem) -> Fault {
    invalid(
        format!("{} {what}", hc::name(nr)),
        format!("{len} bytes at {gpa:#x}, {why}; guest memory is {:#x} bytes", mem.size()),
    )
}

// Field accessors: the structure was checked as a whole by `arg_struct`, so
// these cannot fail; they still go through the checked accessors.
fn get64(mem: &GuestMem, at: u64) -> u64 {
    mem.read_u64(at).unwrap_or(0)
}
fn put64(mem: &GuestMem, at: u64, v: u64) {
    let _ = mem.write_u64(at, v);
}
fn put32(mem: &GuestMem, at: u64, v: u32) {
    let _ = mem.write_u32(at, v);
}

/// Serve hypercall `nr` with argument structure at `gpa`.
pub fn dispatch(mem: &GuestMem, ctx: &Context, nr: u16, gpa: u64) -> Result<Next, Fault> {
    match nr {
        hc::WALLTIME => {
            arg_struct(mem, nr, gpa, args::walltime::SIZE)?;
            let ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            put64(mem, gpa + args::walltime::NSECS, ns);
        }
        hc::PUTS => {
            use args::puts::*;
            // IN only: the structure may be in read-only memory.
            mem.range(gpa, SIZE).map_err(|why| {
                invalid(
                    "puts argument pointer",
                    format!("struct at {gpa:#x}, {SIZE} bytes, {why}; guest memory is {:#x} bytes", mem.size()),
                )
            })?;
            let (data, len) = (get64(mem, gpa + DATA), get64(mem, gpa + LEN));
            let p = mem.range(data, len).map_err(|why| buffer(nr, "buffer", data, len, why, mem))?;
            write_all(ctx.console, p, len);
        }
        hc::POLL => {
            use args::poll::*;
            arg_struct(mem, nr, gpa, SIZE)?;
            let timeout = get64(mem, gpa + TIMEOUT_NSECS);
            let (ready, n) = poll(ctx, timeout)?;
            put64(mem, gpa + READY_SET, ready);
            put32(mem, gpa + RET, n as u32);
        }
        hc::BLOCK_WRITE | hc::BLOCK_READ => {
            use args::block::*;
            arg_struct(mem, nr, gpa, SIZE)?;
            let handle = get64(mem, gpa + HANDLE);
            let offset = get64(mem, gpa + OFFSET);
            let data = get64(mem, gpa + DATA);
            let len = get64(mem, gpa + LEN);
            let ret = block_io(mem, ctx, nr, handle, offset, data, len)?;
            put32(mem, gpa + RET, ret as u32);
        }
        hc::NET_WRITE => {
            use args::net::*;
            arg_struct(mem, nr, gpa, SIZE)?;
            let (handle, data, len) = (get64(mem, gpa + HANDLE), get64(mem, gpa + DATA), get64(mem, gpa + LEN));
            let p = mem.range(data, len).map_err(|why| buffer(nr, "buffer", data, len, why, mem))?;
            let ret = match net(ctx, handle) {
                Some(n) if len <= n.mtu + abi::NET_HLEN => net_write(n, p, len)?,
                _ => result::EINVAL,
            };
            put32(mem, gpa + RET, ret as u32);
        }
        hc::NET_READ => {
            use args::net::*;
            arg_struct(mem, nr, gpa, SIZE)?;
            let (handle, data, len) = (get64(mem, gpa + HANDLE), get64(mem, gpa + DATA), get64(mem, gpa + LEN));
            let p = mem.range_mut(data, len).map_err(|why| buffer(nr, "buffer", data, len, why, mem))?;
            let ret = match net(ctx, handle) {
                Some(n) if len >= n.mtu + abi::NET_HLEN => match net_read(n, p, len)? {
                    Some(got) => {
                        put64(mem, gpa + LEN, got);
                        result::OK
                    }
                    None => result::AGAIN,
                },
                _ => result::EINVAL,
            };
            put32(mem, gpa + RET, ret as u32);
        }
        hc::HALT => {
            use args::halt::*;
            mem.range(gpa, SIZE).map_err(|why| {
                invalid(
                    "halt argument pointer",
                    format!("struct at {gpa:#x}, {SIZE} bytes, {why}; guest memory is {:#x} bytes", mem.size()),
                )
            })?;
            let cookie = get64(mem, gpa + COOKIE);
            if cookie != 0 {
                mem.range(cookie, abi::HALT_COOKIE_MAX)
                    .map_err(|why| buffer(nr, "cookie", cookie, abi::HALT_COOKIE_MAX, why, mem))?;
            }
            let status = mem.read_u32(gpa + EXIT_STATUS).unwrap_or(0) as i32;
            return Ok(Next::Halt(status));
        }
        _ => {
            return Err(invalid(
                "hypercall number",
                format!("{nr} (port {:#x}); valid numbers are 1 to {}", abi::HYPERCALL_PIO_BASE + nr, hc::MAX - 1),
            ));
        }
    }
    Ok(Next::Continue)
}

fn net(ctx: &Context, handle: u64) -> Option<&Net> {
    match ctx.devices.get(usize::try_from(handle).ok()?)? {
        Some(Device::Net(n)) => Some(n),
        _ => None,
    }
}

/// Write guest bytes to the console; a closed or failing console is ignored
/// (the guest keeps running, like a serial port nobody reads).
fn write_all(fd: RawFd, mut p: *const u8, mut len: u64) {
    while len > 0 {
        let chunk = len.min(1 << 30) as usize;
        // SAFETY: [p, p + len) was checked to lie inside guest memory.
        let n = unsafe { libc::write(fd, p.cast(), chunk) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        // SAFETY: n <= chunk <= len, so p stays inside the checked range.
        p = unsafe { p.add(n as usize) };
        len -= n as u64;
    }
}

fn block_io(
    mem: &GuestMem,
    ctx: &Context,
    nr: u16,
    handle: u64,
    offset: u64,
    data: u64,
    len: u64,
) -> Result<i32, Fault> {
    let reading = nr == hc::BLOCK_READ;
    // The buffer first: a pointer outside guest memory is fatal whatever the handle.
    let p = if reading { mem.range_mut(data, len).map(|p| p.cast_const()) } else { mem.range(data, len) }
        .map_err(|why| buffer(nr, "buffer", data, len, why, mem))?;
    let Some(Some(Device::Block(b))) = usize::try_from(handle).ok().and_then(|h| ctx.devices.get(h)) else {
        return Ok(result::EINVAL);
    };
    let in_bounds = offset.checked_add(len).is_some_and(|end| end <= b.capacity);
    if !in_bounds || !offset.is_multiple_of(b.block_size) || !len.is_multiple_of(b.block_size) {
        return Ok(result::EINVAL);
    }
    let n = len as usize;
    let res = if reading {
        // SAFETY: [p, p + len) is inside guest memory and writable (checked).
        let buf = unsafe { std::slice::from_raw_parts_mut(p.cast_mut(), n) };
        b.file.read_exact_at(buf, offset)
    } else {
        // SAFETY: [p, p + len) is inside guest memory (checked).
        let buf = unsafe { std::slice::from_raw_parts(p, n) };
        b.file.write_all_at(buf, offset)
    };
    res.map_err(|e| {
        Fault::HostIo(format!(
            "block {} of {len} bytes at offset {offset} failed: {e}",
            if reading { "read" } else { "write" }
        ))
    })?;
    Ok(result::OK)
}

fn net_write(n: &Net, p: *const u8, len: u64) -> Result<i32, Fault> {
    loop {
        // SAFETY: [p, p + len) is inside guest memory (checked by the caller).
        let r = unsafe { libc::write(n.fd.as_raw_fd(), p.cast(), len as usize) };
        if r >= 0 {
            return Ok(result::OK);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            // The tap's queue is full: drop the frame, as a NIC would.
            std::io::ErrorKind::WouldBlock => return Ok(result::OK),
            _ => return Err(Fault::HostIo(format!("writing to the tap failed: {e}"))),
        }
    }
}

/// One frame into the guest's buffer; `None` when none is waiting.
fn net_read(n: &Net, p: *mut u8, len: u64) -> Result<Option<u64>, Fault> {
    loop {
        // SAFETY: [p, p + len) is inside guest memory and writable (checked by the caller).
        let r = unsafe { libc::read(n.fd.as_raw_fd(), p.cast(), len as usize) };
        if r > 0 {
            return Ok(Some(r as u64));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(Fault::HostIo(format!("reading from the tap failed: {e}"))),
        }
    }
}

/// Wait up to `timeout_ns` for a frame on any network device; returns the
/// ready set (bit = manifest index) and how many are ready.
fn poll(ctx: &Context, timeout_ns: u64) -> Result<(u64, usize), Fault> {
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut index: Vec<usize> = Vec::new();
    for (i, d) in ctx.devices.iter().enumerate() {
        if let Some(Device::Net(n)) = d {
            fds.push(libc::pollfd { fd: n.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            index.push(i);
        }
    }
    let deadline = Instant::now().checked_add(Duration::from_nanos(timeout_ns));
    loop {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_nanos(timeout_ns),
        };
        let ts =
            libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds; `ts` lives
        // across the call; no signal mask is passed.
        let r = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Fault::HostIo(format!("ppoll failed: {e}")));
        }
        let mut set = 0u64;
        let mut count = 0;
        for (f, &i) in fds.iter().zip(&index) {
            if f.revents & libc::POLLIN != 0 {
                set |= 1 << i;
                count += 1;
            } else if f.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(Fault::HostIo(format!(
                    "the tap of network device {i} failed (poll events {:#x})",
                    f.revents
                )));
            }
        }
        return Ok((set, count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    const MEM: u64 = 2 << 20;
    const ARG: u64 = 0x20_0000 - 0x1000;

    fn pipe() -> (File, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fresh descriptors that we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }, 0);
        // SAFETY: both descriptors are fresh and owned by nobody else.
        unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn disk(blocks: u64) -> (tempfile::NamedTempFile, Device) {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(blocks * 512).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(f.path()).unwrap();
        (f, Device::Block(Block { file, capacity: blocks * 512, block_size: 512 }))
    }

    fn invalid_thing(r: Result<Next, Fault>) -> String {
        match r {
            Err(Fault::Invalid { thing, .. }) => thing,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn puts_writes_to_the_console() {
        let mem = GuestMem::new(MEM).unwrap();
        let (mut rd, wr) = pipe();
        let ctx = Context { devices: vec![None], console: wr.as_raw_fd() };
        mem.write_bytes(0x1000, b"hello\n").unwrap();
        mem.write_u64(ARG, 0x1000).unwrap();
        mem.write_u64(ARG + 8, 6).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::PUTS, ARG), Ok(Next::Continue));
        let mut s = [0u8; 6];
        rd.read_exact(&mut s).unwrap();
        assert_eq!(&s, b"hello\n");
        // Data pointer past the end, length that wraps, struct past the end.
        mem.write_u64(ARG, MEM - 2).unwrap();
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, hc::PUTS, ARG)), "puts buffer");
        mem.write_u64(ARG, 0x1000).unwrap();
        mem.write_u64(ARG + 8, u64::MAX).unwrap();
        match dispatch(&mem, &ctx, hc::PUTS, ARG) {
            Err(Fault::Invalid { thing, details }) => {
                assert_eq!(thing, "puts buffer");
                assert_eq!(
                    details,
                    "18446744073709551615 bytes at 0x1000, outside guest memory; guest memory is 0x200000 bytes"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, hc::PUTS, MEM - 8)), "puts argument pointer");
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, hc::PUTS, 0xffff_ffff)), "puts argument pointer");
    }

    #[test]
    fn walltime_halt_and_unknown() {
        let mem = GuestMem::new(MEM).unwrap();
        let ctx = Context { devices: vec![None], console: -1 };
        assert_eq!(dispatch(&mem, &ctx, hc::WALLTIME, ARG), Ok(Next::Continue));
        let ns = mem.read_u64(ARG).unwrap();
        assert!(ns > 1_600_000_000 * 1_000_000_000, "{ns}");
        mem.write_u64(ARG, 0).unwrap();
        mem.write_u32(ARG + 8, (-3i32) as u32).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::HALT, ARG), Ok(Next::Halt(-3)));
        mem.write_u64(ARG, MEM - 100).unwrap();
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, hc::HALT, ARG)), "halt cookie");
        mem.write_u64(ARG, MEM - 512).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::HALT, ARG), Ok(Next::Halt(-3)));
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, 0, ARG)), "hypercall number");
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, 9, ARG)), "hypercall number");
    }

    #[test]
    fn poll_times_out_without_devices() {
        let mem = GuestMem::new(MEM).unwrap();
        let ctx = Context { devices: vec![None], console: -1 };
        mem.write_u64(ARG, 2_000_000).unwrap();
        let t = Instant::now();
        assert_eq!(dispatch(&mem, &ctx, hc::POLL, ARG), Ok(Next::Continue));
        assert!(t.elapsed() >= Duration::from_millis(2));
        assert_eq!(mem.read_u64(ARG + 8), Ok(0));
        assert_eq!(mem.read_u32(ARG + 16), Ok(0));
    }

    #[test]
    fn poll_and_net_io_on_a_socketpair() {
        // A datagram socketpair behaves like a tap: one frame per read/write.
        let mut sv = [0; 2];
        assert_eq!(
            // SAFETY: socketpair fills two fresh descriptors that we then own.
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0, sv.as_mut_ptr()) },
            0
        );
        // SAFETY: fresh descriptors.
        let (ours, peer) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let mem = GuestMem::new(MEM).unwrap();
        let ctx = Context { devices: vec![None, Some(Device::Net(Net { fd: ours, mtu: 1500 }))], console: -1 };
        // Nothing to read: AGAIN.
        let buf = 0x4000;
        mem.write_u64(ARG, 1).unwrap();
        mem.write_u64(ARG + 8, buf).unwrap();
        mem.write_u64(ARG + 16, 1514).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::NET_READ, ARG), Ok(Next::Continue));
        assert_eq!(mem.read_u32(ARG + 24), Ok(result::AGAIN as u32));
        // A frame arrives: poll reports handle 1, read gets it.
        // SAFETY: writes 60 bytes from a local array to our socket.
        assert_eq!(unsafe { libc::write(peer.as_raw_fd(), [7u8; 60].as_ptr().cast(), 60) }, 60);
        mem.write_u64(0x3000, 1_000_000_000).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::POLL, 0x3000), Ok(Next::Continue));
        assert_eq!(mem.read_u64(0x3008), Ok(0b10));
        assert_eq!(mem.read_u32(0x3010), Ok(1));
        assert_eq!(dispatch(&mem, &ctx, hc::NET_READ, ARG), Ok(Next::Continue));
        assert_eq!(mem.read_u32(ARG + 24), Ok(result::OK as u32));
        assert_eq!(mem.read_u64(ARG + 16), Ok(60));
        let mut got = [0u8; 60];
        mem.read_bytes(buf, &mut got).unwrap();
        assert_eq!(got, [7u8; 60]);
        // A buffer smaller than MTU + header, a wrong handle: EINVAL.
        mem.write_u64(ARG + 16, 1000).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::NET_READ, ARG), Ok(Next::Continue));
        assert_eq!(mem.read_u32(ARG + 24), Ok(result::EINVAL as u32));
        mem.write_u64(ARG, 0).unwrap();
        mem.write_u64(ARG + 16, 1514).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::NET_READ, ARG), Ok(Next::Continue));
        assert_eq!(mem.read_u32(ARG + 24), Ok(result::EINVAL as u32));
        // Write: up to MTU + 14 goes out, more is EINVAL.
        mem.write_u64(ARG, 1).unwrap();
        mem.write_u64(ARG + 16, 1514).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::NET_WRITE, ARG), Ok(Next::Continue));
        assert_eq!(mem.read_u32(ARG + 24), Ok(result::OK as u32));
        let mut rx = [0u8; 2000];
        // SAFETY: reads into a local array of the given size.
        assert_eq!(unsafe { libc::read(peer.as_raw_fd(), rx.as_mut_ptr().cast(), rx.len()) }, 1514);
        mem.write_u64(ARG + 16, 1515).unwrap();
        assert_eq!(dispatch(&mem, &ctx, hc::NET_WRITE, ARG), Ok(Next::Continue));
        assert_eq!(mem.read_u32(ARG + 24), Ok(result::EINVAL as u32));
        // Read into memory past the end: fatal.
        mem.write_u64(ARG + 8, MEM - 100).unwrap();
        mem.write_u64(ARG + 16, 1514).unwrap();
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, hc::NET_READ, ARG)), "net_read buffer");
    }

    #[test]
    fn block_io_is_checked() {
        let (_f, d) = disk(16);
        let mut mem = GuestMem::new(MEM).unwrap();
        let ctx = Context { devices: vec![None, None, Some(d)], console: -1 };
        let set = |h: u64, off: u64, data: u64, len: u64| {
            mem.write_u64(ARG, h).unwrap();
            mem.write_u64(ARG + 8, off).unwrap();
            mem.write_u64(ARG + 16, data).unwrap();
            mem.write_u64(ARG + 24, len).unwrap();
            mem.write_u32(ARG + 32, 99).unwrap();
        };
        let ret = |nr| {
            assert_eq!(dispatch(&mem, &ctx, nr, ARG), Ok(Next::Continue));
            mem.read_u32(ARG + 32).unwrap() as i32
        };
        mem.write_bytes(0x5000, &[0xab; 1024]).unwrap();
        set(2, 1024, 0x5000, 1024);
        assert_eq!(ret(hc::BLOCK_WRITE), result::OK);
        set(2, 1024, 0x8000, 512);
        assert_eq!(ret(hc::BLOCK_READ), result::OK);
        let mut got = [0u8; 512];
        mem.read_bytes(0x8000, &mut got).unwrap();
        assert_eq!(got, [0xab; 512]);
        // Last block is fine, one past is not; unaligned; wrapping; wrong handles.
        set(2, 15 * 512, 0x5000, 512);
        assert_eq!(ret(hc::BLOCK_READ), result::OK);
        set(2, 16 * 512, 0x5000, 512);
        assert_eq!(ret(hc::BLOCK_READ), result::EINVAL);
        set(2, 15 * 512, 0x5000, 1024);
        assert_eq!(ret(hc::BLOCK_WRITE), result::EINVAL);
        set(2, 100, 0x5000, 512);
        assert_eq!(ret(hc::BLOCK_WRITE), result::EINVAL);
        set(2, 512, 0x5000, 100);
        assert_eq!(ret(hc::BLOCK_WRITE), result::EINVAL);
        set(2, u64::MAX - 511, 0x5000, 512);
        assert_eq!(ret(hc::BLOCK_WRITE), result::EINVAL);
        set(1, 0, 0x5000, 512);
        assert_eq!(ret(hc::BLOCK_WRITE), result::EINVAL);
        set(u64::MAX, 0, 0x5000, 512);
        assert_eq!(ret(hc::BLOCK_READ), result::EINVAL);
        // Bad buffers are fatal, even with a bad handle.
        set(7, 0, MEM - 256, 512);
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, hc::BLOCK_READ, ARG)), "block_read buffer");
        set(2, 0, u64::MAX - 10, 512);
        assert_eq!(invalid_thing(dispatch(&mem, &ctx, hc::BLOCK_WRITE, ARG)), "block_write buffer");
        // Reading into read-only (text) memory is refused; writing from it is fine.
        mem.protect_read_only(0x10_0000, 0x10_1000).unwrap();
        mem.write_u64(ARG, 2).unwrap();
        mem.write_u64(ARG + 8, 0).unwrap();
        mem.write_u64(ARG + 16, 0x10_0000).unwrap();
        mem.write_u64(ARG + 24, 512).unwrap();
        match dispatch(&mem, &ctx, hc::BLOCK_READ, ARG) {
            Err(Fault::Invalid { details, .. }) => assert!(details.contains("read-only"), "{details}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(dispatch(&mem, &ctx, hc::BLOCK_WRITE, ARG), Ok(Next::Continue));
    }
}
