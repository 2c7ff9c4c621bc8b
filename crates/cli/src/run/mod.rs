//! `unikit run`: build the image, boot it, and exit with the app's exit code.

mod fc;
mod linuxu;
mod netns;
mod qemu;
mod solo5;
pub(crate) mod supervisor;
pub(crate) mod xen;

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::build::{self, Project};
use crate::cmdline;
use crate::devices::{Devices, Net};
use crate::manifest::Manifest;
use crate::memory::Memory;
use crate::platform::{self, Platform, target_name};
use crate::symbols::{Annotator, Symbols};

/// QEMU's machine type (`--machine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Machine {
    Q35,
    Microvm,
}

/// QEMU's firmware (`--firmware`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Firmware {
    Qboot,
    Seabios,
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
}

/// Returns the process exit code.
pub fn command(opts: Options) -> Result<u8> {
    // A bad --plat is reported before anything about the project.
    if let Some(p) = opts.plat.as_deref() {
        platform::parse_supported(p)?;
    }
    let manifest = Manifest::load(&opts.dir)?;
    let plat = match opts.plat.as_deref() {
        Some(p) => build::selected(&manifest, p)?,
        // `--firecracker PATH` alone means `--plat fc`.
        None if opts.firecracker.is_some() => build::selected(&manifest, "fc")?,
        // `--tender T` alone means `--plat solo5`.
        None if opts.tender.is_some() => build::selected(&manifest, "solo5")?,
        // `--xen-testbed` alone means `--plat xen`.
        None if opts.xen_testbed => build::selected(&manifest, "xen")?,
        None => pick(&manifest)?,
    };
    if opts.accel.is_some() && plat != Platform::Qemu {
        bail!("--accel only applies to the qemu platform, not {plat}");
    }
    if opts.firmware.is_some() && plat != Platform::Qemu {
        bail!("--firmware only applies to the qemu platform, not {plat}");
    }
    if opts.machine.is_some() && plat != Platform::Qemu {
        bail!("--machine only applies to the qemu platform, not {plat}");
    }
    if opts.cpus.is_some() && plat != Platform::Fc {
        bail!("--cpus only applies to the fc platform (the {plat} guest gets one CPU)");
    }
    if opts.firecracker.is_some() && plat != Platform::Fc {
        bail!("--firecracker only applies to the fc platform, not {plat}");
    }
    if opts.tender.is_some() && plat != Platform::Solo5 {
        bail!("--tender only applies to the solo5 platform, not {plat}");
    }
    if opts.xen_testbed && plat != Platform::Xen {
        bail!("--xen-testbed only applies to the xen platform, not {plat}");
    }
    if opts.xen_type.is_some() && plat != Platform::Xen {
        bail!("--xen-type only applies to the xen platform, not {plat}");
    }
    let mut devices = opts.devices.clone();
    // Xen: decided before anything is built; -p and --ip become the guest's vif.
    let xen_mode = match plat {
        Platform::Xen => Some(xen::host_mode(opts.xen_testbed)?),
        _ => None,
    };
    let mut xen_publish = Vec::new();
    let mut xen_net = false;
    if let Some(mode) = &xen_mode {
        if devices.net.is_some() {
            return Err(crate::error::hinted(
                "--net does not apply to xen: the guest's network interface is a Xen vif on the bridge xenbr0",
                "use -p HOST:GUEST with --xen-testbed, or --ip ADDR/PREFIX[:GW] on a dom0 whose bridge xenbr0 reaches that network",
            ));
        }
        if !devices.publish.is_empty() {
            if *mode != xen::Mode::Testbed {
                return Err(crate::error::hinted(
                    "-p is not available on a Xen dom0: the guest sits on the bridge xenbr0, not behind a user-mode network",
                    "give it an address with --ip ADDR/PREFIX[:GW] and reach it there, or use --xen-testbed, where -p works",
                ));
            }
            match devices.ip.as_deref() {
                None => devices.ip = Some(xen::TESTBED_GUEST_IP.into()),
                Some(xen::TESTBED_GUEST_IP) => {}
                Some(other) => bail!(
                    "--ip {other}: with -p in the Xen test bed the guest is {} (leave --ip out)",
                    xen::TESTBED_GUEST_IP
                ),
            }
            xen_publish = std::mem::take(&mut devices.publish);
        }
        xen_net = devices.ip.is_some();
    }
    // -p on fc and solo5: a tap in a network namespace owned by the run (see netns.rs).
    let mut fc_publish = Vec::new();
    if plat == Platform::Fc || plat == Platform::Solo5 {
        if devices.net == Some(Net::User) {
            let who = if plat == Platform::Fc { "Firecracker" } else { "Solo5 (hvt)" };
            return Err(crate::error::hinted(
                format!("--net user is QEMU's user-mode network; {who} has none"),
                "use -p HOST:GUEST (unikit then makes a tap in a private network namespace) or --net tap:NAME",
            ));
        }
        if !devices.publish.is_empty() {
            if let Some(Net::Tap(_)) = devices.net {
                bail!(
                    "-p on {plat} makes its own tap in a private network namespace; with --net tap:NAME, reach the guest at its own address"
                );
            }
            match devices.ip.as_deref() {
                None => devices.ip = Some(netns::GUEST_IP.into()),
                Some(netns::GUEST_IP) => {}
                Some(other) => {
                    bail!("--ip {other}: with -p on {plat} the guest is {} (leave --ip out)", netns::GUEST_IP)
                }
            }
            fc_publish = std::mem::take(&mut devices.publish);
        }
        if let Some(Net::Tap(name)) = &devices.net
            && !std::path::Path::new("/sys/class/net").join(name).exists()
        {
            return Err(crate::error::hinted(
                format!("--net tap:{name}: there is no network interface '{name}' on this host"),
                format!(
                    "create it first, e.g. `sudo ip tuntap add dev {name} mode tap user $USER && sudo ip link set {name} up`, or use -p HOST:GUEST as root"
                ),
            ));
        }
    }
    if plat == Platform::Solo5 && devices.rootfs.is_some() {
        return Err(crate::error::hinted(
            "--rootfs is not available on solo5: the hvt ABI has no initrd",
            "put the files on a disk image (--disk) or run on qemu, fc or linuxu",
        ));
    }
    if plat == Platform::Linuxu {
        if !devices.publish.is_empty() || devices.net == Some(Net::User) {
            bail!("linuxu has no user-mode network to forward ports through; use --net tap:NAME (and --ip)");
        }
        if devices.disks.len() > 1 {
            bail!("linuxu attaches one --disk (got {})", devices.disks.len());
        }
    }
    devices.check()?;
    if matches!(plat, Platform::Qemu | Platform::Linuxu) {
        devices.check_tap()?;
    }
    let qboot = std::path::Path::new(platform::QBOOT_ROM);
    let bios = match opts.firmware {
        Some(Firmware::Qboot) if !qboot.is_file() => {
            bail!("--firmware qboot: {} not found (install the qemu-system-data package)", qboot.display())
        }
        Some(Firmware::Seabios) => None,
        _ => qboot.is_file().then_some(qboot),
    };
    // Check the host before spending time on a build.
    let firecracker = match plat {
        Platform::Fc => {
            let path = platform::find_firecracker(opts.firecracker.as_deref())?;
            platform::check_kvm_for_firecracker()?;
            fc::check_cpus(opts.cpus.unwrap_or(1))?;
            Some(path)
        }
        _ => None,
    };
    let tender = match plat {
        Platform::Solo5 => {
            let path = platform::find_tender(opts.tender.as_deref())?;
            platform::check_kvm_for_solo5()?;
            Some(path)
        }
        Platform::Fc | Platform::Xen => None,
        _ => {
            platform::host_can_run(plat)?;
            None
        }
    };
    let ns_ip = if fc_publish.is_empty() { None } else { Some(netns::check_host(plat.name())?) };
    let qemu = match plat {
        Platform::Qemu => Some((platform::find_qemu()?, qemu::choose_accel(opts.accel, platform::probe_kvm())?)),
        _ => None,
    };

    let memory = opts.memory.unwrap_or(manifest.memory);
    if plat != Platform::Xen {
        check_host_memory(memory, host_memory())?;
    }
    let args = opts.args.clone().unwrap_or_else(|| manifest.args.clone());
    let mut kernel_args = manifest.kernel_args.clone();
    kernel_args.extend(devices.kernel_args());
    if opts.quiet && !kernel_args.iter().any(|a| a == cmdline::QUIET) {
        kernel_args.push(cmdline::QUIET.to_string());
    }
    let line = cmdline::build(&kernel_args, &manifest.env, &args)?;

    let project = Project::find(&opts.dir)?;
    // A solo5 image declares its devices in its Solo5 manifest: the ones this run attaches.
    let solo5_devices = match plat {
        Platform::Solo5 => solo5::devices_for(&devices, ns_ip.is_some()),
        _ => Vec::new(),
    };
    let image = build::build(&opts.dir, &project, &manifest, plat, &solo5_devices, opts.quiet)?;
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
    let initrd = devices.initrd(&opts.dir.join("build"), &manifest.name, memory.bytes())?;

    if let Some(tender_path) = tender {
        let (mib, rounded) = solo5::mem_mib(memory);
        if rounded {
            crate::error::warn(format!(
                "the hvt tender sizes memory in 2 MiB steps: -m {memory} is rounded up to {mib}M"
            ));
        }
        check_memory(&image.path, Memory::parse(&format!("{mib}M")).unwrap_or(memory))?;
        let ns = publish_namespace(ns_ip, &fc_publish)?;
        let tap = tap_for(ns.as_ref(), &devices);
        let cfg = solo5::Config {
            image: &image.path,
            memory,
            cmdline: &line,
            disks: &devices.disks,
            tap,
            mac: supervisor::guest_mac(std::process::id()),
        };
        return supervisor::run(&mut solo5::Solo5 { tender: &tender_path, cfg, netns: ns.as_ref() }, &mut annotator);
    }
    if let Some(mode) = xen_mode {
        check_memory(&image.path, memory)?;
        let cfg = xen::RunConfig {
            image: &image.path,
            name: &manifest.name,
            memory,
            cmdline: &line,
            guest_type: opts.xen_type.unwrap_or(xen::GuestType::Pv),
            rootfs: initrd.as_deref(),
            publish: &xen_publish,
            net: xen_net,
            disks: &devices.disks,
        };
        return xen::run(&mode, &cfg, &mut annotator);
    }
    if let Some(fc_path) = firecracker {
        check_memory(&image.path, memory)?;
        check_initrd(&image.path, initrd.as_deref(), memory)?;
        let (mib, rounded) = fc::mem_size_mib(memory);
        if rounded {
            crate::error::warn(format!("Firecracker sizes memory in whole MiB: -m {memory} is rounded up to {mib}M"));
        }
        let ns = publish_namespace(ns_ip, &fc_publish)?;
        let tap = tap_for(ns.as_ref(), &devices);
        let cfg = fc::Config {
            image: &image.path,
            memory,
            cpus: opts.cpus.unwrap_or(1),
            cmdline: &line,
            initrd: initrd.as_deref(),
            disks: &devices.disks,
            tap,
            mac: supervisor::guest_mac(std::process::id()),
        };
        return supervisor::run(&mut fc::Firecracker::new(&fc_path, cfg, ns.as_ref())?, &mut annotator);
    }
    match qemu {
        Some((qemu_path, (accel, warning))) => {
            check_memory(&image.path, memory)?;
            check_initrd(&image.path, initrd.as_deref(), memory)?;
            if let Some(w) = warning {
                crate::error::warn(w);
            }
            let cfg = qemu::Config {
                image: &image.path,
                memory,
                cmdline: &line,
                accel,
                bios,
                machine: opts.machine.unwrap_or(Machine::Q35),
                devices: &devices,
                initrd: initrd.as_deref(),
            };
            supervisor::run(&mut qemu::Qemu { qemu: &qemu_path, cfg }, &mut annotator)
        }
        None => supervisor::run(
            &mut linuxu::Linuxu {
                image: &image.path,
                args: &args,
                env: &manifest.env,
                memory,
                kernel_args: &kernel_args,
                dev: linuxu::Devices { devices: &devices, initrd: initrd.as_deref() },
            },
            &mut annotator,
        ),
    }
}

pub use netns::reap as reap_netns;

/// For the tap-only platforms (fc, solo5): the network namespace that
/// carries `-p` forwards, when there are any.
fn publish_namespace(ns_ip: Option<std::path::PathBuf>, publish: &[(u16, u16)]) -> Result<Option<netns::Netns>> {
    let Some(ip) = ns_ip else { return Ok(None) };
    let ns = netns::Netns::create(ip)?;
    for &(host, guest) in publish {
        ns.forward(host, guest)?;
    }
    Ok(Some(ns))
}

/// The tap the VMM attaches: the run's own namespace tap, or the user's.
fn tap_for<'a>(ns: Option<&netns::Netns>, devices: &'a Devices) -> Option<&'a str> {
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
fn check_memory(image: &std::path::Path, memory: Memory) -> Result<()> {
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
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| {
        text.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    Some((kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)) * 1024)
}

/// Refuses guest memory the host cannot give (the VMM's allocation would
/// fail and it would stop before the guest runs).
fn check_host_memory(memory: Memory, host: Option<u64>) -> Result<()> {
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
fn check_initrd(image: &std::path::Path, initrd: Option<&std::path::Path>, memory: Memory) -> Result<()> {
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

/// Highest physical address a PT_LOAD segment of an ELF64 image occupies.
fn image_end(elf: &[u8]) -> Option<u64> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(0..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20)? as usize, u16_at(0x36)? as usize, u16_at(0x38)? as usize);
    (0..phnum)
        .filter_map(|i| {
            let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
            (u32_at(ph)? == 1).then(|| u64_at(ph + 0x18)?.checked_add(u64_at(ph + 0x28)?))?
        })
        .max()
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
        e[..5].copy_from_slice(b"\x7fELF\x02");
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
