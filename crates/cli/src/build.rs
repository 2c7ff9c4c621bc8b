//! `unikit build`: compile the app with the kernel platform crate and copy
//! the image to `DIR/build/<name>_<plat>-x86_64`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use crate::error::{hinted, warn};
use crate::image::{hyperv, vmware};
use crate::manifest::Manifest;
use crate::platform::{self, Platform, target_name};
use crate::{elf, exec};

pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// What `unikit build` was asked.
pub struct Options {
    pub dir: PathBuf,
    pub plat: Option<String>,
    pub quiet: bool,
    /// `--exec FILE`: build the loader image and the program's initrd.
    pub exec: Option<PathBuf>,
    pub rootfs: Option<PathBuf>,
    /// `--out DIR`: where the images go (default: `DIR/build`, `./build` with --exec).
    pub out: Option<PathBuf>,
    /// `-e KEY=VALUE` and `-- ARGS` (with --exec: baked into the command-line note).
    pub env: Vec<(String, String)>,
    pub args: Option<Vec<String>>,
}

/// `unikit build [-C DIR] [--plat P]` or `unikit build --exec FILE ...`.
pub fn command(opts: &Options) -> Result<()> {
    // A bad --plat is reported before anything about the project.
    if let Some(p) = &opts.plat {
        platform::parse_supported(p)?;
    }
    let job = match &opts.exec {
        Some(file) => {
            Some(exec::Job::new(exec::Source::Flags { file, rootfs: opts.rootfs.as_deref() }, opts.plat.as_deref())?)
        }
        None => None,
    };
    let manifest = match &job {
        Some(j) => j.manifest.clone(),
        None => Manifest::load(&opts.dir)?,
    };
    let job = match job {
        None if manifest.exec.is_some() => Some(exec::Job::new(
            exec::Source::Project { dir: &opts.dir, manifest: &manifest, rootfs: opts.rootfs.as_deref() },
            opts.plat.as_deref(),
        )?),
        j => j,
    };
    if job.is_none() && (!opts.env.is_empty() || opts.args.is_some()) {
        bail!(
            "-e and -- ARGS only apply to `unikit build --exec` (an app's defaults are `env` and `args` in unikit.toml)"
        );
    }
    let manifest = job.as_ref().map_or(manifest, |j| j.manifest.clone());
    let plats = match &opts.plat {
        Some(p) => vec![selected(&manifest, p)?],
        None => {
            let (ok, skipped): (Vec<Platform>, Vec<Platform>) = manifest.targets.iter().partition(|p| p.supported());
            for p in skipped {
                warn(format!(
                    "skipping target {}: platform '{p}' is not supported by this version yet",
                    target_name(p)
                ));
            }
            if ok.is_empty() {
                bail!(
                    "none of the targets in unikit.toml can be built by this version of unikit (it supports qemu, fc, xen, linuxu and solo5)"
                );
            }
            ok
        }
    };
    let crate_dir = job.as_ref().map_or(opts.dir.clone(), |j| j.loader.clone());
    let out_dir = match (&opts.out, &opts.exec) {
        (Some(o), _) => o.clone(),
        (None, Some(_)) => PathBuf::from("build"),
        (None, None) => opts.dir.join("build"),
    };
    let stem = job.as_ref().map_or(manifest.name.clone(), |j| j.stem.clone());
    let project = Project::find(&crate_dir)?;
    // Ignore a closed stdout (`unikit build | head -1`): the build happened.
    use std::io::Write;
    for p in plats {
        let dest = image_path(&out_dir, &stem, p);
        let image = build(&project, &manifest, p, &manifest.solo5_devices, opts.quiet, &dest)?;
        let _ = writeln!(std::io::stdout(), "{}", image.describe());
        let mut boot = None;
        if let Some(j) = &job {
            let (initrd, cmdline) = j.write_beside(&dest, &opts.env, opts.args.as_deref())?;
            let _ = writeln!(
                std::io::stdout(),
                "  with {} (the initrd) and {} (its kernel command line)",
                initrd.display(),
                cmdline.display()
            );
            let line =
                std::fs::read_to_string(&cmdline).with_context(|| format!("cannot read {}", cmdline.display()))?;
            boot = Some((Some(initrd), line.trim_end().to_string()));
        }
        if matches!(p, Platform::Vmware | Platform::Hyperv) {
            // A firmware-booted VM gets no command line from outside: the
            // manifest's (or the program's) is baked into its disk, with the
            // manifest's rootfs as the initrd.
            let (initrd, line) = match boot {
                Some(b) => b,
                None => {
                    let rootfs = manifest.rootfs.as_ref().map(|r| opts.dir.join(&r.path));
                    let devices = crate::devices::Devices { rootfs, ..Default::default() };
                    let cpio = out_dir.join(format!("{stem}.rootfs.cpio"));
                    let rd = devices.initrd(&cpio, manifest.memory.bytes())?;
                    (rd, crate::cmdline::build(&manifest.kernel_args, &manifest.env, &manifest.args)?)
                }
            };
            let written = if p == Platform::Vmware {
                let vm = vmware::Vm {
                    name: &stem,
                    memory_mib: vmware::vmware_memory(manifest.memory.bytes()),
                    firmware: vmware::Firmware::Efi,
                    nic: Some(vmware::Nic::Vmxnet3),
                    disk: "",
                };
                let set = vmware::write_set(&dest, initrd.as_deref(), &line, &vm, true, opts.quiet)?;
                [Some(set.vmdk), Some(set.vmx), set.ova]
            } else {
                let vm = hyperv::Vm {
                    name: &stem,
                    memory_mib: hyperv::hyperv_memory(manifest.memory.bytes()),
                    generation: hyperv::Generation::Two,
                    disk: "",
                };
                let set = hyperv::write_set(&dest, initrd.as_deref(), &line, &vm, true, opts.quiet)?;
                [Some(set.vhdx), set.vhd, Some(set.script)]
            };
            for f in written.iter().flatten() {
                let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
                let _ = writeln!(std::io::stdout(), "  wrote {} ({} KiB)", f.display(), size.div_ceil(1024));
            }
        }
    }
    Ok(())
}

/// Where the image of `name` for `plat` goes in `out_dir`.
pub fn image_path(out_dir: &Path, name: &str, plat: Platform) -> PathBuf {
    out_dir.join(format!("{name}_{plat}-x86_64"))
}

/// Resolve `--plat P` against the manifest's targets.
pub fn selected(manifest: &Manifest, plat: &str) -> Result<Platform> {
    let p = platform::parse_supported(plat)?;
    if !manifest.targets.contains(&p) {
        return Err(hinted(
            format!("target {} is not listed in unikit.toml", target_name(p)),
            format!("add \"{}\" to `targets` in unikit.toml", target_name(p)),
        ));
    }
    Ok(p)
}

/// The app's Cargo package, as `cargo metadata` sees it.
#[derive(Debug, Clone)]
pub struct Project {
    pub manifest_path: PathBuf,
    pub bin: String,
    pub target_dir: PathBuf,
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn spawn_error(program: &OsString, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        hinted(format!("{} not found", program.to_string_lossy()), "install Rust with rustup: https://rustup.rs")
    } else {
        anyhow!("cannot run {}: {e}", program.to_string_lossy())
    }
}

impl Project {
    pub fn find(dir: &Path) -> Result<Project> {
        let manifest_path = dir.join("Cargo.toml");
        if !manifest_path.is_file() {
            return Err(hinted(
                format!("no Cargo.toml in {}", dir.display()),
                "the app is a Rust binary crate next to unikit.toml, depending on the `unikit` crate",
            ));
        }
        let program = cargo();
        let out = Command::new(&program)
            .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
            .arg(&manifest_path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_error(&program, e))?;
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            bail!("cannot read the Cargo project {} (cargo metadata failed)", manifest_path.display());
        }
        Project::from_metadata(&out.stdout, &manifest_path)
    }

    /// Pick our package out of `cargo metadata` output.
    pub fn from_metadata(json: &[u8], manifest_path: &Path) -> Result<Project> {
        #[derive(serde::Deserialize)]
        struct Meta {
            packages: Vec<Package>,
            target_directory: PathBuf,
        }
        #[derive(serde::Deserialize)]
        struct Package {
            name: String,
            manifest_path: PathBuf,
            targets: Vec<Target>,
        }
        #[derive(serde::Deserialize)]
        struct Target {
            name: String,
            kind: Vec<String>,
        }
        let meta: Meta = serde_json::from_slice(json).context("cannot understand the output of cargo metadata")?;
        let want = canonical(manifest_path);
        let pkg = meta.packages.into_iter().find(|p| canonical(&p.manifest_path) == want).ok_or_else(|| {
            anyhow!("{} does not define a package (is it only a workspace root?)", manifest_path.display())
        })?;
        let bins: Vec<String> =
            pkg.targets.into_iter().filter(|t| t.kind.iter().any(|k| k == "bin")).map(|t| t.name).collect();
        let bin = match bins.as_slice() {
            [] => {
                return Err(hinted(
                    format!("package '{}' has no binary target", pkg.name),
                    "a unikit app is a binary crate: add src/main.rs",
                ));
            }
            [one] => one.clone(),
            many => match many.iter().find(|b| **b == pkg.name) {
                Some(b) => b.clone(),
                None => {
                    bail!("package '{}' has several binary targets ({}); unikit needs one", pkg.name, many.join(", "))
                }
            },
        };
        Ok(Project { manifest_path: manifest_path.to_path_buf(), bin, target_dir: meta.target_directory })
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// The exact `cargo build` invocation for one platform (program excluded).
pub struct CargoBuild {
    pub args: Vec<OsString>,
    pub env: Vec<(&'static str, OsString)>,
    pub target_dir: PathBuf,
}

/// The environment variable that tells the solo5 platform crate which
/// devices to declare in the image's Solo5 manifest (`net:NAME,block:NAME`).
pub const SOLO5_DEVICES_ENV: &str = "UNIKIT_SOLO5_DEVICES";

pub fn cargo_build(
    project: &Project,
    features: &[String],
    plat: Platform,
    solo5_devices: &[String],
    quiet: bool,
) -> CargoBuild {
    let k = plat.kernel_plat();
    let target_dir = project.target_dir.join("unikit").join(k);
    let mut args: Vec<OsString> = vec!["build".into(), "--release".into(), "--manifest-path".into()];
    args.push(project.manifest_path.clone().into());
    args.extend(["--target".into(), GUEST_TARGET.into(), "--target-dir".into()]);
    args.push(target_dir.clone().into());
    args.extend(["--features".into(), format!("unikit/plat-{k}").into()]);
    if !features.is_empty() {
        args.extend(["--features".into(), features.join(",").into()]);
    }
    if quiet {
        args.push("--quiet".into());
    }
    let rustflags = [
        "-Crelocation-model=static".to_string(),
        "-Cforce-frame-pointers=yes".to_string(),
        format!("-Clink-arg=-Tunikit-{k}.ld"),
    ];
    // The x86 VM image is loaded by physical address (QEMU, Firecracker,
    // Xen, our firmware loaders), never mmap()ed: its segments need no
    // page-aligned file offsets, and without them each segment boundary no
    // longer pads the file to a page (8 KiB of 74 on hello). linuxu images
    // are mmap()ed by Linux and keep the padding.
    let page = (k == "kvm").then(|| "-Clink-arg=-zmax-page-size=16".to_string());
    let rustflags = rustflags.into_iter().chain(page).collect::<Vec<_>>().join("\x1f");
    let mut env = vec![
        ("CARGO_ENCODED_RUSTFLAGS", rustflags.into()),
        ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s".into()),
        ("CARGO_PROFILE_RELEASE_LTO", "true".into()),
        ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1".into()),
        ("CARGO_PROFILE_RELEASE_DEBUG", "false".into()),
        ("CARGO_PROFILE_RELEASE_PANIC", "abort".into()),
        // Keep the symbol table (but not the DWARF that the prebuilt core
        // library brings): `build` writes a stripped image itself and keeps
        // this one (`.sym`) to symbolize crash backtraces.
        ("CARGO_PROFILE_RELEASE_STRIP", "debuginfo".into()),
    ];
    if plat == Platform::Solo5 {
        // Always set (possibly empty), so that a stray value in the caller's
        // environment never leaks into the image.
        env.push((SOLO5_DEVICES_ENV, solo5_devices.join(",").into()));
    }
    CargoBuild { args, env, target_dir }
}

/// A built image.
pub struct Image {
    pub path: PathBuf,
    pub size: u64,
    /// The same image with its symbol table (`<path>.sym`).
    pub symbols: PathBuf,
}

impl Image {
    pub fn describe(&self) -> String {
        format!("built {} ({} KiB)", self.path.display(), self.size.div_ceil(1024))
    }
}

/// Build the image for one platform into `dest` (and its symbols beside it).
pub fn build(
    project: &Project,
    manifest: &Manifest,
    plat: Platform,
    solo5_devices: &[String],
    quiet: bool,
    dest: &Path,
) -> Result<Image> {
    let dir = project.manifest_path.parent().unwrap_or(Path::new("."));
    let inv = cargo_build(project, &manifest.features, plat, solo5_devices, quiet);
    let program = cargo();
    let mut cmd = Command::new(&program);
    cmd.args(&inv.args).envs(inv.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(Stdio::inherit());
    // With --quiet, keep cargo's messages and show them only on failure.
    cmd.stderr(if quiet { Stdio::piped() } else { Stdio::inherit() });
    let out = cmd.output().map_err(|e| spawn_error(&program, e))?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let msg = format!("building {} for {} failed", manifest.name, target_name(plat));
        if !guest_target_installed(dir) {
            return Err(hinted(
                format!("{msg}: the Rust target {GUEST_TARGET} is not installed"),
                format!("rustup target add {GUEST_TARGET}"),
            ));
        }
        bail!(msg);
    }

    let built = inv.target_dir.join(GUEST_TARGET).join("release").join(&project.bin);
    let out_dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = dest.file_name().unwrap_or_default().to_string_lossy();
    let sym = out_dir.join(format!("{file}.sym"));
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let unstripped = std::fs::read(&built).with_context(|| format!("cannot read {}", built.display()))?;
    let mode = std::fs::metadata(&built).with_context(|| format!("cannot read {}", built.display()))?.permissions();
    let image = match elf::strip(&unstripped) {
        Ok(stripped) => stripped,
        Err(why) => {
            warn(format!("cannot strip {} ({why}); using the unstripped image", built.display()));
            unstripped.clone()
        }
    };
    // The symbols first: an image is never newer than its `.sym`.
    write_atomic(&sym, &unstripped, &mode)?;
    write_atomic(dest, &image, &mode)?;
    Ok(Image { path: dest.to_path_buf(), size: image.len() as u64, symbols: sym })
}

/// Write `dest` through a temporary file and a rename, so that a running
/// image is never overwritten in place and a reader never sees half a file.
pub fn write_atomic(dest: &Path, data: &[u8], mode: &std::fs::Permissions) -> Result<()> {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, data)
        .and_then(|()| std::fs::set_permissions(&tmp, mode.clone()))
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|()| std::fs::rename(&tmp, dest).with_context(|| format!("cannot write {}", dest.display())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Is the guest target's standard library installed for the toolchain of `dir`?
/// (Best effort: if rustc cannot tell us, assume it is.)
fn guest_target_installed(dir: &Path) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).current_dir(dir).stdin(Stdio::null()).output()
    else {
        return true;
    };
    if !out.status.success() {
        return true;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot.join("lib/rustlib").join(GUEST_TARGET).join("lib").is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        Project { manifest_path: "/p/Cargo.toml".into(), bin: "hello".into(), target_dir: "/ws/target".into() }
    }

    #[test]
    fn cargo_invocation() {
        let b = cargo_build(&project(), &["net".into(), "fs".into()], Platform::Qemu, &["net:service".into()], false);
        let args: Vec<String> = b.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "build",
                "--release",
                "--manifest-path",
                "/p/Cargo.toml",
                "--target",
                "x86_64-unknown-none",
                "--target-dir",
                "/ws/target/unikit/kvm",
                "--features",
                "unikit/plat-kvm",
                "--features",
                "net,fs"
            ]
        );
        assert_eq!(b.target_dir, Path::new("/ws/target/unikit/kvm"));
        let flags = &b.env.iter().find(|(k, _)| *k == "CARGO_ENCODED_RUSTFLAGS").unwrap().1;
        assert_eq!(
            flags.to_str().unwrap(),
            "-Crelocation-model=static\x1f-Cforce-frame-pointers=yes\x1f-Clink-arg=-Tunikit-kvm.ld\x1f-Clink-arg=-zmax-page-size=16"
        );
        assert!(b.env.contains(&("CARGO_PROFILE_RELEASE_PANIC", "abort".into())));
        assert!(b.env.contains(&("CARGO_PROFILE_RELEASE_STRIP", "debuginfo".into())));
        // Only solo5 builds get the device list.
        assert!(!b.env.iter().any(|(k, _)| *k == SOLO5_DEVICES_ENV));
    }

    #[test]
    fn cargo_invocation_solo5() {
        let devs = ["net:service".to_string(), "block:storage".to_string()];
        let b = cargo_build(&project(), &[], Platform::Solo5, &devs, false);
        let args: Vec<String> = b.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.ends_with(&["--features".into(), "unikit/plat-solo5".into()]), "{args:?}");
        assert_eq!(b.target_dir, Path::new("/ws/target/unikit/solo5"));
        let flags = &b.env.iter().find(|(k, _)| *k == "CARGO_ENCODED_RUSTFLAGS").unwrap().1;
        assert!(flags.to_str().unwrap().ends_with("-Clink-arg=-Tunikit-solo5.ld"));
        assert!(b.env.contains(&(SOLO5_DEVICES_ENV, "net:service,block:storage".into())));
        let b = cargo_build(&project(), &[], Platform::Solo5, &[], false);
        assert!(b.env.contains(&(SOLO5_DEVICES_ENV, "".into())));
    }

    #[test]
    fn cargo_invocation_linuxu_quiet_no_features() {
        let b = cargo_build(&project(), &[], Platform::Linuxu, &[], true);
        let args: Vec<String> = b.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.ends_with(&["--features".into(), "unikit/plat-linuxu".into(), "--quiet".into()]), "{args:?}");
        assert_eq!(b.target_dir, Path::new("/ws/target/unikit/linuxu"));
    }

    #[test]
    fn metadata_picks_package_and_bin() {
        let json = br#"{"packages":[
            {"name":"other","manifest_path":"/elsewhere/Cargo.toml","targets":[{"name":"other","kind":["bin"]}]},
            {"name":"hello","manifest_path":"/p/Cargo.toml","targets":[
                {"name":"hello","kind":["lib"]},{"name":"tool","kind":["bin"]}]}],
            "target_directory":"/ws/target","workspace_root":"/ws"}"#;
        let p = Project::from_metadata(json, Path::new("/p/Cargo.toml")).unwrap();
        assert_eq!(p.bin, "tool");
        assert_eq!(p.target_dir, Path::new("/ws/target"));
    }

    #[test]
    fn metadata_errors() {
        let no_bin = br#"{"packages":[{"name":"hello","manifest_path":"/p/Cargo.toml","targets":[{"name":"hello","kind":["lib"]}]}],"target_directory":"/t"}"#;
        let e = Project::from_metadata(no_bin, Path::new("/p/Cargo.toml")).unwrap_err();
        assert_eq!(e.to_string(), "package 'hello' has no binary target");
        let none = br#"{"packages":[],"target_directory":"/t"}"#;
        assert!(Project::from_metadata(none, Path::new("/p/Cargo.toml")).is_err());
        assert!(Project::from_metadata(b"garbage", Path::new("/p/Cargo.toml")).is_err());
    }
}
