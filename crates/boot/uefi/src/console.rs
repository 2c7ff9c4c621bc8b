//! Failure reporting: one `unikit-boot: ...` line on the firmware console
//! (ConOut) and on COM1, then power-off. The VM's console is the serial
//! port to a file, so a loader that only wrote to the screen, or hung,
//! would leave the user with nothing.

use core::arch::asm;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use uefi::runtime::{self, ResetType};
use uefi::{Status, boot, system};

static BOOT_SERVICES_EXITED: AtomicBool = AtomicBool::new(false);
static FAILING: AtomicBool = AtomicBool::new(false);

/// From here on, ConOut and boot services are gone: serial only.
pub fn boot_services_exited() {
    BOOT_SERVICES_EXITED.store(true, Ordering::SeqCst);
}

/// COM1, a 16550 at its legacy I/O base.
const COM1: u16 = 0x3f8;

fn outb(port: u16, val: u8) {
    // SAFETY: only the COM1 ports are written; no memory is touched.
    unsafe { asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags)) }
}

fn inb(port: u16) -> u8 {
    let val: u8;
    // SAFETY: reading a COM1 register has no side effect on memory.
    unsafe { asm!("in al, dx", in("dx") port, out("al") val, options(nomem, nostack, preserves_flags)) }
    val
}

struct Serial;

impl Serial {
    /// 115200 8N1, FIFO on, interrupts off: what OVMF itself uses, so
    /// setting it again does not disturb the firmware's own output.
    fn init() -> Serial {
        outb(COM1 + 1, 0x00); // IER: no interrupts
        outb(COM1 + 3, 0x80); // LCR: DLAB, to set the divisor
        outb(COM1, 0x01); // divisor 1 = 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8 data bits, no parity, 1 stop bit
        outb(COM1 + 2, 0xc7); // FIFO on and cleared
        outb(COM1 + 4, 0x03); // DTR, RTS
        Serial
    }

    fn put(&mut self, b: u8) {
        // Wait for the transmitter, but boundedly: a missing UART reads
        // 0xff (THRE set) and a stuck one must not hang the loader.
        for _ in 0..100_000 {
            if inb(COM1 + 5) & 0x20 != 0 {
                break;
            }
        }
        outb(COM1, b);
    }
}

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

/// A line formatted without allocation (cut at its capacity).
struct Line {
    buf: [u8; 320],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut tmp = [0; 4];
            let enc = c.encode_utf8(&mut tmp).as_bytes();
            let Some(dst) = self.buf.get_mut(self.len..self.len + enc.len()) else { return Ok(()) };
            dst.copy_from_slice(enc);
            self.len += enc.len();
        }
        Ok(())
    }
}

impl Line {
    fn as_str(&self) -> &str {
        // Only whole characters were copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Says why the boot failed and powers the machine off.
pub fn fail(args: fmt::Arguments) -> ! {
    let mut line = Line { buf: [0; 320], len: 0 };
    let _ = line.write_fmt(format_args!("unikit-boot: {args}"));
    let _ = writeln!(Serial::init(), "{}", line.as_str());
    // A failure while failing (a panic in ConOut) skips straight to the reset.
    let first = !FAILING.swap(true, Ordering::SeqCst);
    if first && !BOOT_SERVICES_EXITED.load(Ordering::SeqCst) {
        system::with_stdout(|out| {
            let _ = writeln!(out, "{}", line.as_str());
        });
        // Time for a human at a screen to read it.
        boot::stall(Duration::from_secs(1));
    }
    // ResetSystem is a runtime service: it works after ExitBootServices too.
    runtime::reset(ResetType::SHUTDOWN, Status::ABORTED, None)
}

/// `die!("...")`: [`fail`] with format arguments.
macro_rules! die {
    ($($arg:tt)*) => {
        $crate::console::fail(format_args!($($arg)*))
    };
}
pub(crate) use die;
