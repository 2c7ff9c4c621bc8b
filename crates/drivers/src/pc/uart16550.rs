//! 16550 UART, polled transmit. Every register access is a VM exit, so the
//! driver touches as few registers as it can.
use arch::io::{inb, outb};

pub const COM1: u16 = 0x3f8;

const THR: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_THR_EMPTY: u8 = 1 << 5;
const FIFO_DEPTH: usize = 16;

pub struct Uart16550 {
    base: u16,
}

impl Uart16550 {
    /// # Safety
    /// `base` must be the I/O base of a 16550-compatible UART (or nothing:
    /// writes to an absent port are ignored by the platform).
    pub const unsafe fn new(base: u16) -> Self {
        Self { base }
    }

    /// 115200 8N1, FIFOs on, interrupts off.
    pub fn init(&self) {
        // SAFETY: programming our own UART's registers.
        unsafe {
            outb(self.base + IER, 0x00);
            outb(self.base + LCR, 0x80); // DLAB on
            outb(self.base, 0x01); // divisor 1 = 115200 baud
            outb(self.base + IER, 0x00);
            outb(self.base + LCR, 0x03); // 8N1, DLAB off
            outb(self.base + FCR, 0xc7);
            outb(self.base + MCR, 0x03);
        }
    }

    pub fn write_byte(&self, b: u8) {
        // SAFETY: reading LSR and writing THR of our own UART. An absent
        // UART reads 0xff, which has THR-empty set, so this cannot hang.
        unsafe {
            while inb(self.base + LSR) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
            outb(self.base + THR, b);
        }
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
            // SAFETY: writing THR of our own UART, which has room.
            unsafe { outb(self.base + THR, b) };
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
        // SAFETY: reading LSR of our own UART. An absent UART reads 0xff,
        // which has THR-empty set, so this cannot hang.
        unsafe {
            while inb(self.base + LSR) & LSR_THR_EMPTY == 0 {
                core::hint::spin_loop();
            }
        }
    }
}
