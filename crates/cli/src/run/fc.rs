//! Booting an image with Firecracker: write its JSON configuration, run
//! `firecracker --no-api --config-file`, stream the serial console and exit
//! with the code of the guest's exit marker.
//!
//! Firecracker facts this relies on (firecracker-microvm/firecracker, v1.17
//! development tree, read from its source):
//! - `--no-api` requires `--config-file`; `--log-path` sends Firecracker's own
//!   log to a file (without it the log goes to stdout, mixed with the guest
//!   serial console); errors are also printed on stderr
//!   (src/firecracker/src/main.rs).
//! - The config file's top-level keys are kebab-case `boot-source`,
//!   `machine-config`, `drives`, `network-interfaces` (src/vmm/src/resources.rs
//!   `VmmConfig`, `#[serde(rename_all = "kebab-case")]`; example in
//!   tests/framework/vm_config.json).
//! - Field names, types and required fields follow
//!   src/firecracker/swagger/firecracker.yaml: `BootSource` {kernel_image_path
//!   (required), boot_args, initrd_path}; `MachineConfiguration` {vcpu_count
//!   (required, 1..=32, "1 or an even number"), mem_size_mib (required,
//!   integer MiB), smt}; `Drive` {drive_id, is_root_device (required),
//!   path_on_host, is_read_only}; `NetworkInterface` {iface_id, host_dev_name
//!   (required), guest_mac}. Every struct is `deny_unknown_fields`
//!   (src/vmm/src/vmm_config/{boot_source,machine_config,drive,net}.rs), so
//!   nothing else may appear.
//! - Firecracker appends `pci=off` and one `virtio_mmio.device=4K@<base>:<irq>`
//!   per device to the boot-args part before ` -- ` (linux-loader's
//!   `Cmdline::try_from` splits boot args and init args at the first ` -- `;
//!   src/vmm/src/builder.rs inserts them).
//! - The serial console (16550 on ttyS0) is Firecracker's stdout; stdin is
//!   only read when it is a terminal or a FIFO (src/vmm/src/devices/legacy/serial.rs).
//! - A guest reset through the i8042 (`outb 0x64, 0xfe`) ends Firecracker
//!   with exit status 0 (`FcExitCode::Ok`, src/vmm/src/lib.rs); 152 is a bad
//!   configuration, 153 bad arguments, 1 a generic error.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::memory::Memory;
use crate::platform::FIRECRACKER;

use super::netns::Netns;
use super::supervisor::{self, End, Outcome, RunDir, Runner, Verdict};

/// Everything one Firecracker run needs.
pub struct Config<'a> {
    pub image: &'a Path,
    pub memory: Memory,
    pub cpus: u8,
    pub cmdline: &'a str,
    pub initrd: Option<&'a Path>,
    pub disks: &'a [PathBuf],
    /// Host tap interface for the guest's virtio-net device.
    pub tap: Option<&'a str>,
    pub mac: String,
}

/// The JSON document of `--config-file` (only the parts unikit uses).
#[derive(Serialize, Debug)]
pub struct VmConfig {
    #[serde(rename = "boot-source")]
    pub boot_source: BootSource,
    #[serde(rename = "machine-config")]
    pub machine_config: MachineConfig,
    pub drives: Vec<Drive>,
    #[serde(rename = "network-interfaces")]
    pub network_interfaces: Vec<NetworkInterface>,
}

#[derive(Serialize, Debug)]
pub struct BootSource {
    pub kernel_image_path: String,
    pub boot_args: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct MachineConfig {
    pub vcpu_count: u8,
    pub mem_size_mib: u64,
    pub smt: bool,
}

#[derive(Serialize, Debug)]
pub struct Drive {
    pub drive_id: String,
    pub is_root_device: bool,
    pub path_on_host: String,
    pub is_read_only: bool,
}

#[derive(Serialize, Debug)]
pub struct NetworkInterface {
    pub iface_id: String,
    pub host_dev_name: String,
    pub guest_mac: String,
}

/// Guest memory in whole MiB (Firecracker's unit), rounded up; `true` when
/// rounding changed the size.
pub fn mem_size_mib(memory: Memory) -> (u64, bool) {
    let mib = memory.bytes().div_ceil(1 << 20);
    (mib, !memory.bytes().is_multiple_of(1 << 20))
}

/// Firecracker's rule for `vcpu_count` (machine_config.rs, swagger).
pub fn check_cpus(n: u8) -> Result<()> {
    if n == 0 || n > 32 || (n > 1 && n % 2 == 1) {
        bail!("--cpus {n}: Firecracker takes 1 or an even number of vCPUs up to 32");
    }
    Ok(())
}

fn path_string(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string()
}

/// The configuration for `cfg`, with absolute host paths.
pub fn vm_config(cfg: &Config) -> VmConfig {
    VmConfig {
        boot_source: BootSource {
            kernel_image_path: path_string(cfg.image),
            boot_args: cfg.cmdline.to_string(),
            initrd_path: cfg.initrd.map(path_string),
        },
        machine_config: MachineConfig { vcpu_count: cfg.cpus, mem_size_mib: mem_size_mib(cfg.memory).0, smt: false },
        drives: cfg
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| Drive {
                drive_id: format!("disk{i}"),
                is_root_device: false,
                path_on_host: path_string(d),
                is_read_only: false,
            })
            .collect(),
        network_interfaces: cfg
            .tap
            .iter()
            .map(|tap| NetworkInterface {
                iface_id: "net0".into(),
                host_dev_name: tap.to_string(),
                guest_mac: cfg.mac.clone(),
            })
            .collect(),
    }
}

/// Firecracker's arguments (without the program name).
pub fn argv(config: &Path, log: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "--no-api".into(),
        "--config-file".into(),
        config.into(),
        "--log-path".into(),
        log.into(),
        "--level".into(),
        "Warning".into(),
    ]
}

/// Without a marker, Firecracker's own status says nothing about the app,
/// so that is a failure; its stderr and log say why.
pub fn unmarked(o: &Outcome) -> Verdict {
    let why = match o.end {
        End::Exited(0) => "the guest reset the machine".to_string(),
        End::Exited(152) => "firecracker exit status 152: bad configuration".to_string(),
        End::Exited(153) => "firecracker exit status 153: bad arguments".to_string(),
        End::Exited(s) if !o.stderr.is_empty() => return supervisor::vmm_failed(FIRECRACKER, s, o),
        End::Exited(s) => format!("firecracker exit status {s}"),
        End::Signaled(sig) => format!("{FIRECRACKER} was killed by {}", super::signal_name(sig)),
    };
    Verdict {
        code: crate::error::EXIT_TOOL_FAILURE,
        lines: vec![format!("error: guest stopped without reporting an exit code ({why})")],
    }
}

/// The fc platform's side of `unikit run`.
pub struct Plan {
    firecracker: PathBuf,
    cpus: u8,
    publish: Vec<(u16, u16)>,
    ns_ip: Option<PathBuf>,
}

impl Plan {
    pub fn new(opts: &super::Options, devices: &mut crate::devices::Devices, memory: Memory) -> Result<Plan> {
        let publish = super::netns::tap_only("fc", devices)?;
        devices.check()?;
        // Check the host before spending time on a build.
        let firecracker = crate::platform::find_firecracker(opts.firecracker.as_deref())?;
        crate::platform::check_kvm_for_firecracker()?;
        let cpus = opts.cpus.unwrap_or(1);
        check_cpus(cpus)?;
        let ns_ip = if publish.is_empty() { None } else { Some(super::netns::check_host("fc")?) };
        super::check_host_memory(memory, super::host_memory())?;
        Ok(Plan { firecracker, cpus, publish, ns_ip })
    }
}

impl super::Plan for Plan {
    fn boot(self: Box<Self>, run: &super::Boot, annotator: &mut crate::symbols::Annotator) -> Result<u8> {
        let memory = run.memory;
        super::check_memory(run.image, memory)?;
        super::check_initrd(run.image, run.initrd, memory)?;
        let (mib, rounded) = mem_size_mib(memory);
        if rounded {
            crate::error::warn(format!("Firecracker sizes memory in whole MiB: -m {memory} is rounded up to {mib}M"));
        }
        let ns = super::publish_namespace(self.ns_ip, &self.publish)?;
        let cfg = Config {
            image: run.image,
            memory,
            cpus: self.cpus,
            cmdline: run.cmdline,
            initrd: run.initrd,
            disks: &run.devices.disks,
            tap: super::tap_for(ns.as_ref(), run.devices),
            mac: supervisor::guest_mac(std::process::id()),
        };
        supervisor::run(&mut Firecracker::new(&self.firecracker, cfg, ns.as_ref())?, annotator)
    }
}

/// The fc runner: a JSON config in the run folder, `firecracker --no-api`.
pub struct Firecracker<'a> {
    pub firecracker: &'a Path,
    pub cfg: Config<'a>,
    /// The run's namespace for `-p`, which Firecracker runs in.
    pub netns: Option<&'a Netns>,
    dir: RunDir,
}

impl<'a> Firecracker<'a> {
    pub fn new(firecracker: &'a Path, cfg: Config<'a>, netns: Option<&'a Netns>) -> Result<Self> {
        Ok(Firecracker { firecracker, cfg, netns, dir: RunDir::create("fc")? })
    }
}

impl Runner for Firecracker<'_> {
    fn vmm(&self) -> String {
        FIRECRACKER.to_string()
    }

    fn command(&mut self) -> Result<Command> {
        let config = self.dir.path().join("config.json");
        let log = self.dir.path().join("firecracker.log");
        let json =
            serde_json::to_string_pretty(&vm_config(&self.cfg)).context("cannot encode the Firecracker config")?;
        std::fs::write(&config, json).with_context(|| format!("cannot write {}", config.display()))?;
        let mut c = match self.netns {
            Some(ns) => ns.command(self.firecracker),
            None => Command::new(self.firecracker),
        };
        c.args(argv(&config, &log)).stdin(Stdio::null());
        Ok(c)
    }

    fn unmarked(&mut self, o: &Outcome) -> Verdict {
        let mut v = unmarked(o);
        if o.interrupted.is_some() {
            return v;
        }
        // Keep the evidence and show Firecracker's own words.
        self.dir.keep();
        let log = self.dir.path().join("firecracker.log");
        if let Ok(text) = std::fs::read_to_string(&log) {
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            if !tail.is_empty() {
                v.lines.push(format!("Firecracker's log ({}):", log.display()));
                v.lines.extend(tail.iter().rev().map(|l| format!("  {l}")));
            }
        }
        v.lines.push(format!(
            "unikit: the Firecracker config is kept in {}",
            self.dir.path().join("config.json").display()
        ));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::GuestExit;
    use crate::run::supervisor::guest_mac;
    use serde_json::Value;

    fn typical<'a>(disks: &'a [PathBuf]) -> Config<'a> {
        Config {
            image: Path::new("/p/build/hello_fc-x86_64"),
            memory: Memory::parse("16M").unwrap(),
            cpus: 1,
            cmdline: "netdev.ip=172.16.0.2/30:172.16.0.1 -- --exit 3",
            initrd: Some(Path::new("/p/build/hello.rootfs.cpio")),
            disks,
            tap: Some("tap0"),
            mac: guest_mac(0x1234),
        }
    }

    /// Keys allowed by Firecracker's structs (all `deny_unknown_fields`).
    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort();
        k
    }

    #[test]
    fn config_matches_firecrackers_schema() {
        let disks = [PathBuf::from("/d/a.img"), PathBuf::from("/d/b.img")];
        let text = serde_json::to_string(&vm_config(&typical(&disks))).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(keys(&v), ["boot-source", "drives", "machine-config", "network-interfaces"]);
        let b = &v["boot-source"];
        assert_eq!(keys(b), ["boot_args", "initrd_path", "kernel_image_path"]);
        assert_eq!(b["kernel_image_path"], "/p/build/hello_fc-x86_64");
        assert_eq!(b["initrd_path"], "/p/build/hello.rootfs.cpio");
        assert_eq!(b["boot_args"], "netdev.ip=172.16.0.2/30:172.16.0.1 -- --exit 3");
        let m = &v["machine-config"];
        assert_eq!(keys(m), ["mem_size_mib", "smt", "vcpu_count"]);
        assert_eq!(m["vcpu_count"], 1);
        assert_eq!(m["mem_size_mib"], 16);
        assert_eq!(m["smt"], false);
        let d = v["drives"].as_array().unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(keys(&d[0]), ["drive_id", "is_read_only", "is_root_device", "path_on_host"]);
        assert_eq!(d[0]["drive_id"], "disk0");
        assert_eq!(d[1]["drive_id"], "disk1");
        assert_eq!(d[1]["path_on_host"], "/d/b.img");
        assert_eq!(d[0]["is_root_device"], false);
        assert_eq!(d[0]["is_read_only"], false);
        let n = v["network-interfaces"].as_array().unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(keys(&n[0]), ["guest_mac", "host_dev_name", "iface_id"]);
        assert_eq!(n[0]["iface_id"], "net0");
        assert_eq!(n[0]["host_dev_name"], "tap0");
        assert_eq!(n[0]["guest_mac"], "06:00:00:00:12:34");
    }

    #[test]
    fn minimal_config_has_empty_device_lists_and_no_initrd() {
        let mut cfg = typical(&[]);
        cfg.initrd = None;
        cfg.tap = None;
        cfg.image = Path::new("rel/img");
        let v: Value = serde_json::to_value(vm_config(&cfg)).unwrap();
        assert_eq!(keys(&v["boot-source"]), ["boot_args", "kernel_image_path"]);
        // Paths are made absolute: Firecracker opens them from its own cwd.
        assert!(v["boot-source"]["kernel_image_path"].as_str().unwrap().starts_with('/'));
        assert!(v["boot-source"]["kernel_image_path"].as_str().unwrap().ends_with("/rel/img"));
        assert_eq!(v["drives"], Value::Array(vec![]));
        assert_eq!(v["network-interfaces"], Value::Array(vec![]));
    }

    #[test]
    fn memory_rounds_up_to_mib() {
        assert_eq!(mem_size_mib(Memory::parse("64M").unwrap()), (64, false));
        assert_eq!(mem_size_mib(Memory::parse("1536K").unwrap()), (2, true));
        assert_eq!(mem_size_mib(Memory::parse("1G").unwrap()), (1024, false));
        assert_eq!(mem_size_mib(Memory::parse("1K").unwrap()), (1, true));
    }

    #[test]
    fn vcpu_rule() {
        for ok in [1, 2, 4, 32] {
            check_cpus(ok).unwrap();
        }
        for bad in [0, 3, 5, 31, 33, 34] {
            assert!(check_cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments() {
        let a: Vec<String> = argv(Path::new("/r/config.json"), Path::new("/r/fc.log"))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(a, ["--no-api", "--config-file", "/r/config.json", "--log-path", "/r/fc.log", "--level", "Warning"]);
    }

    #[test]
    fn exit_decoding() {
        let o = |marker, end, stderr: &[&str]| Outcome {
            marker,
            end,
            stderr: stderr.iter().map(|s| s.to_string()).collect(),
            interrupted: None,
        };
        let mut r = Firecracker::new(Path::new("firecracker"), typical(&[]), None).unwrap();
        let m = GuestExit { code: 3, reason: None };
        assert_eq!(supervisor::verdict(&mut r, &o(Some(m), End::Exited(0), &[])), Verdict { code: 3, lines: vec![] });
        let p = GuestExit { code: 101, reason: Some("panic".into()) };
        let v = supervisor::verdict(&mut r, &o(Some(p), End::Exited(0), &[]));
        assert_eq!((v.code, v.lines), (101, vec!["unikit: guest panic (exit code 101)".to_string()]));
        let v = unmarked(&o(None, End::Exited(0), &[]));
        assert_eq!(v.code, 125);
        assert_eq!(v.lines, ["error: guest stopped without reporting an exit code (the guest reset the machine)"]);
        let v = unmarked(&o(None, End::Exited(152), &[]));
        assert_eq!(v.code, 125);
        assert!(v.lines[0].contains("bad configuration"), "{v:?}");
        let v = supervisor::verdict(&mut r, &o(None, End::Signaled(9), &[]));
        assert_eq!(v.code, 137);
        assert_eq!(v.lines, ["error: firecracker was killed by signal 9, SIGKILL"]);
        let v = unmarked(&o(None, End::Exited(1), &["Error creating the tap: Resource busy"]));
        assert!(v.lines[0].starts_with("error: firecracker could not run the guest (exit status 1): "), "{v:?}");
    }
}
