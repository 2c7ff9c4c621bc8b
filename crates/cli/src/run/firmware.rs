//! The QEMU test beds of the firmware-booted platforms (vmware, hyperv):
//! QEMU shaped like the hypervisor, booting the image's own disk through
//! its firmware and our loaders. The shape is each platform's argv; the
//! run is this one runner.
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::supervisor::{self, Outcome, Runner, Verdict};
use crate::devices::{Devices, Net};
use crate::platform::QEMU;

/// OVMF as one file (code and variables), for `-bios` (Debian `ovmf`).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// The least memory OVMF boots a disk in (with 32 MiB it stops at "No
/// bootable option").
const OVMF_MIN_MEMORY: u64 = 40 << 20;

/// Refuses an EFI test bed that cannot boot: OVMF missing, or too little
/// memory for it. `what` names the choice, `instead` the BIOS way.
pub fn check_ovmf(memory: crate::memory::Memory, what: &str, instead: &str) -> Result<()> {
    if !Path::new(OVMF).is_file() {
        return Err(crate::error::hinted(format!("{what}: {OVMF} not found"), "install it with: apt-get install ovmf"));
    }
    if memory.bytes() < OVMF_MIN_MEMORY {
        return Err(crate::error::hinted(
            format!("{what} needs at least {} MiB of guest memory (-m {memory} given)", OVMF_MIN_MEMORY >> 20),
            format!("use -m {}M, or {instead}", OVMF_MIN_MEMORY >> 20),
        ));
    }
    Ok(())
}

pub struct Testbed<'a> {
    qemu: &'a Path,
    argv: Vec<OsString>,
    devices: &'a Devices,
    pid: u32,
    /// The line our BIOS or UEFI loader printed before it gave up.
    loader_failed: Arc<Mutex<Option<String>>>,
}

impl<'a> Testbed<'a> {
    pub fn new(qemu: &'a Path, argv: Vec<OsString>, devices: &'a Devices) -> Self {
        Testbed { qemu, argv, devices, pid: 0, loader_failed: Default::default() }
    }

    fn loader_verdict(&self) -> Option<Verdict> {
        let line = self.loader_failed.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        Some(Verdict {
            code: crate::error::EXIT_TOOL_FAILURE,
            lines: vec![format!("error: the boot loader on the disk stopped: {line}")],
        })
    }
}

/// Passes the console through and watches for our loaders' failure line
/// (`unikit-boot: ...`): the BIOS loader can only halt after it, so the
/// run would never end. On that line QEMU is stopped.
struct LoaderWatch<R> {
    inner: R,
    line: Vec<u8>,
    pid: u32,
    seen: Arc<Mutex<Option<String>>>,
}

const LOADER_PREFIX: &[u8] = b"unikit-boot: ";

impl<R: std::io::Read> std::io::Read for LoaderWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b != b'\n' {
                // Firmware screen escapes precede the line: keep only its tail.
                if self.line.len() < 512 {
                    self.line.push(b);
                }
                continue;
            }
            if let Some(at) = self.line.windows(LOADER_PREFIX.len()).position(|w| w == LOADER_PREFIX) {
                let text = String::from_utf8_lossy(&self.line[at..]).trim_end().to_string();
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.is_none() {
                    *seen = Some(text);
                    supervisor::stop_child(self.pid);
                }
            }
            self.line.clear();
        }
        Ok(n)
    }
}

impl Runner for Testbed<'_> {
    fn vmm(&self) -> String {
        QEMU.to_string()
    }

    fn command(&mut self) -> Result<Command> {
        let mut c = Command::new(self.qemu);
        c.args(&self.argv).stdin(Stdio::null());
        Ok(c)
    }

    fn started(&mut self, pid: u32) {
        self.pid = pid;
        if matches!(self.devices.net, Some(Net::User)) && !self.devices.publish.is_empty() {
            let ports = self.devices.publish.iter().map(|&(h, _)| h).collect();
            std::thread::spawn(move || super::qemu::hostfwd_backlog::widen(pid, ports));
        }
    }

    fn console(&mut self, raw: Box<dyn std::io::Read>) -> Box<dyn std::io::Read> {
        Box::new(LoaderWatch { inner: raw, line: Vec::new(), pid: self.pid, seen: self.loader_failed.clone() })
    }

    fn killed(&mut self, sig: i32) -> Verdict {
        self.loader_verdict().unwrap_or_else(|| supervisor::killed(QEMU, sig))
    }

    fn unmarked(&mut self, o: &Outcome) -> Verdict {
        self.loader_verdict().unwrap_or_else(|| super::qemu::unmarked(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loader_failure_line_is_caught_through_firmware_escapes() {
        use std::io::Read;
        let console = b"\x1b[2J\x1b[01;01HBdsDxe: starting\r\nok\n\x1b[0munikit-boot: disk read failed\r\nmore\n";
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        // pid 0: nothing to stop (stop_child ignores it).
        let mut w = LoaderWatch { inner: &console[..], line: Vec::new(), pid: 0, seen: seen.clone() };
        let mut out = Vec::new();
        w.read_to_end(&mut out).unwrap();
        assert_eq!(out, console, "the console passes through unchanged");
        assert_eq!(seen.lock().unwrap().as_deref(), Some("unikit-boot: disk read failed"));
    }
}
