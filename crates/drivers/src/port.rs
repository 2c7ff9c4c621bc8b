//! Port I/O for PCI configuration space and legacy virtio.
pub use arch::io::{inb, inl, inw, outb, outl, outw};
