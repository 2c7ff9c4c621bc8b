//! The port blocks every PC-compatible machine has at fixed numbers. They
//! are hardware facts (the IBM PC/AT map, the PCI Local Bus spec's
//! configuration mechanism #1), so the handles are given out here rather
//! than conjured by each driver; none of these devices does DMA.
//! Ports with no device behind them read all ones and ignore writes.
use crate::PortRange;

const fn fixed(base: u16, len: u16) -> PortRange {
    // SAFETY: only called below, with the architecturally fixed ports of
    // the legacy PC devices named by the constants; the blocks fit in the
    // 64 KiB I/O space (checked by `new`).
    match unsafe { PortRange::new(base, len) } {
        Some(r) => r,
        None => panic!("port block past 0xffff"),
    }
}

/// PCI configuration mechanism #1: address at 0xCF8, data at 0xCFC..0xCFF.
pub const PCI_CONFIG: PortRange = fixed(0xcf8, 8);
/// The 8254 PIT: counters 0..2 at 0x40..0x42, mode/command at 0x43.
pub const PIT: PortRange = fixed(0x40, 4);
/// The master 8259 PIC (command, data).
pub const PIC_MASTER: PortRange = fixed(0x20, 2);
/// The slave 8259 PIC (command, data).
pub const PIC_SLAVE: PortRange = fixed(0xa0, 2);
/// The CMOS/RTC index and data ports.
pub const CMOS: PortRange = fixed(0x70, 2);
/// The first serial port's 16550 registers.
pub const COM1: PortRange = fixed(0x3f8, 8);
/// The second serial port's 16550 registers.
pub const COM2: PortRange = fixed(0x2f8, 8);
