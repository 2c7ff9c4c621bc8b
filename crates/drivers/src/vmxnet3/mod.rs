//! vmxnet3: VMware's paravirtual NIC (PCI 15ad:07b0), revision 1 of its
//! interface, one transmit and one receive queue, no offloads.
//!
//! Layouts and constants are from VMware's `vmxnet3_defs.h` (as shipped in
//! Linux's drivers/net/vmxnet3 and FreeBSD's if_vmx): BAR0 holds the
//! "passthrough" doorbells (interrupt mask, producer indexes), BAR1 the
//! "virtual device" registers (version selection, the driver-shared area's
//! address, the command register, the MAC), BAR2 the MSI-X table.
//!
//! The driver gives the device a *driver-shared* area (configuration) that
//! points at a *queue descriptor* area (one tx and one rx queue
//! descriptor), which in turn points at the rings. Rings and completion
//! rings carry a generation bit that flips on every wrap, so neither side
//! needs the other's index to tell new entries from old ones.
//!
//! Nothing the device writes is trusted ([`ring`]): a completion must name
//! the descriptor the driver expects (rx) or one in flight (tx), have the
//! right type and a length that fits the buffer; otherwise the device is
//! marked broken and not used again.
#[deny(unsafe_code)]
pub mod ring;

// Lends DMA buffers to the stack (the only unsafe in this driver).
#[cfg(target_os = "none")]
mod dev;
#[cfg(target_os = "none")]
pub use dev::{Vmxnet3, attach};

#[cfg(test)]
mod tests;

pub const VENDOR: u16 = 0x15ad;
pub const DEVICE: u16 = 0x07b0;

// BAR0 ("PT") registers, 8 bytes apart per queue / interrupt.
pub const REG_IMR: usize = 0x0;
pub const REG_TXPROD: usize = 0x600;
pub const REG_RXPROD: usize = 0x800;

// BAR1 ("VD") registers.
pub const REG_VRRS: usize = 0x0;
pub const REG_UVRS: usize = 0x8;
pub const REG_DSAL: usize = 0x10;
pub const REG_DSAH: usize = 0x18;
pub const REG_CMD: usize = 0x20;
pub const REG_MACL: usize = 0x28;
pub const REG_MACH: usize = 0x30;
pub const REG_ICR: usize = 0x38;

pub const CMD_ACTIVATE_DEV: u32 = 0xcafe_0000;
pub const CMD_RESET_DEV: u32 = 0xcafe_0002;
pub const CMD_UPDATE_RX_MODE: u32 = 0xcafe_0003;
pub const CMD_UPDATE_VLAN_FILTERS: u32 = 0xcafe_0005;
pub const CMD_GET_LINK: u32 = 0xf00d_0002;

/// `Vmxnet3_DriverShared.magic`.
pub const SHARED_MAGIC: u32 = 0xbabe_fee1;

/// Offsets in `Vmxnet3_DriverShared` (revision 1 layout).
pub mod shared {
    pub const MAGIC: usize = 0;
    // devRead.misc (Vmxnet3_MiscConf) at 8.
    pub const DRIVER_VERSION: usize = 8;
    pub const GOS: usize = 12;
    pub const REV_SUPPORTED: usize = 16;
    pub const UPT_SUPPORTED: usize = 20;
    pub const UPT_FEATURES: usize = 24;
    pub const QUEUE_DESC_PA: usize = 40;
    pub const QUEUE_DESC_LEN: usize = 52;
    pub const MTU: usize = 56;
    pub const MAX_RX_SG: usize = 60;
    pub const NUM_TX_QUEUES: usize = 62;
    pub const NUM_RX_QUEUES: usize = 63;
    // devRead.intrConf (Vmxnet3_IntrConf) at 80.
    pub const AUTO_MASK: usize = 80;
    pub const NUM_INTRS: usize = 81;
    pub const EVENT_INTR_IDX: usize = 82;
    pub const MOD_LEVELS: usize = 83;
    pub const INTR_CTRL: usize = 108;
    // devRead.rxFilterConf at 120.
    pub const RX_MODE: usize = 120;
    pub const VF_TABLE: usize = 136;
    pub const ECR: usize = 696;
    /// Bytes of the area (revision 1 ends at 720).
    pub const LEN: usize = 720;
}

/// `Vmxnet3_IntrConf.intrCtrl`: all interrupts off.
pub const IC_DISABLE_ALL: u32 = 1;
/// `rxMode` bits.
pub const RXM_UCAST: u32 = 0x01;
pub const RXM_BCAST: u32 = 0x04;
pub const RXM_ALL_MULTI: u32 = 0x08;

/// Offsets in `Vmxnet3_TxQueueDesc` (256 bytes).
pub mod txq {
    pub const NUM_DEFERRED: usize = 0;
    pub const THRESHOLD: usize = 4;
    pub const RING_PA: usize = 16;
    pub const DATA_RING_PA: usize = 24;
    pub const COMP_RING_PA: usize = 32;
    pub const RING_SIZE: usize = 56;
    pub const DATA_RING_SIZE: usize = 60;
    pub const COMP_RING_SIZE: usize = 64;
    pub const INTR_IDX: usize = 72;
    pub const DATA_DESC_SIZE: usize = 74;
    pub const STOPPED: usize = 80;
    pub const ERROR: usize = 84;
    pub const LEN: usize = 256;
}

/// Offsets in `Vmxnet3_RxQueueDesc` (256 bytes).
pub mod rxq {
    pub const UPDATE_PROD: usize = 0;
    pub const RING0_PA: usize = 16;
    pub const RING1_PA: usize = 24;
    pub const COMP_RING_PA: usize = 32;
    pub const RING0_SIZE: usize = 56;
    pub const RING1_SIZE: usize = 60;
    pub const COMP_RING_SIZE: usize = 64;
    pub const INTR_IDX: usize = 72;
    pub const STOPPED: usize = 80;
    pub const ERROR: usize = 84;
    pub const LEN: usize = 256;
}

/// Every ring descriptor (tx, rx, completions) is 16 bytes.
pub const DESC: usize = 16;
/// Bytes per tx data-ring entry (revision 1 fixes it at 128).
pub const DATA_DESC: usize = 128;
/// Ring sizes are multiples of 32 (`VMXNET3_RING_SIZE_ALIGN`).
pub const RING_ALIGN: u32 = 32;
