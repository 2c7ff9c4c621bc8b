//! Booting an image with QEMU and reading its exit code.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::devices::{Devices, Net};
use crate::{Accel, Machine};
use crate::console::{GuestExit, MarkerFilter};
use crate::error::hinted;
use crate::memory::Memory;
use crate::platform::QEMU;
use crate::symbols::Annotator;

pub struct Config<'a> {
    pub image: &'a Path,
    pub memory: Memory,
    pub cmdline: &'a str,
    pub accel: Accel,
    /// Firmware to use instead of QEMU's default SeaBIOS (qboot).
    pub bios: Option<&'a Path>,
    pub machine: Machine,
    pub devices: &'a Devices,
    pub initrd: Option<&'a Path>,
}

/// QEMU's arguments (without the program name).
pub fn argv(cfg: &Config) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let machine = match cfg.machine {
        Machine::Q35 => "q35",
        // No ACPI tables (the kernel reads the devices from the command
        // line, as on Firecracker); QEMU appends virtio_mmio.device= entries.
        Machine::Microvm => "microvm,acpi=off",
    };
    push(&[
        "-M",
        machine,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-smp",
        "1",
    ]);
    push(&["-m", &cfg.memory.qemu_arg()]);
    push(&[
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]);
    match cfg.accel {
        // `-arch-capabilities`: QEMU cannot set MSR_IA32_ARCH_CAPABILITIES
        // (0x10a) on some KVMs (e.g. kvm_pvm, nested) and aborts with
        // `-cpu host`; the unikernel does not need that MSR.
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    let (net_dev, blk_dev) = match cfg.machine {
        Machine::Q35 => ("virtio-net-pci", "virtio-blk-pci"),
        Machine::Microvm => ("virtio-net-device", "virtio-blk-device"),
    };
    match &cfg.devices.net {
        Some(Net::User) => {
            let mut nd = String::from("user,id=net0");
            for (h, g) in &cfg.devices.publish {
                nd.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
            }
            push(&["-netdev", &nd, "-device", &format!("{net_dev},netdev=net0")]);
        }
        Some(Net::Tap(name)) => push(&[
            "-netdev",
            &format!("tap,id=net0,ifname={name},script=no,downscript=no"),
            "-device",
            &format!("{net_dev},netdev=net0"),
        ]),
        None => {}
    }
    for (i, disk) in cfg.devices.disks.iter().enumerate() {
        // QEMU's -drive syntax uses ',' as separator: double it in paths.
        let file = disk.display().to_string().replace(',', ",,");
        push(&["-drive", &format!("file={file},if=none,id=disk{i},format=raw"), "-device", &format!("{blk_dev},drive=disk{i}")]);
    }
    if let Some(bios) = cfg.bios {
        a.extend(["-bios".into(), bios.into()]);
    }
    if let Some(rd) = cfg.initrd {
        a.extend(["-initrd".into(), rd.into()]);
    }
    a.extend([
        "-kernel".into(),
        cfg.image.into(),
        "-append".into(),
        cfg.cmdline.into(),
    ]);
    a
}

/// Decide the accelerator from the request and the KVM probe result.
/// Returns the accelerator and, when falling back to TCG, a warning.
pub fn choose_accel(
    requested: Option<Accel>,
    kvm: Result<(), String>,
) -> Result<(Accel, Option<String>)> {
    match (requested, kvm) {
        (Some(Accel::Tcg), _) => Ok((Accel::Tcg, None)),
        (_, Ok(())) => Ok((Accel::Kvm, None)),
        (Some(Accel::Kvm), Err(why)) => Err(hinted(
            format!("KVM is not usable: {why}"),
            "use --accel tcg (slow software emulation), or leave --accel out to choose automatically",
        )),
        (None, Err(why)) => Ok((
            Accel::Tcg,
            Some(format!(
                "KVM unavailable ({why}); using TCG software emulation (slow)"
            )),
        )),
    }
}

/// How QEMU ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
}

/// Our exit code, and lines to print on stderr.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub code: u8,
    pub lines: Vec<String>,
}

/// Turn the guest's marker (if any) and QEMU's end into our exit code.
pub fn verdict(marker: Option<&GuestExit>, end: End) -> Verdict {
    if let Some(m) = marker {
        let code = (m.code & 0xff) as u8;
        let lines = m
            .reason
            .iter()
            .map(|r| format!("unikit: guest {r} (exit code {code})"))
            .collect();
        return Verdict { code, lines };
    }
    match end {
        End::Exited(s) if s > 1 && s % 2 == 1 => {
            let code = ((s >> 1) & 0xff) as u8;
            Verdict {
                code,
                lines: vec![format!(
                    "unikit: warning: no exit marker seen on the console; exit code {code} from isa-debug-exit"
                )],
            }
        }
        End::Exited(s) => Verdict {
            code: crate::error::EXIT_TOOL_FAILURE,
            lines: vec![format!(
                "error: guest stopped without reporting an exit code (qemu exit status {s})"
            )],
        },
        End::Signaled(sig) => Verdict {
            code: (128 + sig).clamp(0, 255) as u8,
            lines: vec![format!(
                "error: {QEMU} was killed by {}",
                super::signal_name(sig)
            )],
        },
    }
}

/// Boot the image; stream the console to stdout with the marker removed
/// and backtraces annotated.
pub fn run(qemu: &Path, cfg: &Config, annotator: &mut Annotator) -> Result<u8> {
    let mut child = Command::new(qemu)
        .args(argv(cfg))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", qemu.display()))?;
    let console = child.stdout.take().context("no pipe for QEMU's output")?;
    let mut filter = MarkerFilter::new();
    super::stream(console, Some(&mut filter), annotator);
    let status = child.wait().context("waiting for QEMU")?;
    let end = match (status.code(), status.signal()) {
        (Some(c), _) => End::Exited(c),
        (None, Some(s)) => End::Signaled(s),
        (None, None) => End::Exited(-1),
    };
    let v = verdict(filter.exit(), end);
    for line in &v.lines {
        eprintln!("{line}");
    }
    Ok(v.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn argv_kvm_with_qboot() {
        let cfg = Config {
            image: Path::new("build/hello_qemu-x86_64"),
            memory: Memory::parse("64M").unwrap(),
            cmdline: "-- a",
            accel: Accel::Kvm,
            bios: Some(Path::new("/usr/share/qemu/qboot.rom")),
            machine: Machine::Q35,
            devices: &Devices::default(),
            initrd: None,
        };
        assert_eq!(
            strings(argv(&cfg)).join(" "),
            "-M q35 -nodefaults -no-user-config -display none -no-reboot -smp 1 -m 64M -serial stdio \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -accel kvm -cpu host,-arch-capabilities -bios /usr/share/qemu/qboot.rom \
             -kernel build/hello_qemu-x86_64 -append -- a"
        );
    }

    #[test]
    fn argv_tcg_without_qboot() {
        let cfg = Config {
            image: Path::new("img"),
            memory: Memory::parse("1536K").unwrap(),
            cmdline: "x \"y z\" --",
            accel: Accel::Tcg,
            bios: None,
            machine: Machine::Q35,
            devices: &Devices::default(),
            initrd: None,
        };
        let a = strings(argv(&cfg));
        assert!(a.windows(4).any(|w| w == ["-accel", "tcg", "-cpu", "max"]));
        assert!(a.windows(2).any(|w| w == ["-m", "1536K"]));
        assert!(!a.iter().any(|s| s == "-bios"));
        assert_eq!(
            a[a.len() - 2..],
            ["-append".to_string(), "x \"y z\" --".to_string()]
        );
    }

    #[test]
    fn argv_devices_on_q35_and_microvm() {
        let devices = Devices {
            publish: vec![(8080, 80), (2222, 22)],
            net: Some(Net::User),
            disks: vec!["a,b.img".into()],
            ..Default::default()
        };
        let mut cfg = Config {
            image: Path::new("img"),
            memory: Memory::parse("64M").unwrap(),
            cmdline: "--",
            accel: Accel::Tcg,
            bios: None,
            machine: Machine::Q35,
            devices: &devices,
            initrd: Some(Path::new("build/x.rootfs.cpio")),
        };
        let a = strings(argv(&cfg)).join(" ");
        assert!(a.contains("-netdev user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0"), "{a}");
        assert!(a.contains("-drive file=a,,b.img,if=none,id=disk0,format=raw -device virtio-blk-pci,drive=disk0"), "{a}");
        assert!(a.contains("-initrd build/x.rootfs.cpio -kernel img"), "{a}");
        cfg.machine = Machine::Microvm;
        let a = strings(argv(&cfg)).join(" ");
        assert!(a.starts_with("-M microvm,acpi=off "), "{a}");
        assert!(a.contains("-device virtio-net-device,netdev=net0") && a.contains("-device virtio-blk-device,drive=disk0"), "{a}");
        let tap = Devices { net: Some(Net::Tap("tap7".into())), ..Default::default() };
        cfg.devices = &tap;
        let a = strings(argv(&cfg)).join(" ");
        assert!(a.contains("-netdev tap,id=net0,ifname=tap7,script=no,downscript=no"), "{a}");
    }

    #[test]
    fn accel_choice() {
        assert_eq!(choose_accel(None, Ok(())).unwrap(), (Accel::Kvm, None));
        assert_eq!(
            choose_accel(Some(Accel::Kvm), Ok(())).unwrap(),
            (Accel::Kvm, None)
        );
        assert_eq!(
            choose_accel(Some(Accel::Tcg), Ok(())).unwrap(),
            (Accel::Tcg, None)
        );
        assert_eq!(
            choose_accel(Some(Accel::Tcg), Err("x".into())).unwrap(),
            (Accel::Tcg, None)
        );
        let (a, w) = choose_accel(None, Err("/dev/kvm does not exist".into())).unwrap();
        assert_eq!(a, Accel::Tcg);
        assert_eq!(
            w.unwrap(),
            "KVM unavailable (/dev/kvm does not exist); using TCG software emulation (slow)"
        );
        let e = choose_accel(Some(Accel::Kvm), Err("/dev/kvm does not exist".into())).unwrap_err();
        assert_eq!(e.to_string(), "KVM is not usable: /dev/kvm does not exist");
    }

    #[test]
    fn exit_decoding() {
        let m = |code, reason: Option<&str>| GuestExit {
            code,
            reason: reason.map(String::from),
        };
        assert_eq!(
            verdict(Some(&m(0, None)), End::Exited(1)),
            Verdict {
                code: 0,
                lines: vec![]
            }
        );
        assert_eq!(verdict(Some(&m(258, None)), End::Exited(5)).code, 2);
        assert_eq!(verdict(Some(&m(-1, None)), End::Signaled(9)).code, 255);
        let v = verdict(Some(&m(101, Some("panic"))), End::Exited(203));
        assert_eq!(
            v,
            Verdict {
                code: 101,
                lines: vec!["unikit: guest panic (exit code 101)".into()]
            }
        );
        let v = verdict(None, End::Exited(7));
        assert_eq!(v.code, 3);
        assert!(v.lines[0].starts_with("unikit: warning: no exit marker"));
        for s in [0, 1, 2, 4] {
            let v = verdict(None, End::Exited(s));
            assert_eq!(v.code, 125);
            assert_eq!(
                v.lines,
                [format!(
                    "error: guest stopped without reporting an exit code (qemu exit status {s})"
                )]
            );
        }
        let v = verdict(None, End::Signaled(9));
        assert_eq!(v.code, 137);
        assert_eq!(
            v.lines,
            ["error: qemu-system-x86_64 was killed by signal 9, SIGKILL"]
        );
    }
}
