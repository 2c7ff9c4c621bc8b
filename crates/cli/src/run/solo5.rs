//! Running a solo5 image: the Solo5 hvt tender (`unikit-hvt`, or upstream
//! `solo5-hvt` with `--tender solo5-hvt`) loads it into a KVM VM and exits
//! with the guest's status.
//!
//! Both tenders take solo5-hvt's command line (tenders/hvt/hvt_main.c in
//! Solo5): `--mem=MIB`, `--net:NAME=TAP`, `--net-mac:NAME=MAC`,
//! `--block:NAME=FILE`, then the image and the guest's command line. The
//! device names are the ones the image declares in its Solo5 manifest,
//! which `unikit run` chooses from its own flags ([`devices_for`]): `service`
//! for the network, `storage`, `storage1`, ... for the disks.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;

use crate::devices::{Devices, Net};
use crate::memory::Memory;

use super::netns::Netns;
use super::supervisor::{End, Outcome, Runner, Verdict};

/// The network device's name in the image's manifest.
pub const NET_NAME: &str = "service";
/// The first disk's name; further disks are `storage1`, `storage2`, ...
pub const DISK_NAME: &str = "storage";

/// unikit-hvt's own exit statuses (crates/tender/src/run.rs).
pub const TENDER_SETUP: i32 = 120;
pub const TENDER_INVALID: i32 = 121;
pub const TENDER_VM: i32 = 122;
pub const TENDER_HOST_IO: i32 = 123;

/// The Solo5 manifest devices a run with `devices` needs (`net:NAME`,
/// `block:NAME`), in manifest order.
pub fn devices_for(devices: &Devices, netns: bool) -> Vec<String> {
    let mut v = Vec::new();
    if netns || matches!(devices.net, Some(Net::Tap(_))) {
        v.push(format!("net:{NET_NAME}"));
    }
    for i in 0..devices.disks.len() {
        v.push(format!("block:{}", disk_name(i)));
    }
    v
}

fn disk_name(i: usize) -> String {
    if i == 0 { DISK_NAME.to_string() } else { format!("{DISK_NAME}{i}") }
}

/// Guest memory in MiB for `--mem`: rounded up to the tender's 2 MiB
/// granule; `true` when that changed the size.
pub fn mem_mib(memory: Memory) -> (u64, bool) {
    let granule = 2u64 << 20;
    let bytes = memory.bytes().div_ceil(granule) * granule;
    (bytes >> 20, bytes != memory.bytes())
}

/// Everything one run needs.
pub struct Config<'a> {
    pub image: &'a Path,
    pub memory: Memory,
    pub cmdline: &'a str,
    pub disks: &'a [PathBuf],
    pub tap: Option<&'a str>,
    pub mac: String,
}

/// The tender's arguments (without the program name).
pub fn argv(cfg: &Config) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![format!("--mem={}", mem_mib(cfg.memory).0).into()];
    if let Some(tap) = cfg.tap {
        a.push(format!("--net:{NET_NAME}={tap}").into());
        a.push(format!("--net-mac:{NET_NAME}={}", cfg.mac).into());
    }
    for (i, d) in cfg.disks.iter().enumerate() {
        let mut s = OsString::from(format!("--block:{}=", disk_name(i)));
        s.push(std::path::absolute(d).unwrap_or_else(|_| d.clone()));
        a.push(s);
    }
    a.push("--".into());
    a.push(cfg.image.into());
    if !cfg.cmdline.is_empty() {
        // One argument: the tender joins its arguments with spaces, so the
        // guest gets exactly this line.
        a.push(cfg.cmdline.into());
    }
    a
}

/// Our exit code and the lines for stderr, from the tender's status (the
/// halt hypercall's code is the tender's exit status).
pub fn verdict(tender: &str, unikit_hvt: bool, end: End) -> (u8, Vec<String>) {
    match end {
        End::Exited(TENDER_SETUP) if unikit_hvt => (
            crate::error::EXIT_TOOL_FAILURE,
            vec![format!("error: {tender} could not start the guest (see its message above)")],
        ),
        End::Exited(c @ (TENDER_INVALID | TENDER_VM | TENDER_HOST_IO)) if unikit_hvt => {
            (c as u8, vec![format!("unikit: {tender} stopped the guest (exit code {c})")])
        }
        End::Exited(c) => ((c & 0xff) as u8, vec![]),
        End::Signaled(sig) => {
            let v = super::supervisor::killed(tender, sig);
            (v.code, v.lines)
        }
    }
}

/// The solo5 platform's side of `unikit run`.
pub struct Plan {
    tender: PathBuf,
    publish: Vec<(u16, u16)>,
    ns_ip: Option<PathBuf>,
}

impl Plan {
    pub fn new(opts: &super::Options, devices: &mut Devices, memory: Memory) -> Result<Plan> {
        let publish = super::netns::tap_only("solo5", devices)?;
        if devices.rootfs.is_some() {
            return Err(crate::error::hinted(
                "--rootfs is not available on solo5: the hvt ABI has no initrd",
                "put the files on a disk image (--disk) or run on qemu, fc or linuxu",
            ));
        }
        devices.check()?;
        // Check the host before spending time on a build.
        let tender = crate::platform::find_tender(opts.tender.as_deref())?;
        crate::platform::check_kvm_for_solo5()?;
        let ns_ip = if publish.is_empty() { None } else { Some(super::netns::check_host("solo5")?) };
        super::check_host_memory(memory, super::host_memory())?;
        Ok(Plan { tender, publish, ns_ip })
    }
}

impl super::Plan for Plan {
    /// A solo5 image declares its devices in its Solo5 manifest: the ones this run attaches.
    fn solo5_devices(&self, devices: &Devices) -> Vec<String> {
        devices_for(devices, self.ns_ip.is_some())
    }

    fn boot(self: Box<Self>, run: &super::Boot, annotator: &mut crate::symbols::Annotator) -> Result<u8> {
        let memory = run.memory;
        let (mib, rounded) = mem_mib(memory);
        if rounded {
            crate::error::warn(format!(
                "the hvt tender sizes memory in 2 MiB steps: -m {memory} is rounded up to {mib}M"
            ));
        }
        super::check_memory(run.image, Memory::parse(&format!("{mib}M")).unwrap_or(memory))?;
        let ns = super::publish_namespace(self.ns_ip, &self.publish)?;
        let cfg = Config {
            image: run.image,
            memory,
            cmdline: run.cmdline,
            disks: &run.devices.disks,
            tap: super::tap_for(ns.as_ref(), run.devices),
            mac: super::supervisor::guest_mac(std::process::id()),
        };
        super::supervisor::run(&mut Solo5 { tender: &self.tender, cfg, netns: ns.as_ref() }, annotator)
    }
}

/// The solo5 runner: the tender with solo5-hvt's command line.
pub struct Solo5<'a> {
    pub tender: &'a Path,
    pub cfg: Config<'a>,
    /// The run's namespace for `-p`, which the tender runs in.
    pub netns: Option<&'a Netns>,
}

impl Runner for Solo5<'_> {
    fn vmm(&self) -> String {
        let t = self.tender;
        t.file_name().map_or_else(|| t.display().to_string(), |n| n.to_string_lossy().into_owned())
    }

    fn command(&mut self) -> Result<Command> {
        let mut c = match self.netns {
            Some(ns) => ns.command(self.tender),
            None => Command::new(self.tender),
        };
        c.args(argv(&self.cfg)).stdin(Stdio::null());
        Ok(c)
    }

    // The kernel prints no exit marker on solo5 (the halt hypercall carries
    // the code), but one is stripped (and obeyed) if an image prints it.

    fn unmarked(&mut self, o: &Outcome) -> Verdict {
        let name = self.vmm();
        let (code, lines) = verdict(&name, name != crate::platform::SOLO5_HVT, o.end);
        Verdict { code, lines }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn arguments() {
        let disks = [PathBuf::from("/d/a.img"), PathBuf::from("/d/b.img")];
        let cfg = Config {
            image: Path::new("/p/build/httpd_solo5-x86_64"),
            memory: Memory::parse("64M").unwrap(),
            cmdline: "netdev.ip=172.16.0.2/30:172.16.0.1 -- --port 80",
            disks: &disks,
            tap: Some("tap0"),
            mac: "06:00:00:00:12:34".into(),
        };
        assert_eq!(
            strings(argv(&cfg)),
            [
                "--mem=64",
                "--net:service=tap0",
                "--net-mac:service=06:00:00:00:12:34",
                "--block:storage=/d/a.img",
                "--block:storage1=/d/b.img",
                "--",
                "/p/build/httpd_solo5-x86_64",
                "netdev.ip=172.16.0.2/30:172.16.0.1 -- --port 80"
            ]
        );
        let cfg = Config { disks: &[], tap: None, cmdline: "", memory: Memory::parse("3M").unwrap(), ..cfg };
        assert_eq!(strings(argv(&cfg)), ["--mem=4", "--", "/p/build/httpd_solo5-x86_64"]);
    }

    #[test]
    fn device_lists() {
        let mut d = Devices::default();
        assert!(devices_for(&d, false).is_empty());
        assert_eq!(devices_for(&d, true), ["net:service"]);
        d.net = Some(Net::Tap("t".into()));
        d.disks = vec!["a".into(), "b".into()];
        assert_eq!(devices_for(&d, false), ["net:service", "block:storage", "block:storage1"]);
    }

    #[test]
    fn memory_granule() {
        assert_eq!(mem_mib(Memory::parse("16M").unwrap()), (16, false));
        assert_eq!(mem_mib(Memory::parse("15M").unwrap()), (16, true));
        assert_eq!(mem_mib(Memory::parse("1536K").unwrap()), (2, true));
    }

    #[test]
    fn exit_decoding() {
        assert_eq!(verdict("unikit-hvt", true, End::Exited(3)), (3, vec![]));
        assert_eq!(verdict("unikit-hvt", true, End::Exited(101)), (101, vec![]));
        let (c, l) = verdict("unikit-hvt", true, End::Exited(120));
        assert_eq!(c, 125);
        assert_eq!(l, ["error: unikit-hvt could not start the guest (see its message above)"]);
        let (c, l) = verdict("unikit-hvt", true, End::Exited(121));
        assert_eq!(c, 121);
        assert_eq!(l, ["unikit: unikit-hvt stopped the guest (exit code 121)"]);
        // Upstream's statuses are not ours to interpret.
        assert_eq!(verdict("solo5-hvt", false, End::Exited(120)), (120, vec![]));
        let (c, l) = verdict("unikit-hvt", true, End::Signaled(31));
        assert_eq!(c, 159);
        assert_eq!(l, ["error: unikit-hvt was killed by signal 31, SIGSYS"]);
    }
}
