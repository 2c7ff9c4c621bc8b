//! `unikit run`: build the image, boot it, and exit with the app's exit code.

mod fc;
mod firmware;
mod hyperv;
mod linuxu;
mod netns;
mod qemu;
mod reaper;
mod solo5;
pub(crate) mod supervisor;
mod vmware;
pub(crate) mod xen;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::build::{self, Project};
use crate::devices::{Devices, Net};
use crate::manifest::Manifest;
use crate::memory::Memory;
use crate::platform::{self, Platform, target_name};
use crate::symbols::{Annotator, Symbols};
use crate::{cmdline, exec};

/// QEMU's machine type (`--machine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Machine {
    Q35,
    Microvm,
    /// i440fx with its PIIX IDE controller: Hyper-V Generation 1's shape.
    Pc,
}

/// QEMU's firmware (`--firmware`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Firmware {
    Qboot,
    Seabios,
    /// UEFI (OVMF), for the firmware-booted platforms (vmware).
    Efi,
}

/// QEMU's accelerator (`--accel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    Kvm,
    Tcg,
}

pub struct Options {
    pub dir: PathBuf,
    pub plat: Option<String>,
    pub memory: Option<Memory>,
    pub accel: Option<Accel>,
    pub firmware: Option<Firmware>,
    /// `--testbed`: a vmware or hyperv image in QEMU shaped like that hypervisor.
    pub testbed: bool,
    /// `--gen 1|2`: the Hyper-V generation of the test bed.
    pub generation: Option<u8>,
    pub machine: Option<Machine>,
    pub cpus: Option<u8>,
    pub firecracker: Option<PathBuf>,
    pub tender: Option<PathBuf>,
    pub devices: Devices,
    /// `--xen-testbed`: run xen images in the QEMU-hosted Xen test bed.
    pub xen_testbed: bool,
    pub xen_type: Option<xen::GuestType>,
    pub quiet: bool,
    pub args: Option<Vec<String>>,
    /// `--exec FILE`: a Linux program, run in the loader image.
    pub exec: Option<PathBuf>,
    /// `-e KEY=VALUE`: environment variables over the manifest's `env`.
    pub env: Vec<(String, String)>,
}

/// One platform's side of `unikit run`. Made before the build: making it
/// checks the options the platform takes (and refuses the network and
/// device options it cannot honour), and the host (VMM, KVM, rights), so
/// that a bad run fails before time goes into a build.
pub trait Plan {
    /// The devices a solo5 image declares in its Solo5 manifest.
    fn solo5_devices(&self, _devices: &Devices) -> Vec<String> {
        Vec::new()
    }
    /// Boot the built image; returns our exit code.
    fn boot(self: Box<Self>, run: &Boot, annotator: &mut Annotator) -> Result<u8>;
}

/// What every platform boots.
pub struct Boot<'a> {
    pub image: &'a Path,
    pub name: &'a str,
    pub memory: Memory,
    /// The guest's whole command line.
    pub cmdline: &'a str,
    /// Its parts (linuxu passes them as argv and environment).
    pub args: &'a [String],
    pub kernel_args: &'a [String],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub devices: &'a Devices,
    pub initrd: Option<&'a Path>,
}

/// The options only one platform takes; any other refuses them.
fn check_flags(opts: &Options, plat: Platform) -> Result<()> {
    use Platform::{Fc, Hyperv, Qemu, Solo5, Vmware, Xen};
    let flags: [(bool, &str, &[Platform]); 11] = [
        (opts.accel.is_some(), "--accel", &[Qemu, Vmware, Hyperv]),
        (opts.firmware.is_some(), "--firmware", &[Qemu, Vmware]),
        (opts.machine.is_some(), "--machine", &[Qemu]),
        (opts.cpus.is_some(), "--cpus", &[Fc]),
        (opts.firecracker.is_some(), "--firecracker", &[Fc]),
        (opts.tender.is_some(), "--tender", &[Solo5]),
        (opts.xen_testbed, "--xen-testbed", &[Xen]),
        (opts.xen_type.is_some(), "--xen-type", &[Xen]),
        (opts.testbed, "--testbed", &[Vmware, Hyperv]),
        (opts.generation.is_some(), "--gen", &[Hyperv]),
        (opts.devices.nic != crate::devices::Nic::Virtio, "--nic", &[Qemu, Vmware, Hyperv]),
    ];
    // A VMware VM's disks are PVSCSI anyway.
    if opts.devices.disk_bus != crate::devices::DiskBus::Virtio && plat != Qemu && plat != Vmware {
        bail!("--disk-bus pvscsi only applies to the qemu platform (machine q35 or pc), not {plat}");
    }
    for (given, flag, owners) in flags {
        if given && !owners.contains(&plat) {
            if flag == "--cpus" {
                bail!("--cpus only applies to the fc platform (the {plat} guest gets one CPU)");
            }
            let names: Vec<&str> = owners.iter().map(|p| p.name()).collect();
            let list = match names.split_last() {
                Some((last, [])) => format!("the {last} platform"),
                Some((last, rest)) => format!("the {} and {last} platforms", rest.join(", ")),
                None => "no platform".to_string(),
            };
            bail!("{flag} only applies to {list}, not {plat}");
        }
    }
    if plat == Qemu && opts.firmware == Some(Firmware::Efi) {
        bail!("--firmware efi boots a disk image: use it with --plat vmware (qemu boots the kernel directly)");
    }
    Ok(())
}

/// The platform asked for: `--plat`, or implied by a platform's own flag.
fn requested(opts: &Options) -> Option<&str> {
    match opts.plat.as_deref() {
        Some(p) => Some(p),
        // `--firecracker PATH` alone means `--plat fc`.
        None if opts.firecracker.is_some() => Some("fc"),
        // `--tender T` alone means `--plat solo5`.
        None if opts.tender.is_some() => Some("solo5"),
        // `--xen-testbed` alone means `--plat xen`.
        None if opts.xen_testbed => Some("xen"),
        // `--gen N` alone means `--plat hyperv`.
        None if opts.generation.is_some() => Some("hyperv"),
        None => None,
    }
}

/// The platform to run: the one asked for, or the first target of the
/// manifest this host can run.
fn select(opts: &Options, manifest: &Manifest) -> Result<Platform> {
    match requested(opts) {
        Some(p) => build::selected(manifest, p),
        None => pick(manifest),
    }
}

/// Removes a file when dropped (a run's own initrd).
struct Remove(Option<PathBuf>);

impl Drop for Remove {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Returns the process exit code.
pub fn command(mut opts: Options) -> Result<u8> {
    // A bad --plat is reported before anything about the project.
    if let Some(p) = opts.plat.as_deref() {
        platform::parse_supported(p)?;
    }
    // A Linux program (`--exec`, or `exec` in the manifest) runs in the
    // loader image; everything else about the run is the same.
    let job = match &opts.exec {
        Some(file) => Some(exec::Job::new(
            exec::Source::Flags { file, rootfs: opts.devices.rootfs.as_deref() },
            requested(&opts),
        )?),
        None => None,
    };
    let manifest = match &job {
        Some(j) => j.manifest.clone(),
        None => Manifest::load(&opts.dir)?,
    };
    let job = match job {
        None if manifest.exec.is_some() => Some(exec::Job::new(
            exec::Source::Project { dir: &opts.dir, manifest: &manifest, rootfs: opts.devices.rootfs.as_deref() },
            requested(&opts),
        )?),
        j => j,
    };
    let manifest = job.as_ref().map_or(manifest, |j| j.manifest.clone());
    let plat = select(&opts, &manifest)?;
    check_flags(&opts, plat)?;
    if plat == Platform::Xen && job.is_some() {
        // Programs run in user mode, which the PV guest does not offer yet.
        if opts.xen_type == Some(xen::GuestType::Pv) {
            bail!(
                "--exec runs a Linux program in a Xen PVH guest: PV guests cannot run Linux programs yet (leave out --xen-type pv)"
            );
        }
        opts.xen_type = Some(xen::GuestType::Pvh);
    }
    let memory = opts.memory.unwrap_or(manifest.memory);
    let mut devices = opts.devices.clone();
    match (&job, &manifest.rootfs) {
        (Some(j), _) => j.set_devices(&mut devices),
        (None, Some(r)) if devices.rootfs.is_none() => {
            let rootfs = exec::Given { path: opts.dir.join(&r.path), label: r.label.clone() };
            exec::check_rootfs(&rootfs)?;
            devices.rootfs = Some(rootfs.path);
        }
        (None, _) => {
            if let Some(r) = &devices.rootfs {
                exec::check_rootfs(&exec::Given::flag("--rootfs", r))?;
            }
        }
    }
    let plan: Box<dyn Plan> = match plat {
        Platform::Qemu => Box::new(qemu::Plan::new(&opts, &mut devices, memory)?),
        Platform::Fc => Box::new(fc::Plan::new(&opts, &mut devices, memory)?),
        Platform::Solo5 => Box::new(solo5::Plan::new(&opts, &mut devices, memory)?),
        Platform::Xen => Box::new(xen::Plan::new(&opts, &mut devices)?),
        Platform::Linuxu => Box::new(linuxu::Plan::new(&mut devices, memory)?),
        Platform::Vmware => Box::new(vmware::Plan::new(&opts, &mut devices, memory)?),
        Platform::Hyperv => Box::new(hyperv::Plan::new(&opts, &mut devices, memory)?),
    };

    let args = match &job {
        Some(j) => j.app_args(opts.args.as_deref()),
        None => opts.args.clone().unwrap_or_else(|| manifest.args.clone()),
    };
    let env = exec::with_env(&manifest.env, &opts.env);
    let mut kernel_args = manifest.kernel_args.clone();
    kernel_args.extend(devices.kernel_args());
    // A Linux program sees a terminal when `unikit run` writes to one.
    if job.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        kernel_args.push("unikit.tty".to_string());
    }
    if opts.quiet && !kernel_args.iter().any(|a| a == cmdline::QUIET) {
        kernel_args.push(cmdline::QUIET.to_string());
    }
    let line = cmdline::build(&kernel_args, &env, &args)?;

    let crate_dir = job.as_ref().map_or(opts.dir.clone(), |j| j.loader.clone());
    let project = Project::find(&crate_dir)?;
    let out_dir = match (&opts.exec, &job) {
        // No project: the loader's images live in its target folder.
        (Some(_), _) => project.target_dir.join("unikit").join("exec"),
        _ => opts.dir.join("build"),
    };
    let dest = build::image_path(&out_dir, &manifest.name, plat);
    let image = build::build(&project, &manifest, plat, &plan.solo5_devices(&devices), opts.quiet, &dest)?;
    if !opts.quiet {
        eprintln!("{}", image.describe());
    }
    let symbols = match Symbols::load(&image.symbols) {
        Ok(s) => Some(s),
        Err(e) => {
            crate::error::warn(format!("crash backtraces will not be symbolized: {e}"));
            None
        }
    };
    let mut annotator = Annotator::new(symbols);
    // A program's initrd is the run's own (runs of different programs share
    // the loader image): named after the run, removed after it.
    let (initrd_path, _remove) = match &job {
        Some(j) => {
            let p = out_dir.join(format!("{}.{}.initrd", j.stem, std::process::id()));
            (p.clone(), Remove(Some(p)))
        }
        None => (opts.dir.join("build").join(format!("{}.rootfs.cpio", manifest.name)), Remove(None)),
    };
    let initrd = devices.initrd(&initrd_path, memory.bytes())?;
    let run = Boot {
        image: &image.path,
        name: &manifest.name,
        memory,
        cmdline: &line,
        args: &args,
        kernel_args: &kernel_args,
        env: &env,
        devices: &devices,
        initrd: initrd.as_deref(),
    };
    plan.boot(&run, &mut annotator)
}

pub use netns::reap as reap_netns;
pub use vmware::console as vmrun_console;
pub use xen::reap as reap_xen;

/// For the tap-only platforms (fc, solo5): the network namespace that
/// carries `-p` forwards, when there are any.
pub(crate) fn publish_namespace(
    ns_ip: Option<std::path::PathBuf>,
    publish: &[(u16, u16)],
) -> Result<Option<netns::Netns>> {
    let Some(ip) = ns_ip else { return Ok(None) };
    let ns = netns::Netns::create(ip)?;
    for &(host, guest) in publish {
        ns.forward(host, guest)?;
    }
    Ok(Some(ns))
}

/// The tap the VMM attaches: the run's own namespace tap, or the user's.
pub(crate) fn tap_for<'a>(ns: Option<&netns::Netns>, devices: &'a Devices) -> Option<&'a str> {
    match (ns, &devices.net) {
        (Some(_), _) => Some(netns::TAP),
        (None, Some(Net::Tap(name))) => Some(name.as_str()),
        _ => None,
    }
}

/// Headroom the kernel needs above its image: frame bitmap, page tables,
/// the first heap arena and a thread stack.
const MIN_HEADROOM: u64 = 256 << 10;

/// Refuses a memory size the image cannot boot in (QEMU would load the
/// kernel past the end of RAM and the guest would run garbage).
pub(crate) fn check_memory(image: &std::path::Path, memory: Memory) -> Result<()> {
    let Ok(bytes) = std::fs::read(image) else {
        return Ok(());
    };
    let Some(end) = image_end(&bytes) else {
        return Ok(());
    };
    let need = (end + MIN_HEADROOM).div_ceil(64 << 10) * (64 << 10);
    if memory.bytes() < need {
        bail!(
            "-m {} is too small for {}: the kernel image ends at {:#x}, so it needs at least {} KiB (try -m {}M)",
            memory,
            image.display(),
            end,
            need / 1024,
            need.div_ceil(1 << 20)
        );
    }
    Ok(())
}

/// The host's RAM plus swap in bytes (/proc/meminfo), if known.
pub(crate) fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    Some((kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)) * 1024)
}

/// Refuses guest memory the host cannot give (the VMM's allocation would
/// fail and it would stop before the guest runs).
pub(crate) fn check_host_memory(memory: Memory, host: Option<u64>) -> Result<()> {
    match host {
        Some(host) if memory.bytes() > host => Err(crate::error::hinted(
            format!("-m {memory} is more than this host has ({} MiB of RAM and swap)", host >> 20),
            "use a smaller -m",
        )),
        _ => Ok(()),
    }
}

/// Refuses an initrd (`--rootfs`) that cannot fit in the guest's memory
/// above the kernel and its headroom: QEMU would refuse to load it and
/// Firecracker would put it over the kernel.
pub(crate) fn check_initrd(image: &std::path::Path, initrd: Option<&std::path::Path>, memory: Memory) -> Result<()> {
    let Some(rd) = initrd else { return Ok(()) };
    let Ok(meta) = std::fs::metadata(rd) else { return Ok(()) };
    let end = std::fs::read(image).ok().and_then(|b| image_end(&b)).unwrap_or(1 << 20);
    let need = (end + MIN_HEADROOM).saturating_add(meta.len().div_ceil(4096) * 4096);
    if memory.bytes() < need {
        return Err(crate::error::hinted(
            format!(
                "the --rootfs archive {} ({} KiB) does not fit in -m {memory} beside the kernel (that needs {} KiB)",
                rd.display(),
                meta.len().div_ceil(1024),
                need.div_ceil(1024)
            ),
            format!("use -m {}M or more, or a smaller rootfs", need.div_ceil(1 << 20) * 2),
        ));
    }
    Ok(())
}

/// Highest physical address a PT_LOAD segment of an ELF64 image occupies
/// (through the one ELF reader, `unikit_abi::elf`).
fn image_end(elf: &[u8]) -> Option<u64> {
    unikit_abi::elf::Elf::parse(elf).ok()?.load_end()
}

/// The first target of the manifest this host can run.
fn pick(manifest: &Manifest) -> Result<Platform> {
    let mut why = Vec::new();
    for &p in &manifest.targets {
        match platform::host_can_run(p) {
            Ok(()) => return Ok(p),
            Err(e) => why.push(format!("{}: {e}", target_name(p))),
        }
    }
    bail!("none of the targets in unikit.toml can run on this host ({})", why.join("; "))
}

/// Name of a common signal, for messages.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        31 => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    format!("signal {sig}, {name}")
}

#[cfg(test)]
mod tests {
    use super::image_end;

    fn elf_with(segments: &[(u32, u64, u64)]) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56 * segments.len()];
        e[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        e[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        e[0x14..0x18].copy_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
        e[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, &(ty, paddr, memsz)) in segments.iter().enumerate() {
            let ph = 64 + 56 * i;
            e[ph..ph + 4].copy_from_slice(&ty.to_le_bytes());
            e[ph + 0x18..ph + 0x20].copy_from_slice(&paddr.to_le_bytes());
            e[ph + 0x28..ph + 0x30].copy_from_slice(&memsz.to_le_bytes());
        }
        e
    }

    #[test]
    fn image_end_takes_the_highest_load_segment() {
        let e = elf_with(&[(1, 0x10_0000, 0x1000), (4, 0x90_0000, 0x10), (1, 0x10_2000, 0x2_0000)]);
        assert_eq!(image_end(&e), Some(0x12_2000));
    }

    #[test]
    fn memory_beyond_the_host_is_refused() {
        use super::{Memory, check_host_memory};
        let m = Memory::parse("64M").unwrap();
        check_host_memory(m, Some(1 << 30)).unwrap();
        check_host_memory(m, None).unwrap();
        let e = check_host_memory(Memory::parse("2G").unwrap(), Some(1 << 30)).unwrap_err().to_string();
        assert_eq!(e, "-m 2048M is more than this host has (1024 MiB of RAM and swap)");
        assert!(super::host_memory().is_some_and(|b| b > 0));
    }

    #[test]
    fn image_end_rejects_garbage() {
        assert_eq!(image_end(b"not an elf"), None);
        let mut e = elf_with(&[(1, u64::MAX, 2)]);
        assert_eq!(image_end(&e), None);
        e.truncate(70);
        assert_eq!(image_end(&e), None);
    }
}
