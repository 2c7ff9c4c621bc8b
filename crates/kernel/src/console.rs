//! Console output with `print!`-style macros. Output is serialised by a lock
//! taken with interrupts off so that lines from threads do not interleave.
use crate::platform::{IrqGuard, platform};
use core::fmt::{self, Write};
use spin::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

struct Writer;

impl Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        platform().console_write(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _irq = IrqGuard::new();
    let _g = LOCK.lock();
    let _ = Writer.write_fmt(args);
}

/// Writes without taking the console lock: for crash reports, which may
/// happen while the lock is held.
pub fn emergency_print(args: fmt::Arguments) {
    let _ = Writer.write_fmt(args);
}

pub fn write_bytes(bytes: &[u8]) {
    let _irq = IrqGuard::new();
    let _g = LOCK.lock();
    platform().console_write(bytes);
}

#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `fmt::Write` straight to the console, for boot-time and crash output.
pub struct BootLogWriter;

impl Write for BootLogWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        platform().console_write(s.as_bytes());
        Ok(())
    }
}
