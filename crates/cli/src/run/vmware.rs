//! `unikit run --plat vmware`: the image's VMDK booted by VMware's `vmrun`
//! where Workstation or Fusion is installed (its console, COM1 to a file,
//! followed until the VM powers off), or with `--testbed` by QEMU
//! shaped like a VMware VM: `-M pc` with the VMware backdoor (vmport),
//! SeaBIOS or OVMF, the VMDK on PVSCSI, a vmxnet3 or e1000 NIC, the console
//! on COM1 and no exit device but ACPI power-off. That is QEMU imitating
//! VMware, and the run says so.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::firmware::OVMF;
use super::supervisor::{self, End, Outcome, Runner, Verdict};
use super::{Accel, Firmware};
use crate::devices::Devices;
use crate::error::hinted;
use crate::image::vmware::{self as vmw, Nic};
use crate::memory::Memory;

pub struct Plan {
    mode: Mode,
    firmware: vmw::Firmware,
    nic: Nic,
}

enum Mode {
    /// VMware Workstation or Fusion through `vmrun`.
    Vmrun(PathBuf),
    /// QEMU shaped like VMware.
    Testbed(Testbed),
}

struct Testbed {
    qemu: PathBuf,
    accel: Accel,
    warning: Option<String>,
}

impl Plan {
    pub fn new(opts: &super::Options, devices: &mut Devices, memory: Memory) -> Result<Plan> {
        // VMware's own NICs; virtio (the option's default) means "not given".
        let nic = match devices.nic {
            crate::devices::Nic::Virtio | crate::devices::Nic::Vmxnet3 => Nic::Vmxnet3,
            crate::devices::Nic::E1000 => Nic::E1000,
            crate::devices::Nic::E1000e => Nic::E1000e,
            crate::devices::Nic::Tulip => {
                bail!("--nic tulip: a VMware VM's NIC is vmxnet3 (the default), e1000 or e1000e")
            }
        };
        if !opts.testbed {
            let Some(vmrun) = crate::tools::which("vmrun") else {
                return Err(hinted(
                    "VMware Workstation or Fusion (vmrun) is not installed",
                    "`unikit run --plat vmware --testbed` boots the same disk in QEMU shaped like a VMware VM; \
                     `unikit build --plat vmware` writes the .vmx and .ova for a VMware host",
                ));
            };
            // VMware's NAT network has no port forwards from here, and its
            // disks are VMDKs: say so rather than half-honour the options.
            if !devices.publish.is_empty() || devices.net.is_some() {
                bail!(
                    "-p and --net need --testbed: under VMware the VM's NIC is on VMware's NAT network (reach the guest at the address it gets there)"
                );
            }
            if !devices.disks.is_empty() {
                bail!("--disk needs --testbed: under VMware, attach a VMDK in the .vmx (scsi0:1.fileName)");
            }
            let firmware = match opts.firmware {
                None | Some(Firmware::Seabios) => vmw::Firmware::Bios,
                Some(Firmware::Efi) => vmw::Firmware::Efi,
                Some(Firmware::Qboot) => {
                    bail!("--firmware qboot cannot boot a disk: a VMware VM boots with seabios (BIOS) or efi")
                }
            };
            return Ok(Plan { mode: Mode::Vmrun(vmrun), firmware, nic });
        }
        devices.check()?;
        devices.check_tap()?;
        let firmware = match opts.firmware {
            None | Some(Firmware::Seabios) => vmw::Firmware::Bios,
            Some(Firmware::Efi) => vmw::Firmware::Efi,
            Some(Firmware::Qboot) => {
                bail!("--firmware qboot cannot boot a disk: a VMware VM boots with seabios (BIOS) or efi")
            }
        };
        if firmware == vmw::Firmware::Efi {
            super::firmware::check_ovmf(memory, "--firmware efi", "--firmware seabios")?;
        }
        let qemu = crate::platform::find_qemu()?;
        crate::image::qemu_img()?;
        let (accel, warning) = super::qemu::choose_accel(opts.accel, crate::platform::probe_kvm())?;
        super::check_host_memory(memory, super::host_memory())?;
        Ok(Plan { mode: Mode::Testbed(Testbed { qemu, accel, warning }), firmware, nic })
    }
}

impl super::Plan for Plan {
    fn boot(self: Box<Self>, run: &super::Boot, annotator: &mut crate::symbols::Annotator) -> Result<u8> {
        super::check_memory(run.image, run.memory)?;
        super::check_initrd(run.image, run.initrd, run.memory)?;
        let tb = match &self.mode {
            Mode::Testbed(tb) => tb,
            Mode::Vmrun(vmrun) => {
                // Under VMware the VM always has its NIC, as the .vmx of a build has.
                let vm = vmw::Vm {
                    name: run.name,
                    memory_mib: vmw::vmware_memory(run.memory.bytes()),
                    firmware: self.firmware,
                    nic: Some(self.nic),
                    disk: "",
                };
                let set = vmw::write_set(run.image, run.initrd, run.cmdline, &vm, false, true)?;
                let log = set.vmx.with_file_name(vmw::serial_log(run.name));
                let mut runner = Vmrun { vmrun, vmx: &set.vmx, log: &log };
                return supervisor::run(&mut runner, annotator);
            }
        };
        if let Some(w) = &tb.warning {
            crate::error::warn(w);
        }
        crate::error::warn("--testbed: QEMU imitating a VMware VM (vmport, PVSCSI, vmxnet3/e1000), not VMware");
        let vm = vmw::Vm {
            name: run.name,
            memory_mib: vmw::vmware_memory(run.memory.bytes()),
            firmware: self.firmware,
            nic: run.devices.net.is_some().then_some(self.nic),
            disk: "",
        };
        let set = vmw::write_set(run.image, run.initrd, run.cmdline, &vm, false, true)?;
        let cfg = Config {
            vmdk: &set.vmdk,
            memory: run.memory,
            accel: tb.accel,
            firmware: self.firmware,
            nic: self.nic,
            devices: run.devices,
        };
        let mut runner = super::firmware::Testbed::new(&tb.qemu, argv(&cfg), run.devices);
        supervisor::run(&mut runner, annotator)
    }
}

/// `vmrun -T ws` (Workstation, Player) on Linux and Windows; `-T fusion` on macOS.
const HOST_TYPE: &str = if cfg!(target_os = "macos") { "fusion" } else { "ws" };

/// The vmrun runner: its child is this very tool in `__vmrun-console`
/// mode, which starts the VM and turns its serial log into a console
/// stream (see [`console`]); the common supervisor reads the marker there.
struct Vmrun<'a> {
    vmrun: &'a Path,
    vmx: &'a Path,
    log: &'a Path,
}

impl Runner for Vmrun<'_> {
    fn vmm(&self) -> String {
        "vmrun".to_string()
    }

    fn command(&mut self) -> Result<Command> {
        let exe = std::env::current_exe().context("cannot find the unikit executable")?;
        let mut c = Command::new(exe);
        // vmrun wants the .vmx by its full path.
        let vmx = self.vmx.canonicalize().with_context(|| format!("cannot find {}", self.vmx.display()))?;
        c.arg(VMRUN_CONSOLE).arg(self.vmrun).arg(vmx).arg(self.log).stdin(Stdio::null());
        Ok(c)
    }

    fn unmarked(&mut self, o: &Outcome) -> Verdict {
        if let Some(sig) = o.interrupted {
            // The console helper powered the VM off and ended; report the
            // signal as a killed VMM would be.
            return Verdict {
                code: (128 + sig).clamp(0, 255) as u8,
                lines: vec![format!("unikit: the VM was powered off ({})", super::signal_name(sig))],
            };
        }
        match o.end {
            End::Exited(0) => Verdict {
                code: crate::error::EXIT_TOOL_FAILURE,
                lines: vec![format!(
                    "error: the VM powered off without reporting an exit code (its console: {})",
                    self.log.display()
                )],
            },
            _ => supervisor::vmm_failed("vmrun", 1, o),
        }
    }
}

/// The hidden subcommand that runs one VM under vmrun.
pub const VMRUN_CONSOLE: &str = "__vmrun-console";

/// Starts `vmx` with vmrun, copies the serial log to stdout as it grows,
/// and returns when the VM is no longer running (vmrun list). SIGINT,
/// SIGTERM or SIGHUP power the VM off hard first.
pub fn console(vmrun: &Path, vmx: &Path, log: &Path) -> Result<u8> {
    use std::io::{Read, Seek, Write};
    let _ = std::fs::remove_file(log);
    let o = Command::new(vmrun)
        .args(["-T", HOST_TYPE, "start"])
        .arg(vmx)
        .arg("nogui")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", vmrun.display()))?;
    if !o.status.success() {
        let why = String::from_utf8_lossy(&o.stdout).trim().to_string() + String::from_utf8_lossy(&o.stderr).trim();
        bail!("vmrun could not start {}: {why}", vmx.display());
    }
    supervisor::forward_signals(0);
    let mut out = std::io::stdout().lock();
    let mut at = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut copy = |at: &mut u64, out: &mut std::io::StdoutLock| {
        let Ok(mut f) = std::fs::File::open(log) else { return };
        if f.seek(std::io::SeekFrom::Start(*at)).is_err() {
            return;
        }
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = out.write_all(&buf[..n]);
            *at += n as u64;
        }
        let _ = out.flush();
    };
    let mut checked = std::time::Instant::now();
    loop {
        copy(&mut at, &mut out);
        if let Some(sig) = supervisor::forwarded_signal() {
            let _ = Command::new(vmrun).args(["-T", HOST_TYPE, "stop"]).arg(vmx).arg("hard").output();
            copy(&mut at, &mut out);
            return Ok((128 + sig).clamp(0, 255) as u8);
        }
        if checked.elapsed() > std::time::Duration::from_millis(300) {
            checked = std::time::Instant::now();
            if !running(vmrun, vmx)? {
                copy(&mut at, &mut out);
                return Ok(0);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether `vmrun list` names `vmx` among the running VMs.
fn running(vmrun: &Path, vmx: &Path) -> Result<bool> {
    let o = Command::new(vmrun)
        .args(["-T", HOST_TYPE, "list"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", vmrun.display()))?;
    if !o.status.success() {
        bail!("vmrun list failed: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    let want = vmx.canonicalize().unwrap_or_else(|_| vmx.to_path_buf());
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| Path::new(l.trim()))
        .any(|p| p == want || p.canonicalize().is_ok_and(|c| c == want)))
}

pub struct Config<'a> {
    pub vmdk: &'a Path,
    pub memory: Memory,
    pub accel: Accel,
    pub firmware: vmw::Firmware,
    pub nic: Nic,
    pub devices: &'a Devices,
}

/// QEMU's arguments for the VMware shape.
pub fn argv(cfg: &Config) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&["-M", "pc,vmport=on", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-smp", "1"]);
    push(&["-m", &cfg.memory.qemu_arg(), "-serial", "stdio"]);
    match cfg.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    if cfg.firmware == vmw::Firmware::Efi {
        push(&["-bios", OVMF]);
    }
    push(&["-device", "pvscsi,id=scsi0"]);
    let file = |p: &Path| p.display().to_string().replace(',', ",,");
    // The boot disk is never written (the guest withholds it from the app;
    // `snapshot` keeps even a stray write out of the VMDK). Debian's OVMF
    // has no PVSCSI driver, so under EFI it sits on IDE, which every
    // firmware reads; VMware's own EFI boots it from PVSCSI.
    let boot_dev = match cfg.firmware {
        vmw::Firmware::Bios => "scsi-hd,bus=scsi0.0,scsi-id=0,drive=boot,bootindex=0",
        vmw::Firmware::Efi => "ide-hd,bus=ide.0,drive=boot,bootindex=0",
    };
    push(&["-drive", &format!("file={},if=none,id=boot,format=vmdk,snapshot=on", file(cfg.vmdk)), "-device", boot_dev]);
    for (i, disk) in cfg.devices.disks.iter().enumerate() {
        push(&[
            "-drive",
            &format!("file={},if=none,id=disk{i},format=raw", file(disk)),
            "-device",
            &format!("scsi-hd,bus=scsi0.0,scsi-id={},drive=disk{i}", i + 1),
        ]);
    }
    let net = super::qemu::net_args(cfg.devices, cfg.nic.vmx());
    push(&net.iter().map(String::as_str).collect::<Vec<_>>());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Net;

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn argv_is_vmware_shaped_with_no_exit_device() {
        let devices = Devices {
            publish: vec![(8080, 80)],
            net: Some(Net::User),
            disks: vec!["/d/a,b.img".into()],
            ..Default::default()
        };
        let cfg = Config {
            vmdk: Path::new("/b/hello.vmdk"),
            memory: Memory::parse("64M").unwrap(),
            accel: Accel::Tcg,
            firmware: vmw::Firmware::Efi,
            nic: Nic::E1000,
            devices: &devices,
        };
        let a = strings(argv(&cfg)).join(" ");
        for part in [
            "-M pc,vmport=on",
            "-bios /usr/share/ovmf/OVMF.fd",
            "-device pvscsi,id=scsi0",
            "file=/b/hello.vmdk,if=none,id=boot,format=vmdk,snapshot=on",
            "ide-hd,bus=ide.0,drive=boot,bootindex=0",
            "file=/d/a,,b.img,if=none,id=disk0,format=raw",
            "scsi-hd,bus=scsi0.0,scsi-id=1,drive=disk0",
            "hostfwd=tcp:127.0.0.1:8080-:80 -device e1000,netdev=net0",
        ] {
            assert!(a.contains(part), "{part} in {a}");
        }
        assert!(!a.contains("isa-debug-exit") && !a.contains("-kernel"), "{a}");
    }
}
