//! Crash reports: panics and CPU exceptions (decoded by the architecture
//! layer into a [`Fault`]), each with a backtrace, ending the machine with
//! its own exit code ([`crate::exit`]). A report that itself crashes does
//! not report again in a loop.
use crate::console::emergency_print;
use crate::exit::{EXIT_EXCEPTION, EXIT_PANIC, stop};
use crate::platform::hal;
use core::sync::atomic::{AtomicUsize, Ordering};
use hal::Fault;

fn print_backtrace(rbp: u64, first: usize) {
    let (lo, hi) = crate::sched::current_stack();
    if first == 0 {
        emergency_print(format_args!("backtrace:\n"));
    }
    let mut frames = [0u64; 32];
    let n = hal().cpu.walk_stack(rbp, lo, hi, &mut frames);
    for (i, ret) in frames[..n].iter().enumerate() {
        emergency_print(format_args!("  #{:<2} {ret:#018x}\n", first + i));
    }
    if n == 0 {
        emergency_print(format_args!("  (no frames: frame pointer outside the thread's stack)\n"));
    }
}

struct ThreadName;
impl core::fmt::Display for ThreadName {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let mut r = Ok(());
        crate::sched::try_current_name(&mut |n| r = f.write_str(n));
        r
    }
}

/// Crash reports (panics, exceptions) under way, nested ones included. A
/// report that itself faults must not report again in a loop: the second
/// level prints one line, the third stops without printing anything.
static CRASHES: AtomicUsize = AtomicUsize::new(0);

/// Nesting level of the crash that calls it (0 for the first).
fn enter_crash() -> usize {
    CRASHES.fetch_add(1, Ordering::SeqCst)
}

/// Reports a panic and stops with [`EXIT_PANIC`].
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    match enter_crash() {
        0 => {}
        1 => {
            emergency_print(format_args!("\npanic while panicking: {}\n", info.message()));
            stop(EXIT_PANIC, Some("panic"));
        }
        _ => hal().shutdown.shutdown(EXIT_PANIC),
    }
    emergency_print(format_args!("\n[unikit] PANIC in thread '{}': {}", ThreadName, info.message()));
    if let Some(loc) = info.location() {
        emergency_print(format_args!(" at {}:{}:{}", loc.file(), loc.line(), loc.column()));
    }
    emergency_print(format_args!("\n"));
    print_backtrace(hal().cpu.caller_frame(), 0);
    stop(EXIT_PANIC, Some("panic"))
}

/// Reports a fatal CPU exception (decoded by the architecture layer) and
/// stops with [`EXIT_EXCEPTION`].
pub fn exception(e: &Fault) -> ! {
    match enter_crash() {
        0 => {}
        1 => {
            emergency_print(format_args!("\nexception {} while crashing\n", e.name));
            stop(EXIT_EXCEPTION, Some("exception"));
        }
        // The short report (or the exit marker) faulted too: nothing that
        // prints can be trusted any more.
        _ => hal().shutdown.shutdown(EXIT_EXCEPTION),
    }
    let [pc, sp, fp] = *e.register_names;
    emergency_print(format_args!(
        "\n[unikit] CPU EXCEPTION in thread '{}': {} (vector {})\n  {pc} {:#018x}  {sp} {:#018x}  {fp} {:#018x}  error code {:#x}\n",
        ThreadName, e.name, e.vector, e.pc, e.sp, e.fp, e.error_code
    ));
    if let Some(a) = e.address {
        emergency_print(format_args!("  fault address ({}) {:#018x}: {}, {}\n", a.source, a.addr, a.access, a.cause));
        let (lo, _) = crate::sched::current_stack();
        if lo >= crate::sched::GUARD_SIZE && (lo - crate::sched::GUARD_SIZE..lo).contains(&a.addr) {
            emergency_print(format_args!(
                "  STACK OVERFLOW: thread '{}' ran past the bottom of its stack into the guard page\n",
                ThreadName
            ));
        }
    }
    emergency_print(format_args!("backtrace:\n  #0  {:#018x} (faulting instruction)\n", e.pc));
    print_backtrace(e.fp, 1);
    stop(EXIT_EXCEPTION, Some("exception"))
}

#[cfg(all(not(test), target_os = "none"))]
#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo) -> ! {
    panic(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicBool;
    use hal::{Clock, Console, Cpu, Hal, IrqControl, Memory, Platform, Shutdown};

    /// A machine whose console faults on every write while `FAULTY` is set,
    /// the way a corrupted image or a broken console driver does: the
    /// fault re-enters the exception report from inside the report.
    struct Faulty;
    static FAULTY: AtomicBool = AtomicBool::new(false);
    static DEPTH: AtomicUsize = AtomicUsize::new(0);
    #[derive(Debug, PartialEq)]
    struct Stopped(i32);
    #[derive(Debug)]
    struct Looped;

    const FAULT: Fault = Fault {
        vector: 14,
        name: "page fault (#PF)",
        pc: 0x1000,
        sp: 0x2000,
        fp: 0,
        register_names: &["pc", "sp", "fp"],
        error_code: 2,
        address: None,
    };

    impl Platform for Faulty {
        fn name(&self) -> &'static str {
            "faulty"
        }
    }
    impl Console for Faulty {
        fn write(&self, _: &[u8]) {
            if FAULTY.load(Ordering::SeqCst) {
                // Each nested fault runs the handler again; a report that
                // keeps printing never gets out of here.
                if DEPTH.fetch_add(1, Ordering::SeqCst) > 50 {
                    std::panic::panic_any(Looped);
                }
                exception(&FAULT);
            }
        }
    }
    impl Clock for Faulty {
        fn monotonic_ns(&self) -> u64 {
            0
        }
        fn wall_clock_ns(&self) -> u64 {
            0
        }
        fn wait_for_event(&self, _: Option<u64>) {}
    }
    impl IrqControl for Faulty {
        fn save(&self) -> bool {
            false
        }
        fn restore(&self, _: bool) {}
    }
    impl Shutdown for Faulty {
        fn shutdown(&self, code: i32) -> ! {
            std::panic::panic_any(Stopped(code))
        }
    }
    impl Memory for Faulty {}
    #[allow(unsafe_code)]
    // SAFETY: never switches (no scheduler in this test).
    unsafe impl Cpu for Faulty {
        unsafe fn switch(&self, _: *mut u64, _: u64) {
            unreachable!()
        }
        unsafe fn init_stack(&self, top: u64, _: extern "C" fn(usize) -> !, _: usize) -> u64 {
            top
        }
        fn caller_frame(&self) -> u64 {
            0
        }
        fn walk_stack(&self, _: u64, _: u64, _: u64, _: &mut [u64]) -> usize {
            0
        }
    }

    static F: Faulty = Faulty;

    /// Issue 11: a fault while reporting a fault must stop the machine with
    /// the exception code, not loop printing "exception ... while crashing".
    #[test]
    fn fault_while_reporting_a_fault_stops_with_the_exception_code() {
        crate::platform::bind(Hal {
            platform: &F,
            console: &F,
            clock: &F,
            irq: &F,
            shutdown: &F,
            memory: &F,
            cpu: &F,
            user: None,
        });
        FAULTY.store(true, Ordering::SeqCst);
        let r = std::panic::catch_unwind(|| exception(&FAULT));
        FAULTY.store(false, Ordering::SeqCst);
        let payload = r.expect_err("exception() returned");
        assert!(payload.downcast_ref::<Looped>().is_none(), "the crash report looped");
        assert_eq!(payload.downcast_ref::<Stopped>(), Some(&Stopped(EXIT_EXCEPTION)));
    }
}
