//! The linuxu platform: the same kernel and app as a plain static Linux
//! process. Console = stdout, clock = `clock_gettime`, memory = one `mmap`,
//! exit code = `exit_group`, CPU exceptions = signals reported like the VM's.
#![warn(missing_docs)]
#![no_std]

mod devices;
mod signals;
mod sys;

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use hal::{Args, BootInfo, Hal, ProcessArgs, ProcessItem, Region};

extern crate alloc;

const DEFAULT_MEMORY: u64 = 64 << 20;

global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    ".text",
    main = sym linuxu_main,
);

/// The Linux-process platform: system calls for console, clocks and exit.
pub struct Linuxu;

static LINUXU: Linuxu = Linuxu;
static BOOT_NS: AtomicU64 = AtomicU64::new(0);

impl hal::Platform for Linuxu {
    fn name(&self) -> &'static str {
        "linuxu"
    }
    fn bring_up(&self, _: &hal::BootInfo) {
        signals::install();
        let find = |key: &[u8]| {
            let envp = PROCESS.get().map_or(&[][..], |p| p.envp);
            // SAFETY: every envp entry is a NUL-terminated string for the process's life.
            envp.iter().map(|&p| unsafe { cstr(p) }).find_map(|e| e.strip_prefix(key))
        };
        devices::CONFIG.call_once(|| devices::Config {
            tap: find(b"UNIKIT_NET=tap:").map(|v| text(v).into()),
            disk: find(b"UNIKIT_DISK=").map(|v| text(v).into()),
        });
    }
    fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        write!(out, ", clock_gettime, mmap heap")
    }
}

impl hal::Console for Linuxu {
    fn write(&self, bytes: &[u8]) {
        sys::write(1, bytes);
    }
}

impl hal::Clock for Linuxu {
    fn monotonic_ns(&self) -> u64 {
        sys::clock_ns(sys::CLOCK_MONOTONIC).saturating_sub(BOOT_NS.load(Ordering::Relaxed))
    }
    fn raw_timestamp(&self) -> u64 {
        sys::clock_ns(sys::CLOCK_MONOTONIC)
    }
    fn wall_clock_ns(&self) -> u64 {
        sys::clock_ns(sys::CLOCK_REALTIME)
    }
    fn wait_for_event(&self, deadline_ns: Option<u64>) {
        // Device "interrupts" are readable descriptors (tap): wait on them.
        let timeout = deadline_ns.map(|d| d.saturating_sub(self.monotonic_ns()));
        devices::poll_fds(timeout);
    }
}

// A process has no interrupts to mask; signal handlers never enter the scheduler.
impl hal::IrqControl for Linuxu {
    fn save(&self) -> bool {
        false
    }
    fn restore(&self, _: bool) {}
}

impl hal::Shutdown for Linuxu {
    fn shutdown(&self, code: i32) -> ! {
        sys::exit_group(code)
    }
    fn needs_exit_marker(&self) -> bool {
        false
    }
}

impl hal::Memory for Linuxu {
    fn set_guard_page(&self, addr: u64, guard: bool) -> bool {
        sys::protect_page(addr, guard)
    }
}

static HAL: Hal = Hal {
    platform: &LINUXU,
    console: &LINUXU,
    clock: &LINUXU,
    irq: &LINUXU,
    shutdown: &LINUXU,
    memory: &LINUXU,
    cpu: &arch::fault::CPU,
    user: None,
};

/// argv and envp as the process got them, read in place.
struct Process {
    argv: &'static [*const u8],
    envp: &'static [*const u8],
}

// SAFETY: the pointers are the process's start-up strings, immutable for
// its life; one thread reads them.
unsafe impl Sync for Process {}
// SAFETY: as above.
unsafe impl Send for Process {}

/// Variables the platform itself reads: not the app's environment.
const PLATFORM_ENV: [&[u8]; 4] = [b"UNIKIT_MEMORY=", b"UNIKIT_NET=", b"UNIKIT_DISK=", b"UNIKIT_INITRD="];

impl ProcessArgs for Process {
    fn visit(&self, f: &mut dyn FnMut(ProcessItem<'_>)) {
        // SAFETY: every argv/envp entry is a NUL-terminated string for the process's life.
        let s = |p: *const u8| unsafe { cstr(p) };
        if let Some(&p) = self.argv.first() {
            f(ProcessItem::Program(s(p)));
        }
        for &p in self.argv.iter().skip(1) {
            f(ProcessItem::Arg(s(p)));
        }
        for e in self.envp.iter().map(|&p| s(p)) {
            if let Some(opts) = e.strip_prefix(b"UNIKIT_OPTS=") {
                f(ProcessItem::Options(opts));
            } else if PLATFORM_ENV.iter().any(|k| e.starts_with(k)) {
            } else if let Some(i) = e.iter().position(|&b| b == b'=') {
                f(ProcessItem::Env(&e[..i], &e[i + 1..]));
            }
        }
    }
}

static PROCESS: spin::Once<Process> = spin::Once::new();

/// C string at `p` as bytes (without the NUL).
///
/// # Safety
/// `p` must point at a NUL-terminated string that lives for the process.
unsafe fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: the caller guarantees NUL termination.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the `n` bytes before the NUL are part of the string.
    unsafe { core::slice::from_raw_parts(p, n) }
}

fn parse_size(s: &[u8]) -> Option<u64> {
    let (digits, mult) = match s.last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = core::str::from_utf8(digits).ok()?.parse().ok()?;
    n.checked_mul(mult).filter(|&v| v >= 1 << 20)
}

/// Bytes the platform keeps as text (device paths): UTF-8, or refused.
fn text(b: &'static [u8]) -> &'static str {
    core::str::from_utf8(b).unwrap_or_else(|_| {
        sys::write(2, b"unikit: a UNIKIT_* variable is not UTF-8\n");
        sys::exit_group(125)
    })
}

/// Rust entry: `sp` is the initial process stack (argc, argv..., 0, envp..., 0).
extern "C" fn linuxu_main(sp: *const u64) -> ! {
    let boot_ns = sys::clock_ns(sys::CLOCK_MONOTONIC);
    BOOT_NS.store(boot_ns, Ordering::Relaxed);
    // SAFETY: the System V process start-up layout.
    let (argv, envp): (&'static [*const u8], &'static [*const u8]) = unsafe {
        let argc = *sp as usize;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        let mut n = 0;
        while !(*envp.add(n)).is_null() {
            n += 1;
        }
        (core::slice::from_raw_parts(argv, argc), core::slice::from_raw_parts(envp, n))
    };
    // SAFETY: every envp entry is a NUL-terminated string for the process's life.
    let find = |key: &[u8]| envp.iter().map(|&p| unsafe { cstr(p) }).find_map(|e| e.strip_prefix(key));

    let memory = match find(b"UNIKIT_MEMORY=") {
        Some(v) => parse_size(v).unwrap_or_else(|| {
            sys::write(2, b"unikit: UNIKIT_MEMORY must be a size of at least 1M, like 64M\n");
            sys::exit_group(125)
        }),
        None => DEFAULT_MEMORY,
    };
    let Some(base) = sys::mmap_anon(memory) else {
        sys::write(2, b"unikit: cannot map memory for the heap (mmap failed)\n");
        sys::exit_group(125)
    };
    // With its NUL: `cstr` stops before it, and it is part of the string.
    let with_nul = |v: &'static [u8]| {
        // SAFETY: `v` ends where a NUL-terminated string's NUL is.
        unsafe { core::slice::from_raw_parts(v.as_ptr(), v.len() + 1) }
    };
    let initrd = find(b"UNIKIT_INITRD=").map(|path| match devices::map_initrd(with_nul(path)) {
        Ok(data) => data,
        Err(e) => {
            sys::write(2, b"unikit: cannot read the initrd named by UNIKIT_INITRD: ");
            sys::write(2, e.as_bytes());
            sys::write(2, b"\n");
            sys::exit_group(125)
        }
    });
    let process = PROCESS.call_once(|| Process { argv, envp });
    let top = sp as u64 + 16;
    let memory = [Region::new(base, base + memory)];
    // SAFETY: a fresh private mapping that only the kernel's allocator
    // uses; the initrd is a separate read-only mapping.
    unsafe {
        unikit_kernel::boot::enter(
            HAL,
            BootInfo {
                args: Args::Process(process),
                memory: &memory,
                reserved: &[],
                reclaimable: &[],
                initrd,
                boot_stack: Region::new(top.saturating_sub(8 << 20), top),
                hypervisor: "none (Linux process)",
                boot_timestamp: boot_ns,
            },
        )
    }
}
