//! 16550 UART, polled transmit. Every register access is a VM exit, so the
//! driver touches as few registers as it can.
#![deny(unsafe_code)]
use unikit_io::PortRange;

/// The first serial port.
pub const COM1: PortRange = unikit_io::pc::COM1;

const THR: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_THR_EMPTY: u8 = 1 << 5;
const FIFO_DEPTH: usize = 16;

pub struct Uart16550 {
    regs: PortRange,
}

impl Uart16550 {
    /// The UART whose registers are `regs` (8 ports; if no UART is there,
    /// writes are ignored and reads give all ones).
    pub const fn new(regs: PortRange) -> Self {
        Self { regs }
    }

    fn outb(&self, reg: u16, v: u8) {
        self.regs.write::<u8>(reg, v)
    }

    fn inb(&self, reg: u16) -> u8 {
        self.regs.read::<u8>(reg)
    }

    /// 115200 8N1, FIFOs on, interrupts off.
    pub fn init(&self) {
        self.outb(IER, 0x00);
        self.outb(LCR, 0x80); // DLAB on
        self.outb(0, 0x01); // divisor 1 = 115200 baud
        self.outb(IER, 0x00);
        self.outb(LCR, 0x03); // 8N1, DLAB off
        self.outb(FCR, 0xc7);
        self.outb(MCR, 0x03);
    }

    pub fn write_byte(&self, b: u8) {
        self.wait_thr_empty();
        self.outb(THR, b);
    }

    /// Writes `bytes`, turning `\n` into `\r\n`. With the FIFO on, THR-empty
    /// means the whole 16-byte FIFO is free, so LSR is polled once per 16
    /// bytes instead of once per byte: half the VM exits.
    pub fn write(&self, bytes: &[u8]) {
        let mut room = 0;
        let mut put = |b: u8| {
            if room == 0 {
                self.wait_thr_empty();
                room = FIFO_DEPTH;
            }
            self.outb(THR, b); // the FIFO has room

            room -= 1;
        };
        for &b in bytes {
            if b == b'\n' {
                put(b'\r');
            }
            put(b);
        }
    }

    fn wait_thr_empty(&self) {
        // An absent UART reads 0xff, which has THR-empty set, so this
        // cannot hang.
        while self.inb(LSR) & LSR_THR_EMPTY == 0 {
            core::hint::spin_loop();
        }
    }
}
