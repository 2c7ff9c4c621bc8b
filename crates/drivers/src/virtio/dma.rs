//! Memory the device reads and writes: [`unikit_io::DmaRegion`] under the
//! byte-oriented names the virtio drivers use. Device addresses come from
//! [`unikit_io::dma_addr_of`] (identity unless the platform installed a
//! translation with `unikit_io::set_dma_translate`).
#![deny(unsafe_code)]
use unikit_io::DmaRegion;

/// Device address of driver memory at virtual address `va`.
#[inline]
pub fn dma_addr(va: usize) -> u64 {
    unikit_io::dma_addr_of(va)
}

/// A zeroed heap block with a fixed address, shared with a device.
pub struct DmaBuf(DmaRegion);

impl DmaBuf {
    pub fn new(len: usize, align: usize) -> Option<Self> {
        DmaRegion::alloc(len, align).map(Self)
    }

    /// The region, for typed accesses (rings).
    pub fn region(&self) -> &DmaRegion {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Device address of byte `off`.
    pub fn addr(&self, off: usize) -> u64 {
        self.0.dma_addr(off)
    }

    /// Copies `out.len()` bytes from offset `off` (panics if out of range:
    /// callers pass lengths they have checked).
    pub fn read(&self, off: usize, out: &mut [u8]) {
        self.0.read_bytes(off, out)
    }

    pub fn write(&self, off: usize, data: &[u8]) {
        self.0.write_bytes(off, data)
    }

    pub fn fill(&self, off: usize, len: usize, byte: u8) {
        self.0.fill(off, len, byte)
    }
}
