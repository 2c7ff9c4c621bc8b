//! Console output with `print!`-style macros. Output is serialised by a lock
//! taken with interrupts off so that lines from threads do not interleave.
use crate::platform::{IrqGuard, hal};
use core::fmt::{self, Write};
use spin::Mutex;

static LOCK: Mutex<()> = Mutex::new(());

struct Writer<'a>(&'a dyn hal::Console);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// Formats straight to `console`: for a platform's fatal errors before the
/// kernel runs (and so before its console is bound).
pub fn print_to(console: &dyn hal::Console, args: fmt::Arguments) {
    let _ = Writer(console).write_fmt(args);
}

/// `fmt::Write` straight to the console, for boot-time and crash output.
pub fn boot_log_writer() -> impl Write {
    Writer(hal().console)
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _irq = IrqGuard::new();
    let _g = LOCK.lock();
    let _ = Writer(hal().console).write_fmt(args);
}

/// Writes without taking the console lock: for crash reports, which may
/// happen while the lock is held.
pub fn emergency_print(args: fmt::Arguments) {
    let _ = Writer(hal().console).write_fmt(args);
}

/// Writes raw bytes to the platform console.
pub fn write_bytes(bytes: &[u8]) {
    let _irq = IrqGuard::new();
    let _g = LOCK.lock();
    hal().console.write(bytes);
}

/// Prints to the console, like `print!`; usable before the heap exists.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console, like `println!`; usable before the heap exists.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
