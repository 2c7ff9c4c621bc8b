//! Linux binary compatibility: loads an x86_64 Linux ELF program from the
//! VFS and serves its system calls with unikit's own kernel, VFS and
//! TCP/IP stack. The program runs in user mode (ring 3) on the kernel's
//! page tables; one program per VM, its threads are kernel threads.
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_code)]

extern crate alloc;

mod cpu;
mod epoll;
pub mod errno;
pub mod fd;
mod loader;
mod path;
mod pipe;
mod poll;
mod procfs;
mod random;
mod signal;
mod socket;
mod syscall;
mod vm;

use alloc::string::String;
use alloc::vec::Vec;
use spin::Once;

static ARGV: Once<Vec<String>> = Once::new();

/// The program's arguments (`/proc/self/cmdline`).
pub(crate) fn argv() -> &'static [String] {
    ARGV.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// Brings the network up before the program runs when its address is
/// fixed (a SYN that arrives before the program's first socket call gets
/// an answer, as from a Linux host), or on a loopback device as
/// 127.0.0.1/8 when there is no NIC. With DHCP it starts on first use, so
/// a program that never uses the network does not wait for a lease.
fn start_network() {
    let cl = unikit_kernel::boot::command_line();
    let fixed = cl.options.iter().any(|o| o.starts_with("netdev.ip=") && o != "netdev.ip=dhcp");
    if fixed || unikit_kernel::dev::net_devices().is_empty() {
        unikit_net::start_early();
    }
}

/// Exit status when the program cannot be started.
pub const EXIT_CANNOT_EXEC: i32 = 126;

/// Runs the program at `argv[0]` (a path in the VFS) with `argv` and
/// `envp`. Returns only when it cannot start (with a message printed and
/// [`EXIT_CANNOT_EXEC`]); otherwise the program's exit ends the VM.
pub fn exec(argv: &[String], envp: &[String]) -> i32 {
    if !unikit_kernel::user::available() {
        unikit_kernel::kprintln!("unikit: this platform cannot run Linux programs (no user mode)");
        return EXIT_CANNOT_EXEC;
    }
    let Some(path) = argv.first() else {
        unikit_kernel::kprintln!("unikit: exec: no program given");
        return EXIT_CANNOT_EXEC;
    };
    syscall::set_strace(unikit_kernel::boot::command_line().has_option("unikit.strace"));
    fd::set_console_tty(unikit_kernel::boot::command_line().has_option("unikit.tty"));
    // Before anything reads the initrd: the program may need low RAM.
    unikit_kernel::boot::free_low_memory();
    let path = path::normalize(path);
    procfs::set_exe(&path);
    ARGV.call_once(|| argv.to_vec());
    let start = match loader::load(&path, argv, envp) {
        Ok(s) => s,
        Err(e) => {
            unikit_kernel::kprintln!("unikit: cannot run {e}");
            return EXIT_CANNOT_EXEC;
        }
    };
    fd::init_std();
    start_network();
    unikit_kernel::user::bind(syscall::handle, syscall::fault, syscall::on_return);
    let regs = unikit_kernel::user::UserRegs { rip: start.entry, rsp: start.sp, rflags: 0x202, ..Default::default() };
    unikit_kernel::user::enter(&regs, unikit_kernel::user::UserCpuState::initial())
}
