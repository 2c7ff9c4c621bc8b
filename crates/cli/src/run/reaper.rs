//! Cleanup that must happen even when `unikit run` is SIGKILLed: a small
//! `unikit __reap-*` process started beside the VMM, holding the read end
//! of a pipe whose only writer is the run. A run that ends normally writes
//! one byte (disarm) and closes it; a run that dies closes it without a
//! byte, and the reaper then does the cleanup (delete the run's network
//! namespace, `xl destroy` its Xen domain). The reaper has its own process
//! group, so a Ctrl-C to the terminal's group does not end it before its
//! work, and no parent-death signal.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// The run's side: disarms the reaper when dropped.
pub struct Reaper(Child);

impl Reaper {
    /// Starts `unikit <args...>` as a reaper; `None` if it cannot be started
    /// (then a killed run leaves its cleanup to the next run, where there is one).
    pub fn spawn(args: &[&std::ffi::OsStr]) -> Option<Reaper> {
        Command::new("/proc/self/exe")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok()
            .map(Reaper)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut pipe) = self.0.stdin.take() {
            let _ = pipe.write_all(b"x");
        }
        let _ = self.0.wait();
    }
}

/// The reaper's side: blocks until the run is over; `true` when it died
/// without disarming us (the cleanup is ours to do).
pub fn run_died() -> bool {
    let mut b = [0u8; 1];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}
