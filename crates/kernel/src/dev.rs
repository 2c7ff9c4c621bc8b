//! Device interfaces and the device registry. Drivers (virtio, Xen
//! netfront, vmxnet3, tap on linuxu, ...) implement these traits and
//! register their devices during platform start-up; services (network
//! stack, file systems) find them here. Nothing in this module knows a bus.
use crate::event::Event;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

/// Why a device request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevError {
    /// Nothing to receive / no room to send right now: try again later.
    WouldBlock,
    /// The buffer is larger than the device accepts (or smaller than a frame).
    BadLength,
    /// Request outside the device (block address past the end).
    OutOfRange,
    /// The device reported an error for this request.
    Io,
    /// The device broke its protocol (bogus ring index, length, ...). It is
    /// not used again.
    Broken(&'static str),
    /// Read-only device.
    ReadOnly,
}

impl core::fmt::Display for DevError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DevError::WouldBlock => f.write_str("operation would block"),
            DevError::BadLength => f.write_str("bad buffer length"),
            DevError::OutOfRange => f.write_str("out of range"),
            DevError::Io => f.write_str("I/O error"),
            DevError::Broken(why) => write!(f, "device protocol violation: {why}"),
            DevError::ReadOnly => f.write_str("read-only device"),
        }
    }
}

/// What a network device rings when frames arrive or transmit room frees
/// up. The network stack owns it (its "doorbell"), so waking the stack does
/// not go through a NIC's interrupt event, and one stack can serve several
/// devices. Must be callable from interrupt handlers.
pub trait Doorbell: Send + Sync {
    /// Wakes whoever waits on this doorbell.
    fn ring(&self);
}

impl Doorbell for Event {
    fn ring(&self) {
        self.signal();
    }
}

/// An Ethernet interface. Frames move without copies in the stack's path:
/// the driver lends its own receive buffer to the stack ([`receive_with`])
/// and recycles it afterwards, and the stack writes outgoing frames
/// straight into the driver's transmit buffer ([`transmit_with`]).
///
/// [`receive_with`]: NetDevice::receive_with
/// [`transmit_with`]: NetDevice::transmit_with
pub trait NetDevice: Send + Sync {
    /// Interface name, for the boot log (`virtio-net0`, `netfront0`, ...).
    fn name(&self) -> &str;
    /// The interface's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Largest Ethernet payload (IP packet) the device carries, e.g. 1500.
    fn mtu(&self) -> usize;
    /// Whether a received frame is waiting, so that the next
    /// `receive_with` finds it. May fetch the frame into the driver's own
    /// buffer (a tap's `read`, a Solo5 `net_read`); never copies it again.
    fn rx_pending(&self) -> Result<bool, DevError>;
    /// Lends the next received frame (Ethernet header included), in the
    /// driver's own buffer, to `f`, then recycles that buffer. `Ok(false)`
    /// when none is waiting. A frame larger than the device's MTU allows is
    /// dropped and reported as `BadLength`.
    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError>;
    /// Lends a transmit buffer of exactly `len` bytes to `f`, which writes
    /// one frame into it; the driver then sends it. `WouldBlock` (without
    /// calling `f`) when the device has no room: the doorbell rings when
    /// room frees up.
    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError>;
    /// Sets what the device rings when frames arrive or transmit room frees
    /// up (the network stack's doorbell). Devices without interrupts never
    /// ring it and are polled.
    fn set_doorbell(&self, doorbell: &'static dyn Doorbell);
    /// Whether the device rings its doorbell (otherwise the stack polls).
    fn has_interrupts(&self) -> bool;

    /// Copies one received frame into `buf` (for callers outside the
    /// stack's path, e.g. tests); `WouldBlock` when none is waiting.
    fn receive(&self, buf: &mut [u8]) -> Result<usize, DevError> {
        let mut r = Err(DevError::WouldBlock);
        self.receive_with(&mut |f| {
            r = match buf.get_mut(..f.len()) {
                Some(b) => {
                    b.copy_from_slice(f);
                    Ok(f.len())
                }
                None => Err(DevError::BadLength),
            }
        })?;
        r
    }
    /// Sends a copy of `frame` (for callers outside the stack's path).
    fn transmit(&self, frame: &[u8]) -> Result<(), DevError> {
        self.transmit_with(frame.len(), &mut |b| b.copy_from_slice(frame))
    }
}

/// One received frame held in a driver's own buffer, for devices whose
/// receive path cannot peek (a tap's `read`, a Solo5 `net_read`, a Xen
/// grant copy): `rx_pending` fetches the frame into it once, and
/// `receive_with` lends it out from there, so no copy is added.
pub struct HeldFrame {
    inner: Mutex<(Vec<u8>, usize)>,
}

impl HeldFrame {
    /// Room for frames of up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { inner: Mutex::new((alloc::vec![0u8; max_frame], 0)) }
    }

    /// Whether a frame is held, fetching one with `fetch` (which fills the
    /// buffer and returns the frame's length) when none is.
    pub fn pending(&self, fetch: impl FnOnce(&mut [u8]) -> Result<usize, DevError>) -> Result<bool, DevError> {
        let mut g = self.inner.lock();
        if g.1 == 0 {
            let (buf, len) = &mut *g;
            match fetch(buf) {
                Ok(n) if n > 0 && n <= buf.len() => *len = n,
                Ok(0) | Err(DevError::WouldBlock) => return Ok(false),
                Ok(_) => return Err(DevError::Broken("device reported more bytes than the buffer holds")),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Lends the held frame (fetching one first if needed) to `f`; the
    /// buffer is free again afterwards.
    pub fn lend(
        &self,
        fetch: impl FnOnce(&mut [u8]) -> Result<usize, DevError>,
        f: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, DevError> {
        if !self.pending(fetch)? {
            return Ok(false);
        }
        let mut g = self.inner.lock();
        let n = core::mem::take(&mut g.1);
        f(&g.0[..n]);
        Ok(true)
    }
}

/// A disk.
pub trait BlockDevice: Send + Sync {
    /// Disk name, for the boot log and `--disk` order.
    fn name(&self) -> &str;
    /// Bytes per block (512 for every device so far).
    fn block_size(&self) -> usize;
    /// Size of the disk in blocks.
    fn num_blocks(&self) -> u64;
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// Reads whole blocks starting at `block` into `buf` (a multiple of the
    /// block size). Blocks the calling thread until done.
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError>;
    /// Writes whole blocks starting at `block` from `buf` (a multiple of the block size). Blocks until done.
    fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError>;
    /// Makes completed writes durable.
    fn flush(&self) -> Result<(), DevError>;
}

static NET: Mutex<Vec<Arc<dyn NetDevice>>> = Mutex::new(Vec::new());
static BLOCK: Mutex<Vec<Arc<dyn BlockDevice>>> = Mutex::new(Vec::new());
static PROBED: spin::Once<()> = spin::Once::new();

#[allow(unsafe_code)]
unsafe extern "Rust" {
    /// The platform's device discovery (PCI scan, virtio-mmio, tap, Solo5
    /// manifest, ...), defined with `#[unsafe(no_mangle)]` by each platform.
    /// A symbol rather than a registered function pointer: a program that
    /// never asks for devices (hello) never references it, so the linker
    /// drops the platform's drivers from the image.
    fn __unikit_probe_devices();
}

/// Host builds (unit tests of services that link the kernel) have no
/// platform: nothing to discover there.
#[cfg(not(target_os = "none"))]
mod host {
    #[allow(unsafe_code)]
    #[unsafe(no_mangle)]
    pub fn __unikit_probe_devices() {}
}

/// Runs the platform's device discovery once, on the first request for
/// devices: programs that use none do not pay for bus scans at boot.
fn ensure_probed() {
    PROBED.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: every platform crate defines the symbol with this
        // signature; linking fails otherwise.
        unsafe {
            __unikit_probe_devices()
        };
        #[cfg(feature = "boot-disk")]
        drop_boot_disk();
    });
}

/// `unikit.bootdisk=GUID`: the disk a firmware-booted image (VMware,
/// Hyper-V) booted from, named by its GPT disk GUID (the 16 bytes at
/// offset 56 of the GPT header, in hex). It holds the loader and the
/// kernel, not the app's data: the app never gets it, so that a program
/// that formats "the first disk" cannot wipe the image it booted from.
#[cfg(feature = "boot-disk")]
pub const BOOT_DISK_OPTION: &str = "unikit.bootdisk=";

#[cfg(feature = "boot-disk")]
fn drop_boot_disk() {
    let Some(hex) = crate::boot::command_line().options.iter().find_map(|o| o.strip_prefix(BOOT_DISK_OPTION)) else {
        return;
    };
    let Some(guid) = parse_guid(hex) else {
        crate::kprintln!("unikit: {BOOT_DISK_OPTION}{hex}: expected 32 hex digits; no disk withheld");
        return;
    };
    BLOCK.lock().retain(|d| {
        let is_boot = gpt_disk_guid(d.as_ref()) == Some(guid);
        if is_boot && !crate::boot::is_quiet() {
            crate::kprintln!("{}: the boot disk, not given to the app", d.name());
        }
        !is_boot
    });
}

#[cfg(feature = "boot-disk")]
fn parse_guid(hex: &str) -> Option<[u8; 16]> {
    let mut g = [0u8; 16];
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    for (i, b) in g.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(g)
}

/// The disk GUID of a GPT disk (header in block 1), if it is one.
#[cfg(feature = "boot-disk")]
fn gpt_disk_guid(d: &dyn BlockDevice) -> Option<[u8; 16]> {
    let bs = d.block_size();
    if !(512..=4096).contains(&bs) || d.num_blocks() < 2 {
        return None;
    }
    let mut b = alloc::vec![0u8; bs];
    d.read_blocks(1, &mut b).ok()?;
    (&b[..8] == b"EFI PART").then(|| b[56..72].try_into().ok()).flatten()
}

/// Makes a network device available to the network service.
pub fn register_net(dev: Arc<dyn NetDevice>) {
    if dev.has_interrupts() {
        crate::sched::register_event_source();
    }
    NET.lock().push(dev);
}

/// Makes a disk available to the file system service.
pub fn register_block(dev: Arc<dyn BlockDevice>) {
    BLOCK.lock().push(dev);
}

/// The registered network devices, in registration order.
pub fn net_devices() -> Vec<Arc<dyn NetDevice>> {
    ensure_probed();
    NET.lock().clone()
}

/// The registered disks, in registration order.
pub fn block_devices() -> Vec<Arc<dyn BlockDevice>> {
    ensure_probed();
    BLOCK.lock().clone()
}

/// Checks a block request against the device: length a multiple of the
/// block size, inside the device. For drivers to call first.
pub fn check_block_request(dev: &dyn BlockDevice, block: u64, len: usize) -> Result<(), DevError> {
    let bs = dev.block_size();
    if len == 0 || !len.is_multiple_of(bs) {
        return Err(DevError::BadLength);
    }
    let n = (len / bs) as u64;
    match block.checked_add(n) {
        Some(end) if end <= dev.num_blocks() => Ok(()),
        _ => Err(DevError::OutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_frame_fetches_once_and_lends_in_place() {
        let h = HeldFrame::new(16);
        let mut fetches = 0;
        let mut fetch = |b: &mut [u8]| {
            fetches += 1;
            b[..3].copy_from_slice(b"abc");
            Ok(3)
        };
        assert_eq!(h.pending(&mut fetch), Ok(true));
        assert_eq!(h.pending(&mut fetch), Ok(true)); // still held: no second fetch
        let mut got = Vec::new();
        assert_eq!(h.lend(&mut fetch, &mut |f| got.extend_from_slice(f)), Ok(true));
        assert_eq!(got, b"abc");
        assert_eq!(fetches, 1);
        // Empty again: the next lend fetches; a device with nothing says so.
        assert_eq!(h.lend(|_| Err(DevError::WouldBlock), &mut |_| panic!("no frame")), Ok(false));
        // A device claiming more than the buffer holds is caught.
        assert!(matches!(h.pending(|_| Ok(17)), Err(DevError::Broken(_))));
        assert_eq!(h.pending(|_| Err(DevError::Io)), Err(DevError::Io));
    }
}
