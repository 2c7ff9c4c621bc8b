//! Stopping the machine: normal exit, panics, CPU exceptions and deadlock,
//! each with its own exit code and a report on the console.
//!
//! On platforms where the host only sees the console (VMs), the last thing
//! printed is the marker `ESC _ unikit:exit=<code>[;reason=<r>] ESC \`: an
//! ANSI "application program command" that terminals do not display and
//! `unikit run` strips after reading the code (`unikit_abi::exit`).
use crate::console::emergency_print;
use crate::platform::platform;
use core::sync::atomic::{AtomicBool, Ordering};

pub const EXIT_PANIC: i32 = 101;
pub const EXIT_EXCEPTION: i32 = 102;
pub const EXIT_DEADLOCK: i32 = 103;

static STOPPING: AtomicBool = AtomicBool::new(false);

/// Exits the whole unikernel with the app's exit code.
pub fn exit(code: i32) -> ! {
    stop(code, None)
}

fn stop(code: i32, reason: Option<&str>) -> ! {
    if !STOPPING.swap(true, Ordering::SeqCst) {
        crate::boot::print_exit_stats();
    }
    let p = platform();
    if p.needs_exit_marker() {
        emergency_print(format_args!("{}\n", unikit_abi::exit::Marker { code, reason }));
    }
    p.shutdown(code)
}

fn print_backtrace(rbp: u64, first: usize) {
    let (lo, hi) = crate::sched::current_stack();
    if first == 0 {
        emergency_print(format_args!("backtrace:\n"));
    }
    let mut any = false;
    arch::backtrace::walk(
        rbp,
        |a, b| lo != hi && a >= lo && b <= hi,
        |i, ret| {
            any = true;
            emergency_print(format_args!("  #{:<2} {ret:#018x}\n", first + i));
        },
    );
    if !any {
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

static PANICKING: AtomicBool = AtomicBool::new(false);

/// Reports a panic and stops with [`EXIT_PANIC`].
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        emergency_print(format_args!("\npanic while panicking: {}\n", info.message()));
        stop(EXIT_PANIC, Some("panic"));
    }
    emergency_print(format_args!("\n[unikit] PANIC in thread '{}': {}", ThreadName, info.message()));
    if let Some(loc) = info.location() {
        emergency_print(format_args!(" at {}:{}:{}", loc.file(), loc.line(), loc.column()));
    }
    emergency_print(format_args!("\n"));
    print_backtrace(arch::cpu::frame_pointer(), 0);
    stop(EXIT_PANIC, Some("panic"))
}

/// What the platform knows about a fatal CPU exception.
pub struct Exception {
    pub vector: u64,
    pub name: &'static str,
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub error_code: u64,
    /// Faulting address, for page faults.
    pub fault_addr: Option<u64>,
}

/// Reports a fatal CPU exception and stops with [`EXIT_EXCEPTION`].
pub fn exception(e: &Exception) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        emergency_print(format_args!("\nexception {} while crashing\n", e.name));
        stop(EXIT_EXCEPTION, Some("exception"));
    }
    emergency_print(format_args!(
        "\n[unikit] CPU EXCEPTION in thread '{}': {} (vector {})\n",
        ThreadName, e.name, e.vector
    ));
    emergency_print(format_args!(
        "  rip {:#018x}  rsp {:#018x}  rbp {:#018x}  error code {:#x}\n",
        e.rip, e.rsp, e.rbp, e.error_code
    ));
    if let Some(a) = e.fault_addr {
        let what = if e.error_code & 1 == 0 { "page not present" } else { "protection violation" };
        let access = if e.error_code & 0x10 != 0 {
            "instruction fetch"
        } else if e.error_code & 2 != 0 {
            "write"
        } else {
            "read"
        };
        emergency_print(format_args!("  fault address (cr2) {a:#018x}: {access}, {what}\n"));
        let (lo, _) = crate::sched::current_stack();
        if lo >= crate::sched::GUARD_SIZE && (lo - crate::sched::GUARD_SIZE..lo).contains(&a) {
            emergency_print(format_args!(
                "  STACK OVERFLOW: thread '{}' ran past the bottom of its stack into the guard page\n",
                ThreadName
            ));
        }
    }
    emergency_print(format_args!("backtrace:\n  #0  {:#018x} (faulting instruction)\n", e.rip));
    print_backtrace(e.rbp, 1);
    stop(EXIT_EXCEPTION, Some("exception"))
}

/// Reports a fatal CPU exception taken through the IDT (vectors 0-31).
pub fn cpu_exception(frame: &arch::idt::TrapFrame) -> ! {
    let v = frame.vector;
    exception(&Exception {
        vector: v,
        name: arch::idt::EXCEPTION_NAMES.get(v as usize).copied().unwrap_or("unknown exception"),
        rip: frame.rip,
        rsp: frame.rsp,
        rbp: frame.rbp,
        error_code: frame.error_code,
        fault_addr: (v == arch::idt::PAGE_FAULT).then(arch::cpu::read_cr2),
    })
}

/// Every thread is blocked and nothing can wake one.
pub fn deadlock() -> ! {
    emergency_print(format_args!("\n[unikit] DEADLOCK: every thread is blocked and no timer or device can wake one\n"));
    stop(EXIT_DEADLOCK, Some("deadlock"))
}

#[cfg(all(not(test), target_os = "none"))]
#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo) -> ! {
    panic(info)
}
