//! `unikit run --plat xen`: boot the image as a Xen guest with `xl`.
//!
//! - On a Xen dom0 (`xl` on PATH and `/proc/xen/capabilities` says
//!   `control_d`): write an xl config (config.rs) and run
//!   `xl create -F -c CFG` (-F: xl stays in the foreground and reports how
//!   the domain shut down; -c: the guest console on its stdout).
//! - `--xen-testbed`: the same inside a real Xen booted by QEMU under TCG
//!   (testbed.rs), for hosts that are not a dom0.
//!
//! Either way the run is a `supervisor::Runner` like every other platform
//! (spawn, signals, the exit-marker filter and backtrace annotator, the
//! verdict), and the exit code is the one the guest reports in its marker.
//! What is Xen's own: Ctrl-C destroys the domain (xl would leave it), the
//! test bed's serial line is demultiplexed (demux.rs) before the console
//! filter, and the verdict also reads dom0's end line, xl's log, the bed's
//! watchdog and Xen's crash dump (crash.rs).

mod config;
mod crash;
mod demux;
mod testbed;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

pub use config::GuestType;
use config::{Disk, DomainConfig, Vif};

use super::supervisor::{self, End, OnSignal, RunDir, Runner};
use crate::console::GuestExit;
use crate::error::EXIT_TOOL_FAILURE;
use crate::memory::Memory;
use crate::symbols::Annotator;
pub use crate::xenhost::{Mode, host_mode};

/// The guest's address behind `-p` in the test bed (dom0's bridge is .1).
pub const TESTBED_GUEST_IP: &str = testbed::GUEST_IP;

/// The xen platform's side of `unikit run`: decided before anything is
/// built; -p and --ip become the guest's vif.
pub struct Plan {
    mode: Mode,
    guest_type: GuestType,
    publish: Vec<(u16, u16)>,
    net: bool,
}

impl Plan {
    pub fn new(opts: &super::Options, devices: &mut crate::devices::Devices) -> Result<Plan> {
        let mode = host_mode(opts.xen_testbed)?;
        if devices.net.is_some() {
            return Err(crate::error::hinted(
                "--net does not apply to xen: the guest's network interface is a Xen vif on the bridge xenbr0",
                "use -p HOST:GUEST with --xen-testbed, or --ip ADDR/PREFIX[:GW] on a dom0 whose bridge xenbr0 reaches that network",
            ));
        }
        let mut publish = Vec::new();
        crate::devices::check_publish_once(&devices.publish)?;
        crate::devices::check_publish_free(&devices.publish)?;
        if !devices.publish.is_empty() {
            if mode != Mode::Testbed {
                return Err(crate::error::hinted(
                    "-p is not available on a Xen dom0: the guest sits on the bridge xenbr0, not behind a user-mode network",
                    "give it an address with --ip ADDR/PREFIX[:GW] and reach it there, or use --xen-testbed, where -p works",
                ));
            }
            match devices.ip.as_deref() {
                None => devices.ip = Some(TESTBED_GUEST_IP.into()),
                Some(TESTBED_GUEST_IP) => {}
                Some(other) => {
                    anyhow::bail!(
                        "--ip {other}: with -p in the Xen test bed the guest is {TESTBED_GUEST_IP} (leave --ip out)"
                    )
                }
            }
            publish = std::mem::take(&mut devices.publish);
        }
        let net = devices.ip.is_some();
        devices.check()?;
        Ok(Plan { mode, guest_type: opts.xen_type.unwrap_or(GuestType::Pv), publish, net })
    }
}

impl super::Plan for Plan {
    fn boot(self: Box<Self>, run: &super::Boot, annotator: &mut Annotator) -> Result<u8> {
        super::check_memory(run.image, run.memory)?;
        let cfg = RunConfig {
            image: run.image,
            name: run.name,
            memory: run.memory,
            cmdline: run.cmdline,
            guest_type: self.guest_type,
            rootfs: run.initrd,
            publish: &self.publish,
            net: self.net,
            disks: &run.devices.disks,
        };
        self::run(&self.mode, &cfg, annotator)
    }
}

/// The reaper's side (`unikit __reap-xl XL DOMAIN`): if the run dies,
/// destroy its domain (which ends the orphaned `xl create` too).
pub fn reap(xl: &Path, domain: &str) -> Result<()> {
    if !domain.starts_with("unikit-") {
        anyhow::bail!("__reap-xl: {domain} is not a unikit run's domain");
    }
    if super::reaper::run_died() {
        let _ = Command::new(xl).args(["destroy", domain]).stdin(Stdio::null()).status();
    }
    Ok(())
}

/// One guest to run.
pub struct RunConfig<'a> {
    pub image: &'a Path,
    /// The manifest's name (the domain is named after it).
    pub name: &'a str,
    pub memory: Memory,
    pub cmdline: &'a str,
    pub guest_type: GuestType,
    pub rootfs: Option<&'a Path>,
    pub publish: &'a [(u16, u16)],
    /// Give the guest a network interface (on bridge xenbr0).
    pub net: bool,
    pub disks: &'a [PathBuf],
}

/// Boot `cfg` the way `mode` says; returns our exit code.
pub fn run(mode: &Mode, cfg: &RunConfig, annotator: &mut Annotator) -> Result<u8> {
    let (mib, rounded) = config::memory_mib(cfg.memory)?;
    if rounded {
        crate::error::warn(format!("xl sizes memory in whole MiB: -m {} is rounded up to {mib}M", cfg.memory));
    }
    let pid = std::process::id();
    let name = config::domain_name(cfg.name, pid);
    let mac = supervisor::guest_mac(pid);
    match mode {
        Mode::Testbed => testbed::run(&testbed::Config { guest: cfg, name: &name, memory_mib: mib, mac }, annotator),
        Mode::Dom0 { xl } => {
            let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
            let dc = DomainConfig {
                name,
                guest_type: cfg.guest_type,
                kernel: abs(cfg.image),
                ramdisk: cfg.rootfs.map(abs),
                memory_mib: mib,
                cmdline: cfg.cmdline.to_string(),
                // The host's own bridge and libxl's stock hotplug scripts.
                vifs: if cfg.net { vec![Vif { mac, bridge: "xenbr0".into(), script: None }] } else { Vec::new() },
                disks: cfg.disks.iter().map(|d| Disk { target: abs(d), script: None }).collect(),
            };
            supervisor::run(&mut Dom0 { xl, dc: &dc, run_dir: RunDir::create("xen")?, reaper: None }, annotator)
        }
    }
}

/// What `unikit xen-testbed` boots.
pub enum DevKernel<'a> {
    /// A PV kernel file (an ELF with Xen notes, or a Linux bzImage).
    File(&'a Path),
    /// The bed's own Linux kernel, with a busybox initramfs whose /init
    /// prints its command line and reports exit code 0 with unikit's exit
    /// marker: checks the bed without any unikit image.
    Linux,
}

/// /init of the Linux domU of `unikit xen-testbed --linux`.
const LINUX_DOMU_INIT: &str = "#!/bin/busybox sh\n\
/bin/busybox mkdir -p /proc /sys\n\
/bin/busybox mount -t proc proc /proc\n\
/bin/busybox mount -t sysfs sysfs /sys\n\
echo \"Linux PV domU: $(/bin/busybox cat /proc/cmdline)\"\n\
echo \"xen devices: $(/bin/busybox ls /sys/bus/xen/devices | /bin/busybox tr '\\n' ' ')\"\n\
printf '\\033_unikit:exit=0\\033\\\\\\n'\n\
/bin/busybox poweroff -f\n";

/// `unikit xen-testbed` (hidden, for development): boot a PV kernel in the
/// test bed with a verbatim command line, without a project or a build.
pub fn boot_file(
    kernel: DevKernel,
    ramdisk: Option<&Path>,
    memory: Memory,
    cmdline: &str,
    publish: &[(u16, u16)],
    disks: &[PathBuf],
    guest_type: GuestType,
) -> Result<u8> {
    for d in disks {
        if !d.is_file() {
            anyhow::bail!("--disk {}: not a regular file", d.display());
        }
    }
    testbed::check_host()?;
    let mut _linux_rd = None;
    let (image, ramdisk, name) = match kernel {
        DevKernel::File(k) => {
            if !k.is_file() {
                anyhow::bail!("{}: no such file", k.display());
            }
            (
                k.to_path_buf(),
                ramdisk.map(Path::to_path_buf),
                k.file_name().and_then(|n| n.to_str()).unwrap_or("kernel").to_string(),
            )
        }
        DevKernel::Linux => {
            if ramdisk.is_some() {
                anyhow::bail!("--linux brings its own ramdisk (busybox from the bed)");
            }
            let bed = testbed::prepare()?;
            // The bed's base initramfs has /bin/busybox; add an /init.
            let mut data = std::fs::read(&bed.base_initrd)
                .with_context(|| format!("cannot read {}", bed.base_initrd.display()))?;
            let mut a = crate::cpio::Archive::new();
            a.file("init", 0o755, LINUX_DOMU_INIT.as_bytes())?;
            data.extend(a.finish()?);
            let rd = std::env::temp_dir().join(format!("unikit-xen-linux-{}.cpio", std::process::id()));
            std::fs::write(&rd, data).with_context(|| format!("cannot write {}", rd.display()))?;
            _linux_rd = Some(TempFile(rd.clone()));
            (bed.dom0_kernel, Some(rd), "linux".to_string())
        }
    };
    let cfg = RunConfig {
        image: &image,
        name: &name,
        memory,
        cmdline,
        guest_type,
        rootfs: ramdisk.as_deref(),
        publish,
        net: !publish.is_empty(),
        disks,
    };
    run(&Mode::Testbed, &cfg, &mut Annotator::new(None))
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How a run ended, from every source that can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub marker: Option<GuestExit>,
    /// dom0's end line (the test bed), or what xl said (dom0 mode).
    pub end: Option<demux::End>,
    /// The guest console started.
    pub begun: bool,
    /// How the child (QEMU or xl) ended.
    pub exit: End,
    /// (limit in seconds, whether it fired after the guest ended).
    pub timed_out: Option<(u64, bool)>,
    pub interrupted: Option<i32>,
    /// What ran: "QEMU" (the test bed) or "xl".
    pub runner: &'static str,
}

/// Our exit code, the lines for stderr, and whether the run failed in a way
/// worth showing the bed's own messages for.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub code: u8,
    pub lines: Vec<String>,
    pub failed: bool,
}

impl From<Verdict> for supervisor::Verdict {
    fn from(v: Verdict) -> supervisor::Verdict {
        supervisor::Verdict { code: v.code, lines: v.lines }
    }
}

/// Xen's shutdown reason codes (xen/include/public/sched.h SHUTDOWN_*).
fn shutdown_reason(code: &str) -> Option<&'static str> {
    Some(match code {
        "0" => "the domain powered off",
        "1" => "the domain rebooted, which ends the run (on_reboot = \"destroy\")",
        "2" => "the domain suspended",
        "3" => "the domain crashed",
        "4" => "Xen's watchdog for the domain fired",
        "5" => "the domain asked for a soft reset",
        _ => return None,
    })
}

pub fn verdict(o: &Outcome) -> Verdict {
    if let Some(m) = &o.marker {
        let supervisor::Verdict { code, mut lines } = supervisor::marked(m);
        if let Some((secs, true)) = o.timed_out {
            lines.push(format!("unikit: warning: the Xen test bed did not power off within {secs} s after the guest ended; it was stopped"));
        }
        return Verdict { code, lines, failed: false };
    }
    let fail = |code: u8, line: String| Verdict { code, lines: vec![line], failed: true };
    if let Some(sig) = o.interrupted {
        return fail(
            (128 + sig).clamp(0, 255) as u8,
            format!("error: interrupted ({}); the guest was stopped", super::signal_name(sig)),
        );
    }
    match o.timed_out {
        Some((secs, false)) => {
            return fail(
                EXIT_TOOL_FAILURE,
                format!(
                    "error: the Xen test bed did not start the guest within {secs} s (set {}=SECONDS to wait longer, 0 for no limit)",
                    testbed::TIMEOUT_ENV
                ),
            );
        }
        Some((secs, true)) => {
            return fail(
                EXIT_TOOL_FAILURE,
                format!(
                    "error: guest stopped without reporting an exit code, and the test bed did not power off within {secs} s"
                ),
            );
        }
        None => {}
    }
    if let Some(end) = &o.end {
        if end.xl == "setup" {
            return fail(
                EXIT_TOOL_FAILURE,
                "error: the test bed's dom0 could not start Xen's toolstack, so the guest never ran".into(),
            );
        }
        let why = match shutdown_reason(&end.shutdown) {
            Some(r) => r.to_string(),
            None if end.xl != "0" => {
                format!("`xl create` failed with exit status {}: the domain was not built or xl lost it", end.xl)
            }
            None => "xl reported no shutdown reason".to_string(),
        };
        return fail(EXIT_TOOL_FAILURE, format!("error: guest stopped without reporting an exit code ({why})"));
    }
    match o.exit {
        End::Signaled(sig) => {
            let v = supervisor::killed(o.runner, sig);
            Verdict { code: v.code, lines: v.lines, failed: true }
        }
        End::Exited(c) if o.begun => fail(
            EXIT_TOOL_FAILURE,
            format!(
                "error: the test bed stopped while the guest ran, without dom0's end line ({} exit status {c})",
                o.runner
            ),
        ),
        End::Exited(c) => fail(
            EXIT_TOOL_FAILURE,
            format!(
                "error: the test bed stopped before the guest started ({} exit status {c}; Xen or dom0 failed to boot)",
                o.runner
            ),
        ),
    }
}

/// A domain that crashed without the guest's exit marker: when Xen's
/// console (`xen_log`, read only then) has the crash dump, it becomes the
/// report (see crash.rs), with the exit code the guest would have given.
fn explain_crash(o: &Outcome, xen_log: impl FnOnce() -> Vec<String>, annotator: &Annotator, v: &mut Verdict) {
    if o.marker.is_some() || o.end.as_ref().is_none_or(|e| e.shutdown != "3") {
        return;
    }
    if let Some(c) = crash::parse(&xen_log()) {
        v.lines = c.report(&|a| annotator.name(a));
        v.code = 102; // the kernel's EXIT_EXCEPTION
    }
}

/// `Domain 1 has shut down, reason code 3 0x3` in xl's -F output.
pub fn xl_shutdown_code(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let rest = l.split("has shut down, reason code ").nth(1)?;
        let code: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        (!code.is_empty()).then_some(code)
    })
}

/// `xl create -F -c` on this dom0, with `xl destroy` on Ctrl-C: a runner
/// of the common supervisor.
struct Dom0<'a> {
    xl: &'a Path,
    dc: &'a DomainConfig,
    run_dir: RunDir,
    /// Destroys the domain if we are killed outright (xl, started with a
    /// parent-death signal, goes at once but would leave the domain).
    reaper: Option<super::reaper::Reaper>,
}

impl Dom0<'_> {
    fn log_path(&self) -> PathBuf {
        self.run_dir.path().join("xl.log")
    }
}

impl Runner for Dom0<'_> {
    fn vmm(&self) -> String {
        self.xl.display().to_string()
    }

    fn command(&mut self) -> Result<Command> {
        let cfg_path = self.run_dir.path().join("guest.cfg");
        std::fs::write(&cfg_path, self.dc.render()?).with_context(|| format!("cannot write {}", cfg_path.display()))?;
        let log_path = self.log_path();
        let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        self.reaper = super::reaper::Reaper::spawn(&["__reap-xl".as_ref(), self.xl.as_os_str(), self.dc.name.as_ref()]);
        let mut cmd = Command::new(self.xl);
        cmd.args(["create", "-F", "-c"])
            .arg(&cfg_path)
            // A pipe that stays open and is not a terminal: xenconsole neither
            // sees end-of-input nor puts the user's terminal in raw mode.
            .stdin(Stdio::piped())
            .stderr(log);
        Ok(cmd)
    }

    /// xl's messages go to xl.log (read for the shutdown reason).
    fn capture_stderr(&self) -> bool {
        false
    }

    /// xl would leave the domain running: destroy it, which ends the
    /// console and xl.
    fn on_signal(&mut self) -> OnSignal {
        let (xl, name) = (self.xl.to_path_buf(), self.dc.name.clone());
        OnSignal::Stop(Box::new(move || {
            let _ = Command::new(&xl)
                .args(["destroy", &name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }))
    }

    fn unmarked(&mut self, o: &supervisor::Outcome) -> supervisor::Verdict {
        verdict(&self.outcome(o, &std::fs::read_to_string(self.log_path()).unwrap_or_default())).into()
    }

    fn decide(&mut self, o: &supervisor::Outcome, annotator: &Annotator) -> supervisor::Verdict {
        let xl_log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let outcome = self.outcome(o, &xl_log);
        let mut v = verdict(&outcome);
        // Xen's console ring (crash dumps included) is what `xl dmesg` prints.
        let xl = self.xl;
        let dmesg = || {
            let out = Command::new(xl).arg("dmesg").stdin(Stdio::null()).stderr(Stdio::null()).output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect()).unwrap_or_default()
        };
        explain_crash(&outcome, dmesg, annotator, &mut v);
        if v.failed && outcome.interrupted.is_none() {
            self.run_dir.keep();
            let lines: Vec<&str> = xl_log.lines().filter(|l| !l.trim().is_empty()).collect();
            if !lines.is_empty() {
                v.lines.push("xl's messages:".into());
                v.lines.extend(lines[lines.len().saturating_sub(20)..].iter().map(|l| format!("  {l}")));
            }
            v.lines.push(format!("unikit: the xl config and log are kept in {}", self.run_dir.path().display()));
        }
        v.into()
    }
}

impl Dom0<'_> {
    /// The common outcome, with what xl said: its exit status and, from
    /// its log, Xen's shutdown reason.
    fn outcome(&self, o: &supervisor::Outcome, xl_log: &str) -> Outcome {
        Outcome {
            marker: o.marker.clone(),
            end: match o.end {
                End::Exited(c) => Some(demux::End {
                    xl: c.to_string(),
                    shutdown: xl_shutdown_code(xl_log).unwrap_or_else(|| "unknown".into()),
                }),
                End::Signaled(_) => None,
            },
            begun: true,
            exit: o.end,
            timed_out: None,
            interrupted: o.interrupted,
            runner: "xl",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            marker: None,
            end: None,
            begun: false,
            exit: End::Exited(0),
            timed_out: None,
            interrupted: None,
            runner: "QEMU",
        }
    }

    fn end(xl: &str, shutdown: &str) -> Option<demux::End> {
        Some(demux::End { xl: xl.into(), shutdown: shutdown.into() })
    }

    #[test]
    fn marker_decides() {
        let mut o = outcome();
        o.marker = Some(GuestExit { code: 3, reason: None });
        o.end = end("0", "0");
        assert_eq!(verdict(&o), Verdict { code: 3, lines: vec![], failed: false });
        o.marker = Some(GuestExit { code: 101, reason: Some("panic".into()) });
        o.end = end("0", "3");
        assert_eq!(
            verdict(&o),
            Verdict { code: 101, lines: vec!["unikit: guest panic (exit code 101)".into()], failed: false }
        );
        o.marker = Some(GuestExit { code: 258, reason: None });
        o.timed_out = Some((300, true));
        let v = verdict(&o);
        assert_eq!(v.code, 2);
        assert!(v.lines[0].contains("did not power off within 300 s"), "{v:?}");
    }

    #[test]
    fn without_a_marker_say_what_happened() {
        let msg = |o: &Outcome| {
            let v = verdict(o);
            assert!(v.failed);
            assert_eq!(v.lines.len(), 1);
            assert!(v.lines[0].starts_with("error: "), "{v:?}");
            (v.code, v.lines[0].clone())
        };
        let mut o = outcome();
        o.begun = true;
        o.end = end("0", "3");
        assert_eq!(msg(&o), (125, "error: guest stopped without reporting an exit code (the domain crashed)".into()));
        o.end = end("0", "0");
        assert!(msg(&o).1.contains("(the domain powered off)"));
        o.end = end("0", "1");
        assert!(msg(&o).1.contains("rebooted"));
        o.end = end("3", "unknown");
        assert!(msg(&o).1.contains("`xl create` failed with exit status 3"), "{}", msg(&o).1);
        o.end = end("setup", "none");
        assert!(msg(&o).1.contains("could not start Xen's toolstack"));
        o.end = None;
        o.exit = End::Exited(0);
        assert!(msg(&o).1.contains("while the guest ran"));
        o.begun = false;
        assert!(msg(&o).1.contains("before the guest started (QEMU exit status 0"));
        o.exit = End::Signaled(9);
        assert_eq!(msg(&o), (137, "error: QEMU was killed by signal 9, SIGKILL".into()));
        o.timed_out = Some((300, false));
        let (c, l) = msg(&o);
        assert_eq!(c, 125);
        assert!(l.contains("did not start the guest within 300 s") && l.contains("UNIKIT_XEN_TESTBED_TIMEOUT"), "{l}");
        o.interrupted = Some(2);
        assert_eq!(msg(&o), (130, "error: interrupted (signal 2, SIGINT); the guest was stopped".into()));
    }

    #[test]
    fn xl_log_reason() {
        let log = "Parsing config from /unikit/guest.cfg\nWaiting for domain guest (domid 1) to die [pid 128]\n\
                   Domain 1 has shut down, reason code 3 0x3\nAction for shutdown reason code 3 is destroy\n";
        assert_eq!(xl_shutdown_code(log).as_deref(), Some("3"));
        assert_eq!(xl_shutdown_code("libxl: error: nothing"), None);
    }

    #[test]
    fn no_dom0_here_is_one_error_with_a_hint() {
        if crate::xenhost::is_dom0() {
            return;
        }
        let e = host_mode(false).unwrap_err();
        let h = e.chain().find_map(|c| c.downcast_ref::<crate::error::Hinted>()).expect("a hint");
        assert!(e.to_string().contains("needs a Xen dom0"), "{e}");
        assert!(h.hint.contains("--xen-testbed"), "{}", h.hint);
    }
}
