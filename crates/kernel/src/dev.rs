//! Device interfaces and the device registry. Drivers (virtio, Xen
//! netfront, vmxnet3, tap on linuxu, ...) implement these traits and
//! register their devices during platform start-up; services (network
//! stack, file systems) find them here. Nothing in this module knows a bus.
use crate::event::Event;
use alloc::sync::Arc;
use alloc::vec::Vec;
use spin::Mutex;

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

/// An Ethernet interface.
pub trait NetDevice: Send + Sync {
    fn name(&self) -> &str;
    fn mac(&self) -> [u8; 6];
    /// Largest Ethernet payload (IP packet) the device carries, e.g. 1500.
    fn mtu(&self) -> usize;
    /// Copies one received frame (Ethernet header included) into `buf` and
    /// returns its length; `WouldBlock` when none is pending. A frame larger
    /// than `buf` is dropped and reported as `BadLength`.
    fn receive(&self, buf: &mut [u8]) -> Result<usize, DevError>;
    /// Queues one frame for transmission; `WouldBlock` when the device has
    /// no room (its event is signalled when room frees up).
    fn transmit(&self, frame: &[u8]) -> Result<(), DevError>;
    /// Signalled when frames arrive or transmit room frees up. Devices
    /// without interrupts leave it unsignalled and are polled.
    fn event(&self) -> &Event;
    /// Whether the device signals its event (otherwise the stack polls).
    fn has_interrupts(&self) -> bool;
}

/// A disk.
pub trait BlockDevice: Send + Sync {
    fn name(&self) -> &str;
    /// Bytes per block (512 for every device so far).
    fn block_size(&self) -> usize;
    fn num_blocks(&self) -> u64;
    fn read_only(&self) -> bool;
    /// Reads whole blocks starting at `block` into `buf` (a multiple of the
    /// block size). Blocks the calling thread until done.
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError>;
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
    #[allow(unsafe_code)]
    // SAFETY: every platform crate defines the symbol with this signature;
    // linking fails otherwise.
    PROBED.call_once(|| unsafe { __unikit_probe_devices() });
}

pub fn register_net(dev: Arc<dyn NetDevice>) {
    if dev.has_interrupts() {
        crate::sched::register_event_source();
    }
    NET.lock().push(dev);
}

pub fn register_block(dev: Arc<dyn BlockDevice>) {
    BLOCK.lock().push(dev);
}

pub fn net_devices() -> Vec<Arc<dyn NetDevice>> {
    ensure_probed();
    NET.lock().clone()
}

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
