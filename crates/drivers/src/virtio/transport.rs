//! What the drivers need from a transport, and the steps every transport
//! shares (reset, feature negotiation, config reads).
#![deny(unsafe_code)]
use super::queue::VirtQueue;
use unikit_io::{IoMem, Port};

pub const STATUS_ACKNOWLEDGE: u8 = 1;
pub const STATUS_DRIVER: u8 = 2;
pub const STATUS_DRIVER_OK: u8 = 4;
pub const STATUS_FEATURES_OK: u8 = 8;
pub const STATUS_FAILED: u8 = 128;

pub const F_ANY_LAYOUT: u64 = 1 << 27;
pub const F_VERSION_1: u64 = 1 << 32;

/// MSI-X "no vector".
pub const NO_VECTOR: u16 = 0xffff;

/// How to tell the device a queue has new buffers.
/// The register is a handle checked against the device's notification
/// region when the queue was set up.
#[derive(Clone, Copy, Debug)]
pub enum Notify {
    Port16(Port<u16>, u16),
    Mmio16(IoMem, u16),
    Mmio32(IoMem, u32),
}

impl Notify {
    pub fn ring(&self) {
        match *self {
            Notify::Port16(port, v) => port.write(v),
            Notify::Mmio16(reg, v) => {
                reg.write::<u16>(0, v);
            }
            Notify::Mmio32(reg, v) => {
                reg.write::<u32>(0, v);
            }
        }
    }
}

pub trait Transport: Send + Sync {
    /// "pci", "pci-legacy", "mmio", "mmio-legacy".
    fn kind(&self) -> &'static str;
    /// A legacy (pre-1.0) interface: 32 feature bits, 10-byte net header,
    /// no FEATURES_OK step.
    fn is_legacy(&self) -> bool;
    fn device_features(&self) -> u64;
    fn set_driver_features(&self, features: u64);
    fn status(&self) -> u8;
    fn set_status(&self, status: u8);
    /// Largest size of queue `q`, 0 if it does not exist.
    fn queue_max(&self, q: u16) -> u16;
    /// Whether the queue size cannot be chosen (legacy PCI).
    fn queue_size_fixed(&self) -> bool;
    /// Gives queue `q` (of `vq.size()` entries) to the device, with MSI-X
    /// vector `vector` where the transport has them. Returns how to notify.
    /// `Ok((notify, vector_accepted))`.
    fn setup_queue(&self, q: u16, vq: &VirtQueue, vector: Option<u16>) -> Result<(Notify, bool), &'static str>;
    /// Sets the configuration-change MSI-X vector (PCI only).
    fn set_config_vector(&self, _vector: u16) {}
    /// Tells the transport MSI-X is now enabled (the legacy PCI register
    /// layout changes).
    fn set_msix_enabled(&self, _on: bool) {}
    /// Bytes of device-specific configuration.
    fn config_len(&self) -> usize;
    /// One byte of device configuration (`off < config_len()`).
    fn config_read8(&self, off: usize) -> u8;
    fn config_generation(&self) -> u32;
    /// Reads and acknowledges the interrupt status (ISR); from the handler.
    fn ack_interrupt(&self) -> u32;
}

/// Resets the device and waits (bounded) until it reads back 0.
pub fn reset(t: &dyn Transport) -> Result<(), &'static str> {
    t.set_status(0);
    for _ in 0..1_000_000 {
        if t.status() == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err("device did not reset")
}

/// Reset, ACKNOWLEDGE, DRIVER, features (`wanted` & offered), FEATURES_OK.
/// Returns the negotiated features.
pub fn negotiate(t: &dyn Transport, wanted: u64) -> Result<u64, &'static str> {
    reset(t)?;
    t.set_status(STATUS_ACKNOWLEDGE);
    t.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    let offered = t.device_features();
    let wanted = if t.is_legacy() { wanted & 0xffff_ffff } else { wanted | F_VERSION_1 };
    if !t.is_legacy() && offered & F_VERSION_1 == 0 {
        return Err("modern transport without VIRTIO_F_VERSION_1");
    }
    let features = offered & wanted;
    t.set_driver_features(features);
    if !t.is_legacy() {
        t.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        if t.status() & STATUS_FEATURES_OK == 0 {
            return Err("device refused the features");
        }
    }
    Ok(features)
}

/// Sets DRIVER_OK.
pub fn driver_ok(t: &dyn Transport) {
    let s = t.status();
    t.set_status(s | STATUS_DRIVER_OK);
}

/// Marks the device failed and resets it so that it stops using our memory.
pub fn fail(t: &dyn Transport) {
    t.set_status(STATUS_FAILED);
    let _ = reset(t);
}

/// Reads `out.len()` bytes of device configuration at `off`, retrying while
/// the configuration generation changes. Reading past the end is an error.
pub fn read_config(t: &dyn Transport, off: usize, out: &mut [u8]) -> Result<(), &'static str> {
    if off.checked_add(out.len()).is_none_or(|e| e > t.config_len()) {
        return Err("device configuration too short");
    }
    for _ in 0..100 {
        let g = t.config_generation();
        for (i, b) in out.iter_mut().enumerate() {
            *b = t.config_read8(off + i);
        }
        if t.config_generation() == g {
            return Ok(());
        }
    }
    Err("device configuration keeps changing")
}

/// Chooses a queue size: the device's (legacy PCI) or min(max, `want`),
/// a power of two.
pub fn queue_size(t: &dyn Transport, q: u16, want: u16) -> Result<u16, &'static str> {
    let max = t.queue_max(q);
    if max == 0 {
        return Err("queue missing");
    }
    if t.queue_size_fixed() {
        if !max.is_power_of_two() || max > super::queue::MAX_QUEUE_SIZE {
            return Err("device queue size unsupported");
        }
        return Ok(max);
    }
    let m = max.min(want);
    Ok(1 << (15 - m.leading_zeros().min(15))) // round down to a power of two
}

/// Memory-mapped registers: an [`IoMem`] window. Accesses outside read as
/// all ones and are dropped.
#[derive(Clone, Copy, Debug)]
pub struct Regs(pub IoMem);

impl Regs {
    pub fn base(&self) -> usize {
        self.0.base()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The `w`-byte register at `off`, as its own window (a doorbell).
    pub fn reg(&self, off: usize, w: usize) -> Option<IoMem> {
        self.0.sub(off, w)
    }
    pub fn r8(&self, off: usize) -> u8 {
        self.0.read(off).unwrap_or(!0)
    }
    pub fn r16(&self, off: usize) -> u16 {
        self.0.read(off).unwrap_or(!0)
    }
    pub fn r32(&self, off: usize) -> u32 {
        self.0.read(off).unwrap_or(!0)
    }
    pub fn w8(&self, off: usize, v: u8) {
        self.0.write(off, v);
    }
    pub fn w16(&self, off: usize, v: u16) {
        self.0.write(off, v);
    }
    pub fn w32(&self, off: usize, v: u32) {
        self.0.write(off, v);
    }
    pub fn w64(&self, off: usize, v: u64) {
        self.w32(off, v as u32);
        self.w32(off + 4, (v >> 32) as u32);
    }
}
