//! Legacy PC devices found on QEMU q35/microvm, Firecracker and most
//! hypervisors' emulated chipsets.
#![deny(unsafe_code)]
pub mod i8254;
pub mod i8259;
pub mod rtc;
pub mod uart16550;
