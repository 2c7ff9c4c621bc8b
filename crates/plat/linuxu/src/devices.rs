//! linuxu devices: a Linux tap interface as the network device, a host file
//! as the block device, and an initrd file. The CLI names them through
//! `UNIKIT_NET=tap:NAME`, `UNIKIT_DISK=PATH` and `UNIKIT_INITRD=PATH`.
use crate::sys;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use unikit_kernel::dev::{self, BlockDevice, DevError, Doorbell, HeldFrame, NetDevice};
use unikit_kernel::event::Event;
use unikit_kernel::kprintln;

/// Settings read from the environment at start-up.
pub struct Config {
    pub tap: Option<String>,
    pub disk: Option<String>,
}

pub static CONFIG: spin::Once<Config> = spin::Once::new();

/// File descriptors whose readability the idle loop watches, each with the
/// event to signal.
static WATCHED: spin::Mutex<Vec<(i32, &'static Event)>> = spin::Mutex::new(Vec::new());

/// Waits until a watched descriptor is readable or `timeout_ns` passes,
/// signalling the events of the readable ones.
pub fn poll_fds(timeout_ns: Option<u64>) {
    let watched: Vec<(i32, &'static Event)> = WATCHED.lock().clone();
    let mut fds: Vec<sys::PollFd> =
        watched.iter().map(|&(fd, _)| sys::PollFd { fd, events: sys::POLLIN, revents: 0 }).collect();
    let n = sys::ppoll(&mut fds, timeout_ns);
    if n > 0 {
        for (p, (_, ev)) in fds.iter().zip(&watched) {
            if p.revents != 0 {
                ev.signal();
            }
        }
    }
}

/// The kernel's device discovery hook (the tap and disk named at start-up).
#[unsafe(no_mangle)]
pub fn __unikit_probe_devices() {
    let Some(cfg) = CONFIG.get() else { return };
    if let Some(name) = &cfg.tap {
        match Tap::open(name) {
            Ok(tap) => {
                let tap: &'static Tap = Box::leak(Box::new(tap));
                WATCHED.lock().push((tap.fd, &tap.event));
                dev::register_net(Arc::new(TapRef(tap)));
            }
            Err(e) => kprintln!("unikit: cannot open tap device '{name}': {e}"),
        }
    }
    if let Some(path) = &cfg.disk {
        match FileDisk::open(path) {
            Ok(d) => dev::register_block(Arc::new(d)),
            Err(e) => kprintln!("unikit: cannot open disk file '{path}': {e}"),
        }
    }
}

pub struct Tap {
    fd: i32,
    name: String,
    mac: [u8; 6],
    event: Event,
    /// The frame `read` last fetched, lent to the stack from here.
    rx: HeldFrame,
}

/// Largest frame a tap hands us (1500 + Ethernet header + VLAN tag).
const TAP_FRAME: usize = 1518;

/// `Arc<dyn NetDevice>` over the leaked tap (its event must be `'static`
/// for the idle loop).
struct TapRef(&'static Tap);

impl Tap {
    fn read(&self, buf: &mut [u8]) -> Result<usize, DevError> {
        match sys::read(self.fd, buf) {
            Ok(n) => Ok(n),
            Err(sys::EAGAIN) => Err(DevError::WouldBlock),
            Err(_) => Err(DevError::Io),
        }
    }

    fn open(name: &str) -> Result<Tap, String> {
        if name.is_empty() || name.len() >= 16 {
            return Err("interface names are 1 to 15 bytes".into());
        }
        let fd = sys::open(b"/dev/net/tun\0", sys::O_RDWR | sys::O_NONBLOCK | sys::O_CLOEXEC)
            .map_err(|e| alloc::format!("/dev/net/tun: {}", sys::strerror(e)))?;
        // struct ifreq: 16-byte name, then flags (IFF_TAP | IFF_NO_PI).
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name.as_bytes());
        ifr[16..18].copy_from_slice(&(0x0002u16 | 0x1000).to_le_bytes());
        if let Err(e) = sys::ioctl(fd, sys::TUNSETIFF, ifr.as_mut_ptr() as u64) {
            sys::close(fd);
            let hint = if e == 1 {
                " (needs CAP_NET_ADMIN, or a tap created for this user with `ip tuntap add NAME mode tap user USER`)"
            } else {
                ""
            };
            return Err(alloc::format!("TUNSETIFF: {}{hint}", sys::strerror(e)));
        }
        // A stable, locally administered MAC derived from the name.
        let mut mac = [0x02, 0x75, 0x6b, 0, 0, 0];
        let h = name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193));
        mac[3..].copy_from_slice(&h.to_be_bytes()[1..]);
        Ok(Tap { fd, name: name.into(), mac, event: Event::new(), rx: HeldFrame::new(TAP_FRAME) })
    }
}

impl NetDevice for TapRef {
    fn name(&self) -> &str {
        &self.0.name
    }
    fn mac(&self) -> [u8; 6] {
        self.0.mac
    }
    fn mtu(&self) -> usize {
        1500
    }
    fn rx_pending(&self) -> Result<bool, DevError> {
        self.0.rx.pending(|b| self.0.read(b))
    }
    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError> {
        self.0.rx.lend(|b| self.0.read(b), f)
    }
    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError> {
        if len > TAP_FRAME - 4 {
            return Err(DevError::BadLength);
        }
        // The frame is built on the stack and handed to the host's write.
        let mut frame = [0u8; TAP_FRAME];
        f(&mut frame[..len]);
        match sys::write_fd(self.0.fd, &frame[..len]) {
            Ok(_) => Ok(()),
            Err(sys::EAGAIN) => Err(DevError::WouldBlock),
            Err(_) => Err(DevError::Io),
        }
    }
    fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
        self.0.event.forward_to(doorbell);
    }
    fn has_interrupts(&self) -> bool {
        true // the idle loop polls the descriptor and signals the event
    }
}

pub struct FileDisk {
    fd: i32,
    name: String,
    blocks: u64,
    read_only: bool,
}

impl FileDisk {
    fn open(path: &str) -> Result<FileDisk, String> {
        let mut p = Vec::from(path.as_bytes());
        p.push(0);
        let (fd, read_only) = match sys::open(&p, sys::O_RDWR | sys::O_CLOEXEC) {
            Ok(fd) => (fd, false),
            Err(sys::EACCES) | Err(sys::EROFS) => {
                (sys::open(&p, sys::O_RDONLY | sys::O_CLOEXEC).map_err(|e| String::from(sys::strerror(e)))?, true)
            }
            Err(e) => return Err(sys::strerror(e).into()),
        };
        let size = sys::lseek_end(fd).map_err(|e| String::from(sys::strerror(e)))?;
        Ok(FileDisk { fd, name: "file-disk0".into(), blocks: size / 512, read_only })
    }
}

impl BlockDevice for FileDisk {
    fn name(&self) -> &str {
        &self.name
    }
    fn block_size(&self) -> usize {
        512
    }
    fn num_blocks(&self) -> u64 {
        self.blocks
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        dev::check_block_request(self, block, buf.len())?;
        sys::pread_all(self.fd, buf, block * 512).map_err(|_| DevError::Io)
    }
    fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        if self.read_only {
            return Err(DevError::ReadOnly);
        }
        dev::check_block_request(self, block, buf.len())?;
        sys::pwrite_all(self.fd, buf, block * 512).map_err(|_| DevError::Io)
    }
    fn flush(&self) -> Result<(), DevError> {
        sys::fsync(self.fd).map_err(|_| DevError::Io)
    }
}

/// Maps the initrd file read-only for the life of the process. `path`
/// ends with its NUL. Runs before the heap exists: no allocation.
pub fn map_initrd(path: &[u8]) -> Result<&'static [u8], &'static str> {
    let fd = sys::open(path, sys::O_RDONLY | sys::O_CLOEXEC).map_err(sys::strerror)?;
    let size = sys::lseek_end(fd).map_err(sys::strerror)?;
    if size == 0 {
        sys::close(fd);
        return Ok(&[]);
    }
    let addr = sys::mmap_file_ro(fd, size).ok_or("mmap failed")?;
    sys::close(fd);
    // SAFETY: a private read-only mapping of `size` bytes that is never unmapped.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, size as usize) })
}
