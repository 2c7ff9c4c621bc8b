//! Intel 8254x ("e1000") NICs: the 82540EM QEMU emulates (8086:100e) and
//! the 82545EM VMware offers (8086:100f). Legacy descriptors, one receive
//! and one transmit ring, registers in memory BAR 0, no offloads.
//!
//! Register offsets and bits are from Intel's "PCI/PCI-X Family of Gigabit
//! Ethernet Controllers Software Developer's Manual" (8254x), chapters 3
//! (descriptors) and 13 (registers).
//!
//! Nothing the device writes is trusted ([`ring`]): only descriptors the
//! driver handed over are looked at, a receive length must fit its buffer,
//! and a frame spread over several buffers or flagged with errors is
//! dropped.
#[deny(unsafe_code)]
pub mod ring;

// Lends DMA buffers to the stack (the only unsafe in this driver).
#[cfg(target_os = "none")]
mod dev;
#[cfg(target_os = "none")]
pub use dev::{E1000, attach};

#[cfg(test)]
mod tests;

pub const VENDOR: u16 = 0x8086;
/// 82540EM (QEMU `-device e1000`), 82545EM copper (VMware's `e1000`),
/// 82574L (QEMU's and VMware's `e1000e`; driven through the same legacy
/// descriptors, which it keeps as its default format).
pub const DEVICES: [u16; 3] = [0x100e, 0x100f, E1000E];
pub const E1000E: u16 = 0x10d3;

// Registers (byte offsets in BAR 0).
pub const CTRL: usize = 0x0000;
pub const STATUS: usize = 0x0008;
pub const EERD: usize = 0x0014;
pub const ICR: usize = 0x00c0;
pub const IMS: usize = 0x00d0;
pub const IMC: usize = 0x00d8;
pub const RCTL: usize = 0x0100;
pub const TCTL: usize = 0x0400;
pub const TIPG: usize = 0x0410;
pub const RDBAL: usize = 0x2800;
pub const RDBAH: usize = 0x2804;
pub const RDLEN: usize = 0x2808;
pub const RDH: usize = 0x2810;
pub const RDT: usize = 0x2818;
pub const TDBAL: usize = 0x3800;
pub const TDBAH: usize = 0x3804;
pub const TDLEN: usize = 0x3808;
pub const TDH: usize = 0x3810;
pub const TDT: usize = 0x3818;
pub const MTA: usize = 0x5200;
pub const RAL0: usize = 0x5400;
pub const RAH0: usize = 0x5404;
/// Registers used lie below this.
pub const REGS_LEN: usize = 0x6000;

pub const CTRL_ASDE: u32 = 1 << 5;
pub const CTRL_SLU: u32 = 1 << 6;
pub const CTRL_RST: u32 = 1 << 26;
pub const STATUS_LU: u32 = 1 << 1;
/// EERD on the 8254x: start bit 0, done bit 4, word address from bit 8.
pub const EERD_START: u32 = 1 << 0;
pub const EERD_DONE: u32 = 1 << 4;
pub const EERD_ADDR_SHIFT: u32 = 8;
/// EERD on the 82574: done bit 1, word address from bit 2.
pub const EERD_DONE_82574: u32 = 1 << 1;
pub const EERD_ADDR_SHIFT_82574: u32 = 2;
pub const RAH_AV: u32 = 1 << 31;
pub const RCTL_EN: u32 = 1 << 1;
pub const RCTL_BAM: u32 = 1 << 15;
/// Strip the Ethernet CRC (receive lengths then exclude it).
pub const RCTL_SECRC: u32 = 1 << 26;
pub const TCTL_EN: u32 = 1 << 1;
pub const TCTL_PSP: u32 = 1 << 3;
/// Collision threshold 0x10, collision distance 0x40 (full duplex).
pub const TCTL_CT_COLD: u32 = 0x10 << 4 | 0x40 << 12;
/// IPGT 10, IPGR1 8, IPGR2 6 (the manual's values for copper).
pub const TIPG_VALUE: u32 = 10 | 8 << 10 | 6 << 20;
/// Interrupt causes: transmit descriptor written back, link change,
/// receive threshold, receive timer.
pub const INT_TXDW: u32 = 1 << 0;
pub const INT_LSC: u32 = 1 << 2;
pub const INT_RXDMT0: u32 = 1 << 4;
pub const INT_RXT0: u32 = 1 << 7;

// 82574 only: MSI-X. IVAR maps causes to vectors (4-bit entries: vector
// in bits 0-2, valid bit 3; RxQ0 at bit 0, TxQ0 at 8, Other at 16; bit 31:
// a Tx interrupt on every write-back); EIAC auto-clears ICR bits when their
// vector fires; CTRL_EXT.IAME keeps IMS set through that auto-clear.
pub const CTRL_EXT: usize = 0x0018;
pub const EIAC_82574: usize = 0x00dc;
pub const IVAR: usize = 0x00e4;
pub const CTRL_EXT_IAME: u32 = 1 << 27;
pub const CTRL_EXT_PBA_CLR: u32 = 1 << 31;
pub const IVAR_VALID: u32 = 1 << 3;
pub const IVAR_TX_EVERY_WB: u32 = 1 << 31;
pub const ICR_RXQ0: u32 = 1 << 20;
pub const ICR_TXQ0: u32 = 1 << 22;

/// Descriptors are 16 bytes; ring lengths are multiples of 128 bytes.
pub const DESC: usize = 16;
pub const RING_ALIGN: u32 = 8;
