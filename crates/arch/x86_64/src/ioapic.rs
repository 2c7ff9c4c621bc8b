//! I/O APIC: routes legacy interrupt lines (GSIs) to local APIC vectors.
use core::ptr::{read_volatile, write_volatile};

/// Where the I/O APIC's registers sit unless firmware tables say otherwise.
pub const DEFAULT_BASE: u64 = 0xfec0_0000;

/// The I/O APIC, reached through its index/data register window.
pub struct IoApic {
    base: u64,
}

impl IoApic {
    /// # Safety
    /// `base` must be the identity-mapped, uncached register window of an
    /// I/O APIC.
    pub const unsafe fn new(base: u64) -> Self {
        Self { base }
    }

    fn read(&self, reg: u32) -> u32 {
        // SAFETY: IOREGSEL/IOWIN of the I/O APIC we were given.
        unsafe {
            write_volatile(self.base as *mut u32, reg);
            read_volatile((self.base + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, val: u32) {
        // SAFETY: as above.
        unsafe {
            write_volatile(self.base as *mut u32, reg);
            write_volatile((self.base + 0x10) as *mut u32, val);
        }
    }

    /// Number of input pins (redirection entries).
    pub fn pins(&self) -> u32 {
        ((self.read(1) >> 16) & 0xff) + 1
    }

    /// Sends pin `pin` to `vector` on the CPU with APIC id `apic_id`.
    /// `level`: level-triggered, active-high (else edge, active-high).
    pub fn route(&self, pin: u32, vector: u8, apic_id: u32, level: bool) -> bool {
        if pin >= self.pins() {
            return false;
        }
        let lo = vector as u32 | if level { 1 << 15 } else { 0 };
        self.write(0x11 + 2 * pin, apic_id << 24);
        self.write(0x10 + 2 * pin, lo);
        true
    }

    /// Masks input `pin`, so it no longer raises interrupts.
    pub fn mask(&self, pin: u32) {
        if pin < self.pins() {
            let lo = self.read(0x10 + 2 * pin);
            self.write(0x10 + 2 * pin, lo | (1 << 16));
        }
    }
}
