//! `unikit`: the host tool that builds unikernel images and runs them.
//!
//! Every failure is reported as one `error: ...` line on stderr (plus an
//! optional `hint: ...` line) and exit code 125, like docker and podman.
//! A successful `run` exits with the guest application's exit code.

// One `unsafe` block lives in `platform.rs` (the KVM_GET_API_VERSION ioctl);
// it is allowed there, with its SAFETY comment.
#![deny(unsafe_code)]

mod build;
mod cmdline;
mod console;
mod cpio;
mod devices;
mod elf;
mod error;
mod exec;
mod image;
mod manifest;
mod memory;
mod platform;
mod run;
mod symbols;
mod testbed;
mod tools;
mod xenhost;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::{EXIT_TOOL_FAILURE, report};
use crate::memory::Memory;
use crate::run::{Accel, Firmware, Machine};

#[derive(Parser, Debug)]
#[command(name = "unikit", version, about = "Build and run unikernel images")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Build the project's images (default: every target of unikit.toml this version supports).
    Build(BuildArgs),
    /// Build the project and boot it; the guest console goes to stdout.
    Run(RunArgs),
    /// Show which platforms this host can run, and why not.
    Platforms,
    /// Development aid: boot any PV kernel file (Xen-notes ELF or Linux bzImage) in the Xen test bed.
    #[command(hide = true)]
    XenTestbed(XenTestbedArgs),
    /// Internal: runs one VM under VMware's vmrun and streams its serial log (see run/vmware.rs).
    #[command(hide = true, name = "__vmrun-console")]
    VmrunConsole { vmrun: PathBuf, vmx: PathBuf, log: PathBuf },
    /// Internal: removes a run's network namespace once that run is gone (see run/netns.rs).
    #[command(hide = true, name = "__reap-netns")]
    ReapNetns { name: String, ip: PathBuf },
    /// Internal: destroys a run's Xen domain if that run is killed (see run/reaper.rs).
    #[command(hide = true, name = "__reap-xl")]
    ReapXl { xl: PathBuf, domain: String },
}

#[derive(clap::Args, Debug)]
struct XenTestbedArgs {
    /// Guest memory (default 64M).
    #[arg(short = 'm', long = "memory", value_name = "MEM", value_parser = Memory::parse_arg)]
    memory: Option<Memory>,
    /// Initial ramdisk for the guest.
    #[arg(long, value_name = "FILE")]
    ramdisk: Option<PathBuf>,
    /// Forward TCP 127.0.0.1:HOST to the guest (10.0.0.2) port GUEST.
    #[arg(short = 'p', long = "publish", value_name = "HOST:GUEST", value_parser = devices::parse_publish)]
    publish: Vec<(u16, u16)>,
    /// Attach FILE as the guest's disk xvdX. Repeatable.
    #[arg(long, value_name = "FILE")]
    disk: Vec<PathBuf>,
    /// Boot the bed's own Linux kernel with a busybox initramfs instead of a file (checks the bed).
    #[arg(long, conflicts_with = "kernel")]
    linux: bool,
    /// Guest type (pvh needs the kernel's PVH entry).
    #[arg(long = "xen-type", value_enum, default_value = "pv")]
    xen_type: XenType,
    /// The kernel file: an ELF with Xen PV notes, or a Linux bzImage.
    #[arg(required_unless_present = "linux")]
    kernel: Option<PathBuf>,
    /// The guest's command line, verbatim (words joined by spaces).
    #[arg(last = true, value_name = "CMDLINE")]
    cmdline: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// Project folder (with unikit.toml and Cargo.toml).
    #[arg(short = 'C', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Build only for this platform.
    #[arg(long = "plat", value_name = "P")]
    plat: Option<String>,
    /// Do not show cargo's progress.
    #[arg(short, long)]
    quiet: bool,
    /// Build the loader image for an x86_64 Linux program, with FILE (and --rootfs) in its initrd; no project needed.
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    exec: Option<PathBuf>,
    /// With --exec: the folder whose contents become / in the guest.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Where the images go (default: DIR/build; ./build with --exec).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// With --exec: an environment variable for the program, written into the command-line note. Repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = cmdline::parse_env_flag)]
    env: Vec<(String, String)>,
    /// With --exec: the program's arguments, written into the command-line note.
    #[arg(last = true, value_name = "ARGS")]
    args: Option<Vec<String>>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Project folder (with unikit.toml and Cargo.toml).
    #[arg(short = 'C', value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Platform to run on (default: the first target of unikit.toml this host can run).
    #[arg(long = "plat", value_name = "P")]
    plat: Option<String>,
    /// Guest memory, e.g. 64M, 512K, 1G (plain number = MiB).
    #[arg(short = 'm', long = "memory", value_name = "MEM", value_parser = Memory::parse_arg)]
    memory: Option<Memory>,
    /// QEMU accelerator (default: kvm when /dev/kvm works, else tcg).
    #[arg(long, value_enum)]
    accel: Option<Accel>,
    /// Firmware: for qemu qboot (fast; the default when installed) or seabios; for vmware seabios (default) or efi (OVMF).
    #[arg(long, value_enum)]
    firmware: Option<Firmware>,
    /// Boot a vmware or hyperv image in QEMU shaped like that hypervisor (where it is not installed).
    #[arg(long)]
    testbed: bool,
    /// Hyper-V generation for --plat hyperv --testbed: 1 (BIOS, IDE, DEC 21140 NIC) or 2 (UEFI; default).
    #[arg(long = "gen", value_name = "1|2", value_parser = clap::value_parser!(u8).range(1..=2))]
    generation: Option<u8>,
    /// QEMU machine: q35 (PCI devices), microvm (virtio-mmio, Firecracker's shape) or pc (i440fx;
    /// --disk on IDE: Hyper-V Generation 1's shape).
    #[arg(long, value_enum)]
    machine: Option<Machine>,
    /// Number of vCPUs (fc only: 1 or an even number up to 32; default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=32))]
    cpus: Option<u8>,
    /// The Firecracker binary for --plat fc (default: `firecracker` on PATH); implies --plat fc.
    #[arg(long, value_name = "PATH")]
    firecracker: Option<PathBuf>,
    /// The Solo5 hvt tender for --plat solo5: `unikit-hvt` (default, found next to unikit or on PATH),
    /// `solo5-hvt` (upstream's, on PATH) or a path; implies --plat solo5.
    #[arg(long, value_name = "unikit-hvt|solo5-hvt|PATH")]
    tender: Option<PathBuf>,
    /// Run xen images in the Xen test bed: a real Xen 4.17 with a Linux dom0 from Debian's packages,
    /// under QEMU TCG (slow, ~30 s; downloaded once into ~/.cache/unikit/xen-testbed); implies --plat xen.
    #[arg(long)]
    xen_testbed: bool,
    /// Xen guest type: pv (default; needs no hardware virtualization) or pvh (needs VT-x/AMD-V; works in the test bed).
    #[arg(long, value_enum, value_name = "pv|pvh")]
    xen_type: Option<XenType>,
    /// Forward TCP 127.0.0.1:HOST to the guest's port GUEST (QEMU user networking; on fc and solo5 a tap in a private network namespace). Repeatable.
    #[arg(short = 'p', long = "publish", value_name = "HOST:GUEST", value_parser = devices::parse_publish)]
    publish: Vec<(u16, u16)>,
    /// Network: `user` (QEMU user networking) or `tap:NAME` (an existing tap interface).
    #[arg(long, value_name = "user|tap:NAME", value_parser = devices::parse_net)]
    net: Option<devices::Net>,
    /// NIC model: for qemu on q35 or pc virtio (default), vmxnet3 (VMware's), e1000 (Intel 82540EM), e1000e (Intel 82574L)
    /// or tulip (DEC 21143, Hyper-V generation 1's legacy adapter);
    /// for vmware vmxnet3 (default), e1000 or e1000e.
    #[arg(long, value_enum, value_name = "virtio|vmxnet3|e1000|e1000e|tulip")]
    nic: Option<devices::Nic>,
    /// Guest IPv4 address, `ADDR/PREFIX[:GATEWAY]` or `dhcp` (default: DHCP; 10.0.2.15/24 with user networking).
    #[arg(long, value_name = "ADDR/PREFIX[:GW]", value_parser = devices::parse_ip)]
    ip: Option<String>,
    /// Attach FILE (raw image) as a block device. Repeatable.
    #[arg(long, value_name = "FILE")]
    disk: Vec<PathBuf>,
    /// The disks' controller on qemu q35: virtio (virtio-blk, the default) or pvscsi (VMware's paravirtual SCSI).
    #[arg(long = "disk-bus", value_enum, value_name = "virtio|pvscsi")]
    disk_bus: Option<devices::DiskBus>,
    /// Pack DIR into a cpio initrd and mount it as the root file system.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Run an x86_64 Linux program (static, static-pie or dynamic with --rootfs) in the loader image; no project needed.
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    exec: Option<PathBuf>,
    /// An environment variable for the app (over the manifest's `env`). Repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = cmdline::parse_env_flag)]
    env: Vec<(String, String)>,
    /// No build output and no kernel boot log (adds `unikit.quiet`).
    #[arg(short, long)]
    quiet: bool,
    /// Application arguments (replace the manifest's `args`).
    #[arg(last = true, value_name = "ARGS")]
    args: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XenType {
    Pv,
    Pvh,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_TOOL_FAILURE)
            } else {
                ExitCode::SUCCESS // --help, --version
            };
        }
    };
    let result = match cli.command {
        Command::Build(a) => build::command(&build::Options {
            dir: a.dir,
            plat: a.plat,
            quiet: a.quiet,
            exec: a.exec,
            rootfs: a.rootfs,
            out: a.out,
            env: a.env,
            args: a.args,
        })
        .map(|()| 0),
        Command::Run(a) => run::command(run::Options {
            dir: a.dir,
            plat: a.plat,
            memory: a.memory,
            accel: a.accel,
            firmware: a.firmware,
            testbed: a.testbed,
            generation: a.generation,
            machine: a.machine,
            cpus: a.cpus,
            firecracker: a.firecracker,
            tender: a.tender,
            devices: devices::Devices {
                publish: a.publish,
                net: a.net,
                nic: a.nic.unwrap_or_default(),
                ip: a.ip,
                disks: a.disk,
                disk_bus: a.disk_bus.unwrap_or_default(),
                rootfs: a.rootfs,
                initrd_file: None,
            },
            xen_testbed: a.xen_testbed,
            xen_type: a.xen_type.map(|t| match t {
                XenType::Pv => run::xen::GuestType::Pv,
                XenType::Pvh => run::xen::GuestType::Pvh,
            }),
            quiet: a.quiet,
            args: a.args,
            exec: a.exec,
            env: a.env,
        }),
        Command::XenTestbed(a) => run::xen::boot_file(
            match &a.kernel {
                Some(k) => run::xen::DevKernel::File(k),
                None => run::xen::DevKernel::Linux,
            },
            a.ramdisk.as_deref(),
            a.memory.unwrap_or(if a.linux {
                Memory::parse("256M").unwrap_or(Memory::DEFAULT)
            } else {
                Memory::DEFAULT
            }),
            &a.cmdline.join(" "),
            &a.publish,
            &a.disk,
            match a.xen_type {
                XenType::Pv => run::xen::GuestType::Pv,
                XenType::Pvh => run::xen::GuestType::Pvh,
            },
        ),
        Command::VmrunConsole { vmrun, vmx, log } => run::vmrun_console(&vmrun, &vmx, &log),
        Command::ReapNetns { name, ip } => run::reap_netns(&name, &ip).map(|()| 0),
        Command::ReapXl { xl, domain } => run::reap_xen(&xl, &domain).map(|()| 0),
        Command::Platforms => {
            platform::print_table();
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e);
            ExitCode::from(EXIT_TOOL_FAILURE)
        }
    }
}
