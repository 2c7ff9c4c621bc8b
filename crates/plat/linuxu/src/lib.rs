//! The linuxu platform: the same kernel and app as a plain static Linux
//! process. Console = stdout, clock = `clock_gettime`, memory = one `mmap`,
//! exit code = `exit_group`, CPU exceptions = signals reported like the VM's.
#![no_std]

mod devices;
mod signals;
mod sys;

use alloc::string::String;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use unikit_kernel::boot::{Args, BootInfo};
use unikit_kernel::cmdline::CommandLine;
use unikit_kernel::mem::Region;
use unikit_kernel::platform::{Platform, set_platform};

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

pub struct Linuxu;

static LINUXU: Linuxu = Linuxu;
static LINUXU_DYN: &dyn Platform = &LINUXU;
static BOOT_NS: AtomicU64 = AtomicU64::new(0);

impl Platform for Linuxu {
    fn name(&self) -> &'static str {
        "linuxu"
    }
    fn console_write(&self, bytes: &[u8]) {
        sys::write(1, bytes);
    }
    fn monotonic_ns(&self) -> u64 {
        sys::clock_ns(sys::CLOCK_MONOTONIC).saturating_sub(BOOT_NS.load(Ordering::Relaxed))
    }
    fn wall_clock_ns(&self) -> u64 {
        sys::clock_ns(sys::CLOCK_REALTIME)
    }
    fn wait_for_event(&self, deadline_ns: Option<u64>) {
        // Device "interrupts" are readable descriptors (tap): wait on them.
        let timeout = deadline_ns.map(|d| d.saturating_sub(self.monotonic_ns()));
        devices::poll_fds(timeout);
    }
    // A process has no interrupts to mask; signal handlers never enter the scheduler.
    fn irq_save(&self) -> bool {
        false
    }
    fn irq_restore(&self, _: bool) {}
    fn shutdown(&self, code: i32) -> ! {
        sys::exit_group(code)
    }
    fn set_guard_page(&self, addr: u64, guard: bool) -> bool {
        sys::protect_page(addr, guard)
    }
    fn needs_exit_marker(&self) -> bool {
        false
    }
    fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        write!(out, ", clock_gettime, mmap heap")
    }
}

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

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into()
}

/// Rust entry: `sp` is the initial process stack (argc, argv..., 0, envp..., 0).
extern "C" fn linuxu_main(sp: *const u64) -> ! {
    BOOT_NS.store(sys::clock_ns(sys::CLOCK_MONOTONIC), Ordering::Relaxed);
    set_platform(&LINUXU_DYN);
    // SAFETY: the System V process start-up layout.
    let (argv, envp): (&[*const u8], &[*const u8]) = unsafe {
        let argc = *sp as usize;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        let mut n = 0;
        while !(*envp.add(n)).is_null() {
            n += 1;
        }
        (core::slice::from_raw_parts(argv, argc), core::slice::from_raw_parts(envp, n))
    };
    // SAFETY: every argv/envp entry is a NUL-terminated string for the process's life.
    let env_bytes = || envp.iter().map(|&p| unsafe { cstr(p) });
    let find = |key: &[u8]| env_bytes().find_map(|e| e.strip_prefix(key));

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
    // SAFETY: a fresh private mapping that only the kernel's allocator uses.
    if unsafe { unikit_kernel::mem::init(&[Region::new(base, base + memory)], &[]) }.is_err() {
        sys::write(2, b"unikit: memory init failed\n");
        sys::exit_group(125)
    }
    signals::install();
    devices::CONFIG.call_once(|| devices::Config {
        tap: find(b"UNIKIT_NET=tap:").map(lossy),
        disk: find(b"UNIKIT_DISK=").map(lossy),
    });
    if let Some(path) = find(b"UNIKIT_INITRD=") {
        match devices::map_initrd(path) {
            Ok(data) => unikit_kernel::boot::set_initrd(data),
            Err(e) => {
                sys::write(2, b"unikit: cannot read the initrd named by UNIKIT_INITRD: ");
                sys::write(2, e.as_bytes());
                sys::write(2, b"\n");
                sys::exit_group(125)
            }
        }
    }

    let mut cmdline = CommandLine::default();
    // SAFETY: as above.
    let args: Vec<&[u8]> = argv.iter().map(|&p| unsafe { cstr(p) }).collect();
    cmdline.args = args.iter().skip(1).map(|a| lossy(a)).collect();
    for e in env_bytes() {
        if let Some(opts) = e.strip_prefix(b"UNIKIT_OPTS=") {
            cmdline.options.extend(lossy(opts).split_whitespace().map(String::from));
        } else if [&b"UNIKIT_MEMORY="[..], b"UNIKIT_NET=", b"UNIKIT_DISK=", b"UNIKIT_INITRD="]
            .iter()
            .any(|k| e.starts_with(k))
        {
        } else if let Some(i) = e.iter().position(|&b| b == b'=') {
            cmdline.env.push((lossy(&e[..i]), lossy(&e[i + 1..])));
        }
    }
    let program = args.first().map(|a| lossy(a)).unwrap_or_default();
    let top = sp as u64 + 16;
    unikit_kernel::boot::start(BootInfo {
        args: Args::Process { program, cmdline },
        hypervisor: "none (Linux process)",
        boot_stack: (top.saturating_sub(8 << 20), top),
    })
}
