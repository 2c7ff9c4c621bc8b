//! Stopping the machine: the exit codes, normal exit and deadlock. Crash
//! reports (panics, CPU exceptions) are in [`crate::crash`], which ends
//! here too.
//!
//! On platforms where the host only sees the console (VMs), the last thing
//! printed is the marker `ESC _ unikit:exit=<code>[;reason=<r>] ESC \`: an
//! ANSI "application program command" that terminals do not display and
//! `unikit run` strips after reading the code (`unikit_abi::exit`).
use crate::console::emergency_print;
use crate::platform::hal;
use core::sync::atomic::{AtomicBool, Ordering};

/// Exit code after a guest panic.
pub const EXIT_PANIC: i32 = 101;
/// Exit code after an unhandled CPU exception.
pub const EXIT_EXCEPTION: i32 = 102;
/// Exit code when every thread is blocked and nothing can wake one.
pub const EXIT_DEADLOCK: i32 = 103;

static STOPPING: AtomicBool = AtomicBool::new(false);

/// Exits the whole unikernel with the app's exit code.
pub fn exit(code: i32) -> ! {
    stop(code, None)
}

pub(crate) fn stop(code: i32, reason: Option<&str>) -> ! {
    if !STOPPING.swap(true, Ordering::SeqCst) {
        crate::bootstats::print_exit_stats();
    }
    let p = hal().shutdown;
    if p.needs_exit_marker() {
        emergency_print(format_args!("{}\n", unikit_abi::exit::Marker { code, reason }));
    }
    p.shutdown(code)
}

/// Every thread is blocked and nothing can wake one.
pub fn deadlock() -> ! {
    emergency_print(format_args!("\n[unikit] DEADLOCK: every thread is blocked and no timer or device can wake one\n"));
    stop(EXIT_DEADLOCK, Some("deadlock"))
}
