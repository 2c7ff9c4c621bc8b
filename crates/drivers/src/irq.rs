//! How drivers get interrupts, whatever the platform's interrupt controller.
//! The platform implements [`InterruptController`]; a driver asks it for an
//! MSI/MSI-X message or for a legacy line (GSI) and supplies the handler.
#![deny(unsafe_code)]

/// Runs in interrupt context with interrupts off: it must only acknowledge
/// the device and signal a kernel `Event` (no blocking, no allocation).
pub trait IrqHandler: Send + Sync {
    fn handle(&self);
}

/// An MSI/MSI-X message: the driver writes it into the device's MSI-X table
/// (or MSI capability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

pub trait InterruptController: Sync {
    /// Allocates a vector for `handler` and returns the message that raises it.
    fn alloc_msi(&self, handler: &'static dyn IrqHandler) -> Option<MsiMessage>;
    /// Routes legacy interrupt line `gsi` (IOAPIC pin) to `handler`.
    /// `level`: level-triggered, active-high (virtio-mmio on microvm and
    /// Firecracker is edge-triggered, PCI INTx is level/active-low).
    fn route_gsi(&self, gsi: u32, level: bool, handler: &'static dyn IrqHandler) -> bool;
}
