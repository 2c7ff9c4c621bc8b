//! Platforms: names, what this version supports, and what this host can run.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::error::hinted;

pub use crate::tools::{QEMU, is_executable, which};
pub const QBOOT_ROM: &str = "/usr/share/qemu/qboot.rom";
pub const FIRECRACKER: &str = "firecracker";
/// unikit's Solo5 hvt tender (crates/tender), and upstream's.
pub const UNIKIT_HVT: &str = "unikit-hvt";
pub const SOLO5_HVT: &str = "solo5-hvt";
const KVM_DEV: &str = "/dev/kvm";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    Linuxu,
    Qemu,
    Fc,
    Xen,
    Solo5,
    Vmware,
    Hyperv,
}

impl Platform {
    /// All platforms of the mission, in display order.
    pub const ALL: [Platform; 7] = [
        Platform::Linuxu,
        Platform::Qemu,
        Platform::Fc,
        Platform::Xen,
        Platform::Solo5,
        Platform::Vmware,
        Platform::Hyperv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Platform::Linuxu => "linuxu",
            Platform::Qemu => "qemu",
            Platform::Fc => "fc",
            Platform::Xen => "xen",
            Platform::Solo5 => "solo5",
            Platform::Vmware => "vmware",
            Platform::Hyperv => "hyperv",
        }
    }

    /// Parse a platform name (`kvm` is an alias of `qemu`).
    pub fn parse(s: &str) -> Result<Platform, String> {
        if s == "kvm" {
            return Ok(Platform::Qemu);
        }
        Platform::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let known: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
            format!("unknown platform '{s}' (known: {})", known.join(", "))
        })
    }

    /// Can this version of unikit build and run images for it?
    pub fn supported(self) -> bool {
        matches!(
            self,
            Platform::Qemu
                | Platform::Linuxu
                | Platform::Fc
                | Platform::Solo5
                | Platform::Xen
                | Platform::Vmware
                | Platform::Hyperv
        )
    }

    pub fn check_supported(self) -> Result<()> {
        if !self.supported() {
            bail!("platform '{self}' is not supported by this version of unikit yet");
        }
        Ok(())
    }

    /// The kernel platform crate / cargo feature suffix (`unikit/plat-<k>`).
    /// Firecracker boots the same PVH image as QEMU, and Xen the same image
    /// through its Xen PV notes.
    pub fn kernel_plat(self) -> &'static str {
        match self {
            Platform::Qemu | Platform::Fc | Platform::Xen | Platform::Vmware | Platform::Hyperv => "kvm",
            other => other.name(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Resolve a `--plat` value to a platform this version can build.
pub fn parse_supported(s: &str) -> Result<Platform> {
    let p = Platform::parse(s).map_err(anyhow::Error::msg)?;
    p.check_supported()?;
    Ok(p)
}

pub fn host_is_linux_x86_64() -> bool {
    cfg!(all(target_os = "linux", target_arch = "x86_64"))
}

/// Find QEMU or explain how to get it.
pub fn find_qemu() -> Result<PathBuf> {
    which(QEMU).ok_or_else(|| hinted(format!("{QEMU} not found"), "install it with: apt-get install qemu-system-x86"))
}

/// Where to get Firecracker, and what to use meanwhile (one line).
pub const FIRECRACKER_HINT: &str = "download a release binary (release-vX.Y.Z-x86_64.tgz, file firecracker-vX.Y.Z-x86_64) from \
https://github.com/firecracker-microvm/firecracker/releases and put it on PATH as `firecracker` or pass --firecracker PATH, \
or build it from source (cargo build --release -p firecracker); meanwhile `unikit run --plat qemu --machine microvm` \
boots the same image in Firecracker's shape";

/// Find Firecracker (`--firecracker PATH`, else `firecracker` on PATH) or explain how to get it.
pub fn find_firecracker(explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(p) if is_executable(p) => Ok(p.to_path_buf()),
        Some(p) if p.exists() => Err(hinted(
            format!("--firecracker {}: not an executable file", p.display()),
            "chmod +x it, or point --firecracker at the firecracker binary",
        )),
        Some(p) => Err(hinted(format!("--firecracker {}: no such file", p.display()), FIRECRACKER_HINT)),
        None => which(FIRECRACKER).ok_or_else(|| {
            hinted(
                format!("{FIRECRACKER} not found on PATH (the fc platform runs images with Firecracker)"),
                FIRECRACKER_HINT,
            )
        }),
    }
}

/// Firecracker has no software emulation: it needs a working /dev/kvm.
pub fn check_kvm_for_firecracker() -> Result<()> {
    probe_kvm().map_err(|why| {
        hinted(
            format!("Firecracker needs KVM, and KVM is not usable: {why}"),
            "run on a host with /dev/kvm, or use `unikit run --plat qemu --machine microvm` (TCG works there)",
        )
    })
}

/// Where to get a tender for the solo5 platform (one line).
pub const TENDER_HINT: &str = "build it with `cargo build --release -p unikit-hvt` (it lands next to `unikit` in target/release), \
or put `unikit-hvt` on PATH; `--tender solo5-hvt` uses upstream Solo5's tender if it is on PATH";

/// Find the hvt tender: `--tender solo5-hvt` (upstream's, on PATH),
/// `--tender PATH`, or by default `unikit-hvt` next to this `unikit` binary
/// (target/{debug,release}) or on PATH.
pub fn find_tender(explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(p) if p == Path::new(SOLO5_HVT) => which(SOLO5_HVT).ok_or_else(|| {
            hinted(
                format!("--tender {SOLO5_HVT}: upstream Solo5's tender is not on PATH"),
                "build Solo5 (git clone https://github.com/Solo5/solo5 && ./configure.sh && make) and put tenders/hvt/solo5-hvt on PATH, \
or leave --tender out to use unikit-hvt",
            )
        }),
        Some(p) if p == Path::new(UNIKIT_HVT) => find_tender(None),
        Some(p) if is_executable(p) => Ok(p.to_path_buf()),
        Some(p) if p.exists() => Err(hinted(format!("--tender {}: not an executable file", p.display()), TENDER_HINT)),
        Some(p) => Err(hinted(format!("--tender {}: no such file", p.display()), TENDER_HINT)),
        None => next_to_me(UNIKIT_HVT).or_else(|| which(UNIKIT_HVT)).ok_or_else(|| {
            hinted(format!("{UNIKIT_HVT} not found next to unikit or on PATH (the solo5 platform runs images with it)"), TENDER_HINT)
        }),
    }
}

/// An executable in the same folder as the running `unikit` (cargo puts
/// every binary of the workspace in target/{debug,release}).
fn next_to_me(name: &str) -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    // Test binaries live in target/<profile>/deps; the tools one level up.
    [dir.join(name), dir.parent()?.join(name)].into_iter().find(|p| is_executable(p))
}

/// A Solo5 hvt tender is a KVM monitor: it needs a working /dev/kvm.
pub fn check_kvm_for_solo5() -> Result<()> {
    probe_kvm().map_err(|why| {
        hinted(
            format!("the solo5 platform (hvt) needs KVM, and KVM is not usable: {why}"),
            "run on a host with /dev/kvm, or use --plat qemu (TCG works without KVM)",
        )
    })
}

/// Can this host run images of `p`? `Err` holds the reason why not.
pub fn host_can_run(p: Platform) -> Result<()> {
    match p {
        Platform::Qemu => find_qemu().map(|_| ()),
        Platform::Fc => find_firecracker(None).and_then(|_| check_kvm_for_firecracker()),
        Platform::Linuxu if host_is_linux_x86_64() => Ok(()),
        Platform::Linuxu => bail!("linuxu images need a Linux x86_64 host"),
        Platform::Solo5 => find_tender(None).and_then(|_| check_kvm_for_solo5()),
        // Only a real dom0 counts here: the test bed is asked for explicitly.
        Platform::Xen => crate::xenhost::host_mode(false).map(|_| ()),
        Platform::Hyperv => Err(hinted(
            "Hyper-V runs on Windows, not on this host",
            "`unikit run --plat hyperv --testbed` boots the image in QEMU shaped like a Hyper-V VM",
        )),
        // Only VMware itself counts here: the test bed is asked for explicitly.
        Platform::Vmware if which("vmrun").is_some() => Ok(()),
        Platform::Vmware => Err(hinted(
            "VMware Workstation or Fusion (vmrun) is not installed",
            "`unikit run --plat vmware --testbed` boots the image in QEMU shaped like a VMware VM",
        )),
    }
}

/// Is KVM usable? `Err` holds the reason why not.
pub fn probe_kvm() -> Result<(), String> {
    use std::io::ErrorKind;
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(KVM_DEV) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!("{KVM_DEV} does not exist"));
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(format!("no permission to open {KVM_DEV}; add your user to the 'kvm' group"));
        }
        Err(e) => return Err(format!("cannot open {KVM_DEV}: {e}")),
    };
    match kvm_api_version(&file) {
        Ok(12) => Ok(()),
        Ok(v) => Err(format!("{KVM_DEV} reports KVM API version {v}, expected 12")),
        Err(e) => Err(format!("KVM_GET_API_VERSION on {KVM_DEV} failed: {e}")),
    }
}

#[allow(unsafe_code)]
fn kvm_api_version(file: &std::fs::File) -> std::io::Result<i32> {
    use std::os::fd::AsRawFd;
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    // SAFETY: KVM_GET_API_VERSION takes no argument and touches no memory of
    // ours; the fd is valid for the duration of the call (borrowed `file`).
    let r = unsafe { libc::ioctl(file.as_raw_fd(), KVM_GET_API_VERSION, 0) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
}

/// `unikit platforms`: one row per platform, with the reason and the fix.
/// A closed stdout (`unikit platforms | head -1`) just ends the listing.
pub fn print_table() {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = (|| -> std::io::Result<()> {
        writeln!(out, "{:<8} {:<4} DETAILS", "PLATFORM", "RUN")?;
        for p in Platform::ALL {
            let (ok, details) = describe(p);
            writeln!(out, "{:<8} {:<4} {details}", p.name(), if ok { "yes" } else { "no" })?;
        }
        out.flush()
    })();
}

fn describe(p: Platform) -> (bool, String) {
    match p {
        Platform::Linuxu if host_is_linux_x86_64() => (true, "runs as a Linux x86_64 process on this host".into()),
        Platform::Linuxu => (false, "needs a Linux x86_64 host".into()),
        Platform::Qemu => match which(QEMU) {
            None => (false, format!("{QEMU} not found; install it with: apt-get install qemu-system-x86")),
            Some(path) => {
                let accel = match probe_kvm() {
                    Ok(()) if std::path::Path::new("/sys/module/kvm_pvm").exists() => {
                        "accel kvm (/dev/kvm works, but it is kvm_pvm: a guest kernel that does not use PVM's paravirtual ABI is run by KVM's instruction emulator, often slower than --accel tcg)".to_string()
                    }
                    Ok(()) => "accel kvm (/dev/kvm works)".to_string(),
                    Err(why) => format!("accel tcg, slow software emulation ({why})"),
                };
                (true, format!("{} found; {accel}", path.display()))
            }
        },
        Platform::Fc => match which(FIRECRACKER) {
            None => (false, format!("{FIRECRACKER} not on PATH; to get it: {FIRECRACKER_HINT}")),
            Some(path) => match probe_kvm() {
                Ok(()) => (true, format!("{} found; /dev/kvm works", path.display())),
                Err(why) => (false, format!("{} found, but Firecracker needs KVM: {why}", path.display())),
            },
        },
        Platform::Xen => crate::xenhost::describe(),
        Platform::Solo5 => {
            let upstream = match which(SOLO5_HVT) {
                Some(p) => format!("; upstream {SOLO5_HVT} at {} (--tender {SOLO5_HVT})", p.display()),
                None => String::new(),
            };
            let kvm = match probe_kvm() {
                Ok(()) if std::path::Path::new("/sys/module/kvm_pvm").exists() => {
                    Ok("/dev/kvm works (kvm_pvm: guest kernel code is emulated, slow but correct)".to_string())
                }
                Ok(()) => Ok("/dev/kvm works".to_string()),
                Err(why) => Err(format!("the hvt tender needs KVM: {why}")),
            };
            match (find_tender(None), kvm) {
                (Ok(t), Ok(k)) => (true, format!("tender {} found; {k}{upstream}", t.display())),
                (Ok(t), Err(k)) => (false, format!("tender {} found, but {k}", t.display())),
                (Err(_), Ok(k)) if which(SOLO5_HVT).is_some() => {
                    (true, format!("{UNIKIT_HVT} not found, use --tender {SOLO5_HVT}; {k}{upstream}"))
                }
                (Err(_), k) => (
                    false,
                    format!(
                        "{UNIKIT_HVT} not found ({TENDER_HINT}){}",
                        k.err().map(|w| format!("; {w}")).unwrap_or_default()
                    ),
                ),
            }
        }
        Platform::Vmware => {
            let testbed = match (which(QEMU), which("qemu-img")) {
                (Some(_), Some(_)) => "`unikit run --plat vmware --testbed` boots its disk in QEMU shaped like VMware",
                _ => "`--testbed` (QEMU shaped like VMware) needs qemu-system-x86 and qemu-utils",
            };
            match which("vmrun") {
                Some(p) => (
                    true,
                    format!(
                        "vmrun found at {}: runs the image in VMware Workstation or Fusion; {testbed}",
                        p.display()
                    ),
                ),
                None => (
                    false,
                    format!(
                        "VMware Workstation/Fusion (vmrun) not installed; `unikit build --plat vmware` writes the .vmdk, .vmx and .ova; {testbed}"
                    ),
                ),
            }
        }
        Platform::Hyperv => {
            let testbed = match (which(QEMU), which("qemu-img")) {
                (Some(_), Some(_)) => {
                    "`unikit run --plat hyperv --testbed [--gen 1|2]` boots its disk in QEMU shaped like Hyper-V"
                }
                _ => "`--testbed` (QEMU shaped like Hyper-V) needs qemu-system-x86 and qemu-utils",
            };
            (
                false,
                format!(
                    "Hyper-V runs on Windows: `unikit build --plat hyperv` writes the .vhdx, the .vhd for Azure and a PowerShell script that creates the VM; {testbed}"
                ),
            )
        }
    }
}

/// Display helper used in messages: `qemu/x86_64`.
pub fn target_name(p: Platform) -> String {
    format!("{p}/x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.name()), Ok(p));
        }
        assert_eq!(Platform::parse("kvm"), Ok(Platform::Qemu));
        assert_eq!(
            Platform::parse("foo").unwrap_err(),
            "unknown platform 'foo' (known: linuxu, qemu, fc, xen, solo5, vmware, hyperv)"
        );
    }

    #[test]
    fn supported() {
        assert!(parse_supported("qemu").is_ok());
        assert!(parse_supported("linuxu").is_ok());
        assert!(parse_supported("fc").is_ok());
        assert!(parse_supported("solo5").is_ok());
        assert!(parse_supported("xen").is_ok());
        assert_eq!(Platform::Solo5.kernel_plat(), "solo5");
        assert_eq!(Platform::Fc.kernel_plat(), "kvm");
        assert_eq!(Platform::Xen.kernel_plat(), "kvm");
        assert_eq!(Platform::Vmware.kernel_plat(), "kvm");
        assert_eq!(Platform::Hyperv.kernel_plat(), "kvm");
        assert!(parse_supported("hyperv").is_ok());
        assert_eq!(Platform::Qemu.kernel_plat(), "kvm");
        assert_eq!(Platform::Linuxu.kernel_plat(), "linuxu");
    }
}
