//! `unikit run`: build the image, boot it, and exit with the app's exit code.

mod linuxu;
mod qemu;

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::Accel;
use crate::build::{self, Project};
use crate::cmdline;
use crate::manifest::Manifest;
use crate::memory::Memory;
use crate::platform::{self, Platform, target_name};

pub struct Options {
    pub dir: PathBuf,
    pub plat: Option<String>,
    pub memory: Option<Memory>,
    pub accel: Option<Accel>,
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
        None => pick(&manifest)?,
    };
    if opts.accel.is_some() && plat != Platform::Qemu {
        bail!("--accel only applies to the qemu platform, not {plat}");
    }
    // Check the host before spending time on a build.
    platform::host_can_run(plat)?;
    let qemu = match plat {
        Platform::Qemu => Some((
            platform::find_qemu()?,
            qemu::choose_accel(opts.accel, platform::probe_kvm())?,
        )),
        _ => None,
    };

    let memory = opts.memory.unwrap_or(manifest.memory);
    let args = opts.args.clone().unwrap_or_else(|| manifest.args.clone());
    let mut kernel_args = manifest.kernel_args.clone();
    if opts.quiet && !kernel_args.iter().any(|a| a == cmdline::QUIET) {
        kernel_args.push(cmdline::QUIET.to_string());
    }
    let line = cmdline::build(&kernel_args, &manifest.env, &args)?;

    let project = Project::find(&opts.dir)?;
    let image = build::build(&opts.dir, &project, &manifest, plat, opts.quiet)?;
    if !opts.quiet {
        eprintln!("{}", image.describe());
    }

    match qemu {
        Some((qemu_path, (accel, warning))) => {
            if let Some(w) = warning {
                crate::error::warn(w);
            }
            let bios = std::path::Path::new(platform::QBOOT_ROM);
            let cfg = qemu::Config {
                image: &image.path,
                memory,
                cmdline: &line,
                accel,
                bios: bios.is_file().then_some(bios),
            };
            qemu::run(&qemu_path, &cfg)
        }
        None => linuxu::run(&image.path, &args, &manifest.env, memory, &kernel_args),
    }
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
    bail!(
        "none of the targets in unikit.toml can run on this host ({})",
        why.join("; ")
    )
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
