//! Linux binary compatibility: loads an x86_64 Linux ELF program from the
//! VFS and serves its system calls with unikit's own kernel, VFS and
//! TCP/IP stack.
#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::String;

/// Runs the program at `argv[0]` (a path in the VFS) with `argv` and
/// `envp`, and returns its exit status.
pub fn exec(argv: &[String], envp: &[String]) -> i32 {
    let _ = (argv, envp);
    unikit_kernel::kprintln!("unikit: the Linux system-call layer is not there yet");
    127
}
