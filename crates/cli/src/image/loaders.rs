//! unikit's own firmware loaders, built from the source tree this tool was
//! built from (as the `--exec` loader is): `crates/boot/bios` (boot sector
//! and stage 2) and `crates/boot/uefi` (BOOTX64.EFI). Both load the same
//! PVH kernel image QEMU and Firecracker boot, and enter it the PVH way.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::error::hinted;

pub struct Loaders {
    /// The BIOS loader's ELF (boot sector and stage 2 inside).
    pub bios: Vec<u8>,
    /// The UEFI application.
    pub uefi: Vec<u8>,
}

const BIOS: (&str, &str, &str) = ("unikit-boot-bios", "x86_64-unknown-none", "unikit-boot-bios");
const UEFI: (&str, &str, &str) = ("unikit-boot-uefi", "x86_64-unknown-uefi", "unikit-boot-uefi.efi");

/// The workspace that holds the loaders.
fn workspace() -> Result<PathBuf> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !ws.join("crates/boot/bios/Cargo.toml").is_file() || !ws.join("crates/boot/uefi/Cargo.toml").is_file() {
        bail!(
            "the firmware loaders' sources are missing from {} (unikit builds crates/boot of the source tree it was built from: keep that tree)",
            ws.display()
        );
    }
    Ok(ws.canonicalize().unwrap_or(ws))
}

/// Builds both loaders (cargo makes this a no-op when nothing changed).
pub fn build(quiet: bool) -> Result<Loaders> {
    let ws = workspace()?;
    let target_dir = ws.join("target").join("unikit").join("boot");
    let mut out = Vec::new();
    for (package, target, file) in [BIOS, UEFI] {
        let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut cmd = Command::new(&program);
        cmd.args(["build", "--release", "-p", package, "--target", target, "--manifest-path"])
            .arg(ws.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
            .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
            .env("CARGO_PROFILE_RELEASE_LTO", "true")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if quiet {
            cmd.arg("--quiet");
        }
        let o = cmd.output().with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
        if !o.status.success() {
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
            let sysroot_has_target = Command::new("rustc")
                .args(["--print", "target-libdir", "--target", target])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .is_some_and(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir());
            if !sysroot_has_target {
                return Err(hinted(
                    format!("building the {package} loader failed: the Rust target {target} is not installed"),
                    format!("rustup target add {target}"),
                ));
            }
            bail!("building the {package} loader failed");
        }
        let path = target_dir.join(target).join("release").join(file);
        out.push(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    let uefi = out.pop().unwrap_or_default();
    let bios = out.pop().unwrap_or_default();
    Ok(Loaders { bios, uefi })
}
