//! The Xen test bed (`unikit run --plat xen --xen-testbed`): a real Xen 4.17
//! with a Debian dom0, both from Debian's packages, booted by QEMU under
//! TCG; dom0 boots the unikit image as a PV domU with `xl create -c`.
//!
//! Shape of a run:
//! - `crate::testbed::prepare` (the host tooling, its own module): the
//!   cached Xen ELF, dom0 kernel and dom0's base initramfs.
//! - per run: a second cpio archive appended to it (the kernel unpacks
//!   concatenated archives in order) with dom0's /init (dom0-init.sh), the
//!   hotplug scripts, the xl config and the image.
//! - QEMU: SeaBIOS (qboot cannot load a multiboot kernel), `-accel tcg`
//!   (Xen dies under this host's kvm_pvm), `-no-reboot`; `-kernel xen.elf`
//!   and `-initrd "vmlinuz ARGS,initrd"` become the multiboot modules. The
//!   serial port carries everything; demux.rs picks the guest console out.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::config::{Disk, DomainConfig, Vif};
use super::demux::{Demux, Out};
use super::{Outcome, RunConfig, Verdict};
use crate::cpio::Archive;
use crate::error::hinted;
use crate::run::supervisor::{self, RunDir, Runner};
use crate::symbols::Annotator;
pub use crate::testbed::{Bed, check_host, prepare};

/// The QEMU machine: 2 GiB, 2 vCPUs; dom0 gets a fixed 512 MiB (no
/// ballooning), which leaves this much for the guest.
const HOST_MEM: &str = "2G";
const DOM0_MEM: &str = "512M";
pub const MAX_GUEST_MIB: u64 = 1280;
/// Xen: serial console on COM1; its own messages from warnings up (boot
/// chatter is hidden anyway), every message about guests (crashes, and a
/// domU's console_io writes, which a guest uses before its console ring).
fn xen_args() -> String {
    format!("console=com1 com1=115200,8n1 dom0_mem={DOM0_MEM},max:{DOM0_MEM} loglvl=warning guest_loglvl=all")
}
const DOM0_ARGS: &str = "console=hvc0 quiet loglevel=1";

/// What dom0 is told about the run (dom0-init.sh reads /unikit/run.env).
pub const GUEST_IP: &str = "10.0.0.2/24:10.0.0.1";
const INIT: &str = include_str!("dom0-init.sh");
const VIF_SCRIPT: &str = include_str!("vif-hotplug.sh");
const BLOCK_SCRIPT: &str = include_str!("block-hotplug.sh");
const VIF_SCRIPT_PATH: &str = "/etc/xen/scripts/unikit-vif";
const BLOCK_SCRIPT_PATH: &str = "/etc/xen/scripts/unikit-block";

/// Default limit, in seconds, for the bed to start the guest and to power
/// off after it (not for the guest itself).
const DEFAULT_TIMEOUT: u64 = 300;
pub const TIMEOUT_ENV: &str = "UNIKIT_XEN_TESTBED_TIMEOUT";
pub const VERBOSE_ENV: &str = "UNIKIT_XEN_TESTBED_VERBOSE";

/// What one bed run needs besides the cached bed: the guest (as for a
/// dom0), its domain name, whole MiB and MAC.
pub struct Config<'a> {
    pub guest: &'a RunConfig<'a>,
    pub name: &'a str,
    pub memory_mib: u64,
    pub mac: String,
}

/// The guest's xl config inside the bed.
pub fn domain_config(cfg: &Config) -> DomainConfig {
    DomainConfig {
        name: cfg.name.to_string(),
        guest_type: cfg.guest.guest_type,
        kernel: "/unikit/kernel".into(),
        ramdisk: cfg.guest.rootfs.map(|_| "/unikit/rootfs.cpio".into()),
        memory_mib: cfg.memory_mib,
        cmdline: cfg.guest.cmdline.to_string(),
        vifs: if cfg.guest.net || !cfg.guest.publish.is_empty() {
            vec![Vif { mac: cfg.mac.clone(), bridge: "xenbr0".into(), script: Some(VIF_SCRIPT_PATH.into()) }]
        } else {
            Vec::new()
        },
        disks: (0..cfg.guest.disks.len())
            .map(|i| Disk {
                target: format!("/dev/vd{}", (b'a' + i as u8) as char),
                script: Some(BLOCK_SCRIPT_PATH.into()),
            })
            .collect(),
    }
}

/// /unikit/run.env: shell assignments for dom0-init.sh.
pub fn run_env(cfg: &Config) -> String {
    let publish: Vec<String> = cfg.guest.publish.iter().map(|(h, g)| format!("{h}:{g}")).collect();
    let net = cfg.guest.net || !cfg.guest.publish.is_empty();
    format!("UNIKIT_NET={}\nUNIKIT_PUBLISH=\"{}\"\n", u8::from(net), publish.join(" "))
}

/// The per-run archive appended to the base initramfs.
pub fn run_archive(cfg: &Config, xl_cfg: &str) -> Result<Vec<u8>> {
    let image = std::fs::read(cfg.guest.image).with_context(|| format!("cannot read {}", cfg.guest.image.display()))?;
    let mut a = Archive::new();
    a.file("init", 0o755, INIT.as_bytes())?;
    for d in ["etc", "etc/xen", "etc/xen/scripts", "unikit"] {
        a.dir(d, 0o755)?;
    }
    // dom0 has a fixed memory size: xl must not try to balloon it down.
    a.file("etc/xen/xl.conf", 0o644, b"autoballoon=\"off\"\n")?;
    a.file(VIF_SCRIPT_PATH.trim_start_matches('/'), 0o755, VIF_SCRIPT.as_bytes())?;
    a.file(BLOCK_SCRIPT_PATH.trim_start_matches('/'), 0o755, BLOCK_SCRIPT.as_bytes())?;
    a.file("unikit/run.env", 0o644, run_env(cfg).as_bytes())?;
    a.file("unikit/guest.cfg", 0o644, xl_cfg.as_bytes())?;
    a.file("unikit/kernel", 0o755, &image)?;
    if let Some(rd) = cfg.guest.rootfs {
        let data = std::fs::read(rd).with_context(|| format!("cannot read {}", rd.display()))?;
        a.file("unikit/rootfs.cpio", 0o644, &data)?;
    }
    a.finish()
}

/// A path QEMU's multiboot `-initrd` list can carry: modules are separated
/// by `,` and a module's path ends at the first space.
fn module_path(p: &Path) -> Result<String> {
    let s = p.to_str().ok_or_else(|| anyhow!("{}: not UTF-8", p.display()))?;
    if s.contains([',', ' ']) {
        return Err(hinted(
            format!("{s}: QEMU's multiboot module list cannot carry a path with ',' or ' '"),
            "set XDG_CACHE_HOME / TMPDIR to a directory whose path has neither",
        ));
    }
    Ok(s.to_string())
}

/// QEMU's arguments for the bed (without the program name).
pub fn qemu_argv(
    bed: &Bed,
    initrd: &Path,
    publish: &[(u16, u16)],
    net: bool,
    disks: &[PathBuf],
) -> Result<Vec<String>> {
    let mut a: Vec<String> = [
        "-M",
        "pc",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        HOST_MEM,
        "-smp",
        "2",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["-kernel".into(), module_path(&bed.xen)?, "-append".into(), xen_args()]);
    a.extend(["-initrd".into(), format!("{} {DOM0_ARGS},{}", module_path(&bed.dom0_kernel)?, module_path(initrd)?)]);
    if net || !publish.is_empty() {
        // dom0 listens on the host port itself and relays to the guest.
        let mut nd = String::from("user,id=net0");
        for (h, _) in publish {
            nd.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{h}"));
        }
        a.extend(["-netdev".into(), nd, "-device".into(), "virtio-net-pci,netdev=net0".into()]);
    }
    for (i, d) in disks.iter().enumerate() {
        let abs = std::path::absolute(d).unwrap_or_else(|_| d.clone());
        let file = abs.to_str().ok_or_else(|| anyhow!("--disk {}: not UTF-8", d.display()))?.replace(',', ",,");
        a.extend([
            "-drive".into(),
            format!("file={file},if=none,id=disk{i},format=raw"),
            "-device".into(),
            format!("virtio-blk-pci,drive=disk{i}"),
        ]);
    }
    Ok(a)
}

/// Where the run is (for the watchdog).
const PHASE_BOOT: u8 = 0;
const PHASE_GUEST: u8 = 1;
const PHASE_AFTER: u8 = 2;

/// Everything that is not the guest console: kept in a file, its tail in
/// memory, and shown live with UNIKIT_XEN_TESTBED_VERBOSE=1.
struct Noise {
    file: Option<std::fs::File>,
    tail: Vec<u8>,
    live: bool,
}

const TAIL: usize = 16 << 10;

impl Noise {
    fn push(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if let Some(f) = &mut self.file {
            let _ = f.write_all(b);
        }
        if self.live {
            let _ = std::io::stderr().write_all(b);
        }
        self.tail.extend_from_slice(b);
        if self.tail.len() > 2 * TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    fn last_lines(&self, n: usize) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.tail);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect()
    }
}

/// QEMU's serial output as a reader of the guest console only (so that
/// run::stream, the marker filter and the annotator work on it unchanged);
/// the rest goes to `Noise`.
struct GuestConsole<R> {
    inner: R,
    demux: Demux,
    ready: Vec<u8>,
    pos: usize,
    noise: Arc<Mutex<Noise>>,
    phase: Arc<AtomicU8>,
    end: Arc<Mutex<Option<super::demux::End>>>,
    done: bool,
}

impl<R: Read> GuestConsole<R> {
    fn absorb(&mut self, out: Out) {
        if let Ok(mut n) = self.noise.lock() {
            n.push(&out.noise);
        }
        self.ready = out.guest;
        self.pos = 0;
        let phase = match (self.demux.begun(), self.demux.end()) {
            (_, Some(_)) => PHASE_AFTER,
            (true, None) => PHASE_GUEST,
            (false, None) => PHASE_BOOT,
        };
        self.phase.store(phase, Ordering::Relaxed);
        if let (Some(e), Ok(mut slot)) = (self.demux.end(), self.end.lock())
            && slot.is_none()
        {
            *slot = Some(e.clone());
        }
    }
}

impl<R: Read> Read for GuestConsole<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut raw = [0u8; 8192];
        loop {
            if self.pos < self.ready.len() {
                let n = buf.len().min(self.ready.len() - self.pos);
                buf[..n].copy_from_slice(&self.ready[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let mut out = Out::default();
            match self.inner.read(&mut raw) {
                Ok(0) => {
                    self.demux.finish(&mut out);
                    self.done = true;
                }
                Ok(n) => self.demux.feed(&raw[..n], &mut out),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.absorb(out);
        }
    }
}

fn timeout_secs() -> Result<u64> {
    match std::env::var(TIMEOUT_ENV) {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| anyhow!("{TIMEOUT_ENV}={v}: expected a number of seconds (0: no limit)")),
    }
}

pub fn verbose() -> bool {
    std::env::var(VERBOSE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Build the bed's initrd for `cfg`, boot it, and return the exit code.
pub fn run(cfg: &Config, annotator: &mut Annotator) -> Result<u8> {
    supervisor::run(&mut TestBed::new(cfg)?, annotator)
}

/// The bed as a runner of the common supervisor: QEMU's serial line goes
/// through the demux (the guest console to the supervisor, the rest to
/// `Noise`, with QEMU's stderr); a watchdog stops a bed that does not start
/// the guest, or does not power off after it.
struct TestBed<'a> {
    cfg: &'a Config<'a>,
    xl_cfg: String,
    bed: Bed,
    qemu: PathBuf,
    timeout: u64,
    /// The run's folder (initrd, serial log); kept when the run failed.
    run_dir: RunDir,
    noise: Arc<Mutex<Noise>>,
    phase: Arc<AtomicU8>,
    end: Arc<Mutex<Option<super::demux::End>>>,
    exited: Arc<AtomicBool>,
    timed_out: Arc<AtomicU8>,
}

impl<'a> TestBed<'a> {
    fn new(cfg: &'a Config<'a>) -> Result<Self> {
        if cfg.memory_mib > MAX_GUEST_MIB {
            bail!("-m {}M: the Xen test bed has room for at most {MAX_GUEST_MIB} MiB of guest memory", cfg.memory_mib);
        }
        let timeout = timeout_secs()?;
        let xl_cfg = domain_config(cfg).render()?;
        let bed = prepare()?;
        let qemu = crate::platform::find_qemu()?;
        Ok(TestBed {
            cfg,
            xl_cfg,
            bed,
            qemu,
            timeout,
            run_dir: RunDir::create("xen")?,
            noise: Arc::new(Mutex::new(Noise { file: None, tail: Vec::new(), live: verbose() })),
            phase: Arc::new(AtomicU8::new(PHASE_BOOT)),
            end: Arc::new(Mutex::new(None)),
            exited: Arc::new(AtomicBool::new(false)),
            timed_out: Arc::new(AtomicU8::new(u8::MAX)),
        })
    }

    /// The common outcome, with what only the bed knows.
    fn outcome(&self, o: &supervisor::Outcome) -> Outcome {
        Outcome {
            marker: o.marker.clone(),
            end: self.end.lock().ok().and_then(|e| e.clone()),
            begun: self.phase.load(Ordering::Relaxed) != PHASE_BOOT,
            exit: o.end,
            timed_out: match self.timed_out.load(Ordering::Relaxed) {
                PHASE_BOOT => Some((self.timeout, false)),
                PHASE_AFTER => Some((self.timeout, true)),
                _ => None,
            },
            interrupted: o.interrupted,
            runner: "QEMU",
        }
    }
}

impl Runner for TestBed<'_> {
    fn vmm(&self) -> String {
        self.qemu.display().to_string()
    }

    fn command(&mut self) -> Result<Command> {
        let dir = self.run_dir.path().to_path_buf();
        std::fs::write(dir.join("guest.cfg"), &self.xl_cfg)?;
        let initrd = dir.join("initrd.cpio");
        {
            let mut f =
                std::fs::File::create(&initrd).with_context(|| format!("cannot create {}", initrd.display()))?;
            let mut base = std::fs::File::open(&self.bed.base_initrd)
                .with_context(|| format!("cannot read {}", self.bed.base_initrd.display()))?;
            std::io::copy(&mut base, &mut f)?;
            f.write_all(&run_archive(self.cfg, &self.xl_cfg)?)?;
        }
        let argv = qemu_argv(&self.bed, &initrd, self.cfg.guest.publish, self.cfg.guest.net, self.cfg.guest.disks)?;
        if let Ok(mut n) = self.noise.lock() {
            n.file = std::fs::File::create(dir.join("serial-noise.log")).ok();
        }
        if verbose() {
            eprintln!("unikit: test bed packages: {}", self.bed.versions);
        }
        eprintln!(
            "unikit: booting the Xen test bed (Xen 4.17 and a Linux dom0 under QEMU TCG: about 30 s before the guest runs)"
        );
        let mut cmd = Command::new(&self.qemu);
        cmd.args(&argv).stdin(Stdio::null());
        Ok(cmd)
    }

    fn started(&mut self, pid: u32) {
        if !self.cfg.guest.publish.is_empty() {
            // As for the qemu platform: slirp listens with a backlog of 1.
            let ports = self.cfg.guest.publish.iter().map(|&(h, _)| h).collect();
            std::thread::spawn(move || super::super::qemu::hostfwd_backlog::widen(pid, ports));
        }
        if self.timeout > 0 {
            let (secs, phase, exited, timed_out) =
                (self.timeout, self.phase.clone(), self.exited.clone(), self.timed_out.clone());
            std::thread::spawn(move || watchdog(pid, secs, &phase, &exited, &timed_out));
        }
    }

    fn console(&mut self, raw: Box<dyn Read>) -> Box<dyn Read> {
        Box::new(GuestConsole {
            inner: raw,
            demux: Demux::new(),
            ready: Vec::new(),
            pos: 0,
            noise: self.noise.clone(),
            phase: self.phase.clone(),
            end: self.end.clone(),
            done: false,
        })
    }

    /// QEMU's own complaints are noise too (shown on failure).
    fn stderr_to(&mut self) -> Box<dyn Write + Send> {
        Box::new(NoiseWriter(self.noise.clone()))
    }

    fn unmarked(&mut self, o: &supervisor::Outcome) -> supervisor::Verdict {
        super::verdict(&self.outcome(o)).into()
    }

    fn decide(&mut self, o: &supervisor::Outcome, annotator: &Annotator) -> supervisor::Verdict {
        self.exited.store(true, Ordering::Relaxed);
        let outcome = self.outcome(o);
        let mut v: Verdict = super::verdict(&outcome);
        let noise = &self.noise;
        super::explain_crash(
            &outcome,
            || noise.lock().map(|n| n.last_lines(400)).unwrap_or_default(),
            annotator,
            &mut v,
        );
        if v.failed && outcome.interrupted.is_none() {
            self.run_dir.keep();
            // The initrd is large and rebuilt every run: keep only the logs and config.
            let _ = std::fs::remove_file(self.run_dir.path().join("initrd.cpio"));
            if let Ok(n) = self.noise.lock()
                && !n.live
            {
                let tail = n.last_lines(25);
                if !tail.is_empty() {
                    v.lines.push("the test bed's last messages (Xen, dom0, xl):".into());
                    v.lines.extend(tail.iter().map(|l| format!("  {l}")));
                }
            }
            v.lines.push(format!(
                "unikit: the test bed's full log and the xl config are kept in {}",
                self.run_dir.path().display()
            ));
        }
        v.into()
    }
}

/// The writing side of `Noise`, for QEMU's stderr.
struct NoiseWriter(Arc<Mutex<Noise>>);

impl Write for NoiseWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut n) = self.0.lock() {
            n.push(b);
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Kills QEMU when the bed takes longer than `secs` to start the guest, or
/// to power off after it ended; records which (in `timed_out`).
fn watchdog(pid: u32, secs: u64, phase: &AtomicU8, exited: &AtomicBool, timed_out: &AtomicU8) {
    let limit = Duration::from_secs(secs);
    let mut since = Instant::now();
    let mut last = PHASE_BOOT;
    while !exited.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let now = phase.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        }
        if now != PHASE_GUEST && since.elapsed() > limit {
            timed_out.store(now, Ordering::Relaxed);
            kill(pid);
            return;
        }
    }
}

#[allow(unsafe_code)]
fn kill(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on our own child's pid; takes no pointers.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::xen::GuestType;
    fn guest<'a>(publish: &'a [(u16, u16)], disks: &'a [PathBuf]) -> RunConfig<'a> {
        RunConfig {
            image: Path::new("/p/build/hello_xen-x86_64"),
            name: "hello",
            memory: crate::memory::Memory::parse("16M").unwrap(),
            cmdline: "netdev.ip=10.0.0.2/24:10.0.0.1 -- a",
            guest_type: GuestType::Pv,
            rootfs: None,
            publish,
            net: false,
            disks,
        }
    }

    fn cfg<'a>(guest: &'a RunConfig<'a>) -> Config<'a> {
        Config { guest, name: "unikit-hello-1", memory_mib: 16, mac: "06:00:00:00:00:01".into() }
    }

    #[test]
    fn guest_config_and_run_env() {
        let disks = [PathBuf::from("/d/a.img"), PathBuf::from("/d/b.img")];
        let g = guest(&[(8080, 80), (2222, 22)], &disks);
        let c = cfg(&g);
        let text = domain_config(&c).render().unwrap();
        assert!(text.contains("kernel = \"/unikit/kernel\"\n"), "{text}");
        assert!(
            text.contains("vif = [ \"mac=06:00:00:00:00:01,bridge=xenbr0,script=/etc/xen/scripts/unikit-vif\" ]"),
            "{text}"
        );
        assert!(text.contains("script=/etc/xen/scripts/unikit-block,target=/dev/vda\", "), "{text}");
        assert!(
            text.contains("vdev=xvdb,access=rw,script=/etc/xen/scripts/unikit-block,target=/dev/vdb\" ]"),
            "{text}"
        );
        assert_eq!(run_env(&c), "UNIKIT_NET=1\nUNIKIT_PUBLISH=\"8080:80 2222:22\"\n");
        let g = guest(&[], &[]);
        let c = cfg(&g);
        let text = domain_config(&c).render().unwrap();
        assert!(!text.contains("vif") && !text.contains("disk") && !text.contains("ramdisk"), "{text}");
        assert_eq!(run_env(&c), "UNIKIT_NET=0\nUNIKIT_PUBLISH=\"\"\n");
    }

    #[test]
    fn qemu_arguments() {
        let bed = Bed {
            xen: "/c/bed-1/xen.elf".into(),
            dom0_kernel: "/c/bed-1/vmlinuz".into(),
            base_initrd: "/c/bed-1/dom0-base.cpio".into(),
            versions: String::new(),
        };
        let a = qemu_argv(&bed, Path::new("/tmp/r/initrd.cpio"), &[(8080, 80)], false, &[PathBuf::from("/d/x,y.img")])
            .unwrap()
            .join(" ");
        assert!(a.starts_with("-M pc -accel tcg -cpu max -m 2G -smp 2 -nodefaults -no-user-config -display none -no-reboot -serial stdio "), "{a}");
        assert!(!a.contains("-bios"), "SeaBIOS (QEMU's default) loads multiboot kernels, qboot does not: {a}");
        assert!(a.contains(&format!("-kernel /c/bed-1/xen.elf -append {} ", xen_args())), "{a}");
        assert!(a.contains(&format!("-initrd /c/bed-1/vmlinuz {DOM0_ARGS},/tmp/r/initrd.cpio")), "{a}");
        assert!(
            a.contains("-netdev user,id=net0,hostfwd=tcp:127.0.0.1:8080-:8080 -device virtio-net-pci,netdev=net0"),
            "{a}"
        );
        assert!(
            a.contains("-drive file=/d/x,,y.img,if=none,id=disk0,format=raw -device virtio-blk-pci,drive=disk0"),
            "{a}"
        );
        let a = qemu_argv(&bed, Path::new("/tmp/r/initrd.cpio"), &[], false, &[]).unwrap().join(" ");
        assert!(!a.contains("-netdev") && !a.contains("-drive"), "{a}");
        let e = qemu_argv(&bed, Path::new("/tmp/my dir/initrd.cpio"), &[], false, &[]).unwrap_err().to_string();
        assert!(e.contains("cannot carry a path with ',' or ' '"), "{e}");
    }

    #[test]
    fn run_archive_has_the_guest_and_dom0_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img");
        std::fs::write(&img, b"\x7fELF-image").unwrap();
        let mut g = guest(&[], &[]);
        g.image = &img;
        let a = run_archive(&cfg(&g), "name = \"x\"\n").unwrap();
        let s = String::from_utf8_lossy(&a);
        for name in [
            "init\0",
            "etc/xen/xl.conf\0",
            "etc/xen/scripts/unikit-vif\0",
            "etc/xen/scripts/unikit-block\0",
            "unikit/run.env\0",
            "unikit/guest.cfg\0",
            "unikit/kernel\0",
            "TRAILER!!!\0",
        ] {
            assert!(s.contains(name), "{name} missing");
        }
        assert!(s.contains("\x7fELF-image") && s.contains("xl create -F -c /unikit/guest.cfg"));
        g.image = Path::new("/nonexistent/img");
        assert!(run_archive(&cfg(&g), "").is_err());
    }

    #[test]
    fn noise_keeps_a_bounded_tail() {
        let mut n = Noise { file: None, tail: Vec::new(), live: false };
        for i in 0..5000 {
            n.push(format!("line {i}\n").as_bytes());
        }
        assert!(n.tail.len() <= 2 * TAIL);
        assert_eq!(n.last_lines(2), ["line 4998", "line 4999"]);
    }
}
