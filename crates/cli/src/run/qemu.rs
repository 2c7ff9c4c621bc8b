//! Booting an image with QEMU and reading its exit code.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Result;

use super::supervisor::{self, End, Outcome, Runner, Verdict};
use super::{Accel, Firmware, Machine};
use crate::devices::{Devices, DiskBus, Net};
use crate::error::hinted;
use crate::memory::Memory;
use crate::platform::QEMU;

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

/// The qemu platform's side of `unikit run`.
pub struct Plan {
    qemu: std::path::PathBuf,
    accel: Accel,
    warning: Option<String>,
    bios: Option<&'static Path>,
    machine: Machine,
}

impl Plan {
    pub fn new(opts: &super::Options, devices: &mut Devices, memory: Memory) -> Result<Plan> {
        devices.check()?;
        devices.check_tap()?;
        if devices.disk_bus == DiskBus::Pvscsi && opts.machine == Some(Machine::Microvm) {
            anyhow::bail!("--disk-bus pvscsi needs a PCI bus: use --machine q35 (microvm has only virtio-mmio)");
        }
        let qboot = Path::new(crate::platform::QBOOT_ROM);
        let bios = match opts.firmware {
            Some(Firmware::Qboot) if !qboot.is_file() => {
                anyhow::bail!("--firmware qboot: {} not found (install the qemu-system-data package)", qboot.display())
            }
            Some(Firmware::Seabios) => None,
            _ => qboot.is_file().then_some(qboot),
        };
        let machine = opts.machine.unwrap_or(Machine::Q35);
        if machine == Machine::Microvm && devices.nic != crate::devices::Nic::Virtio {
            anyhow::bail!(
                "--nic {}: microvm has no PCI bus, only virtio-mmio devices; use --machine q35 (the default)",
                devices.nic.name()
            );
        }
        // Check the host before spending time on a build.
        crate::platform::host_can_run(crate::platform::Platform::Qemu)?;
        let qemu = crate::platform::find_qemu()?;
        let (accel, warning) = choose_accel(opts.accel, crate::platform::probe_kvm())?;
        super::check_host_memory(memory, super::host_memory())?;
        let machine = opts.machine.unwrap_or(Machine::Q35);
        if machine == Machine::Pc && devices.disk_bus == DiskBus::Virtio && devices.disks.len() > 4 {
            anyhow::bail!("--machine pc takes at most 4 --disk (two IDE channels, master and slave)");
        }
        Ok(Plan { qemu, accel, warning, bios, machine })
    }
}

impl super::Plan for Plan {
    fn boot(self: Box<Self>, run: &super::Boot, annotator: &mut crate::symbols::Annotator) -> Result<u8> {
        super::check_memory(run.image, run.memory)?;
        super::check_initrd(run.image, run.initrd, run.memory)?;
        if let Some(w) = &self.warning {
            crate::error::warn(w);
        }
        let cfg = Config {
            image: run.image,
            memory: run.memory,
            cmdline: run.cmdline,
            accel: self.accel,
            bios: self.bios,
            machine: self.machine,
            devices: run.devices,
            initrd: run.initrd,
        };
        supervisor::run(&mut Qemu { qemu: &self.qemu, cfg }, annotator)
    }
}

/// QEMU's arguments (without the program name).
pub fn argv(cfg: &Config) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let machine = match cfg.machine {
        // vmport (the VMware backdoor) is on by default under TCG: the guest
        // would take the VM for VMware.
        Machine::Q35 => "q35,vmport=off",
        // No ACPI tables (the kernel reads the devices from the command
        // line, as on Firecracker); QEMU appends virtio_mmio.device= entries.
        Machine::Microvm => "microvm,acpi=off",
        // vmport: VMware's backdoor port, which Hyper-V does not have.
        Machine::Pc => "pc,vmport=off",
    };
    push(&["-M", machine, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-smp", "1"]);
    push(&["-m", &cfg.memory.qemu_arg()]);
    push(&["-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    match cfg.accel {
        // `-arch-capabilities`: QEMU cannot set MSR_IA32_ARCH_CAPABILITIES
        // (0x10a) on some KVMs (e.g. kvm_pvm, nested) and aborts with
        // `-cpu host`; the unikernel does not need that MSR.
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    let (net_dev, blk_dev) = match cfg.machine {
        Machine::Q35 | Machine::Pc => (cfg.devices.nic.qemu_pci_device(), "virtio-blk-pci"),
        Machine::Microvm => ("virtio-net-device", "virtio-blk-device"),
    };
    let net = net_args(cfg.devices, net_dev);
    push(&net.iter().map(String::as_str).collect::<Vec<_>>());
    let pvscsi = cfg.devices.disk_bus == DiskBus::Pvscsi && !cfg.devices.disks.is_empty();
    if pvscsi {
        push(&["-device", "pvscsi,id=scsi0"]);
    }
    for (i, disk) in cfg.devices.disks.iter().enumerate() {
        // QEMU's -drive syntax uses ',' as separator: double it in paths.
        let file = disk.display().to_string().replace(',', ",,");
        let dev = match (pvscsi, cfg.machine) {
            // Disk i at SCSI target i, LUN 0: the guest names them in target order.
            (true, _) => format!("scsi-hd,bus=scsi0.0,drive=disk{i},scsi-id={i},lun=0"),
            // On pc the disks go on the PIIX IDE channels: primary master,
            // primary slave, secondary master, secondary slave.
            (false, Machine::Pc) => format!("ide-hd,drive=disk{i},bus=ide.{},unit={}", i / 2, i % 2),
            (false, _) => format!("{blk_dev},drive=disk{i}"),
        };
        push(&["-drive", &format!("file={file},if=none,id=disk{i},format=raw"), "-device", &dev]);
    }
    if let Some(bios) = cfg.bios {
        a.extend(["-bios".into(), bios.into()]);
    }
    if let Some(rd) = cfg.initrd {
        a.extend(["-initrd".into(), rd.into()]);
    }
    a.extend(["-kernel".into(), cfg.image.into(), "-append".into(), cfg.cmdline.into()]);
    a
}

/// `-netdev` and `-device` for the run's network (`-p` forwards with user
/// networking, or a tap), with the NIC `model`; nothing without a network.
/// Every QEMU shape (q35, microvm, the VMware and Hyper-V test beds) uses it.
pub fn net_args(devices: &Devices, model: &str) -> Vec<String> {
    let netdev = match &devices.net {
        Some(Net::User) => {
            let mut nd = String::from("user,id=net0");
            for (h, g) in &devices.publish {
                nd.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
            }
            nd
        }
        Some(Net::Tap(name)) => format!("tap,id=net0,ifname={name},script=no,downscript=no"),
        None => return Vec::new(),
    };
    vec!["-netdev".into(), netdev, "-device".into(), format!("{model},netdev=net0")]
}

/// Decide the accelerator from the request and the KVM probe result.
/// Returns the accelerator and, when falling back to TCG, a warning.
pub fn choose_accel(requested: Option<Accel>, kvm: Result<(), String>) -> Result<(Accel, Option<String>)> {
    match (requested, kvm) {
        (Some(Accel::Tcg), _) => Ok((Accel::Tcg, None)),
        (_, Ok(())) => Ok((Accel::Kvm, None)),
        (Some(Accel::Kvm), Err(why)) => Err(hinted(
            format!("KVM is not usable: {why}"),
            "use --accel tcg (slow software emulation), or leave --accel out to choose automatically",
        )),
        (None, Err(why)) => {
            Ok((Accel::Tcg, Some(format!("KVM unavailable ({why}); using TCG software emulation (slow)"))))
        }
    }
}

/// The qemu runner: QEMU's command line; the marker, or else
/// isa-debug-exit's status, gives the exit code.
pub struct Qemu<'a> {
    pub qemu: &'a Path,
    pub cfg: Config<'a>,
}

impl Runner for Qemu<'_> {
    fn vmm(&self) -> String {
        QEMU.to_string()
    }

    fn command(&mut self) -> Result<Command> {
        let mut c = Command::new(self.qemu);
        c.args(argv(&self.cfg)).stdin(Stdio::null());
        Ok(c)
    }

    fn started(&mut self, pid: u32) {
        if matches!(self.cfg.devices.net, Some(Net::User)) && !self.cfg.devices.publish.is_empty() {
            let ports = self.cfg.devices.publish.iter().map(|&(h, _)| h).collect();
            std::thread::spawn(move || hostfwd_backlog::widen(pid, ports));
        }
    }

    fn unmarked(&mut self, o: &Outcome) -> Verdict {
        unmarked(o)
    }
}

/// Without a marker: isa-debug-exit's status `(code << 1) | 1`, QEMU's own
/// failure (status 1, its message on stderr), or a guest that stopped
/// without saying why.
pub fn unmarked(o: &Outcome) -> Verdict {
    match o.end {
        End::Exited(s) if s > 1 && s % 2 == 1 => {
            let code = ((s >> 1) & 0xff) as u8;
            Verdict {
                code,
                lines: vec![format!(
                    "unikit: warning: no exit marker seen on the console; exit code {code} from isa-debug-exit"
                )],
            }
        }
        // QEMU exits 1 on its own errors (bad option, port in use, no memory).
        End::Exited(1) if !o.stderr.is_empty() => supervisor::vmm_failed(QEMU, 1, o),
        End::Exited(s) => Verdict {
            code: crate::error::EXIT_TOOL_FAILURE,
            lines: vec![format!("error: guest stopped without reporting an exit code (qemu exit status {s})")],
        },
        End::Signaled(sig) => supervisor::killed(QEMU, sig),
    }
}

/// QEMU's user networking (libslirp) listens on every `hostfwd` port with
/// `listen(fd, 1)`: the host kernel queues at most two finished handshakes
/// until QEMU's main loop accepts them, one per iteration. A burst of
/// clients connecting at once overflows that queue; the kernel drops their
/// SYNs and handshake ACKs (`TcpExtListenOverflows`), and they only get in
/// through their own retransmission timers (SYN: 1, 3, 7 s...; data after a
/// SYN cookie: 0.2, 0.4, 0.8 s...), about two per round since all of them
/// back off in step. So `-p` with many parallel clients stalls for tens of
/// seconds whatever the guest does.
///
/// `listen()` on a socket that already listens only changes its backlog,
/// so this takes a duplicate of QEMU's listening sockets (pidfd_getfd(2),
/// Linux 5.6+, allowed to the parent) and raises their backlog to
/// `SOMAXCONN`. Where that is refused (old kernel, seccomp, Yama ptrace
/// scope 2+), QEMU keeps its backlog of 1: bursts are slow, nothing breaks.
#[allow(unsafe_code)] // raw syscalls (pidfd_open, pidfd_getfd, listen)
pub(crate) mod hostfwd_backlog {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    /// Watches the child `pid` until each of `ports` has its TCP listening
    /// socket (QEMU opens them while starting, before the guest runs) and
    /// widens it; gives up after a few seconds or when QEMU is gone.
    pub fn widen(pid: u32, ports: Vec<u16>) {
        // SAFETY: plain system calls on integers; the descriptors they
        // return are closed below.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as libc::c_int;
        if pidfd < 0 {
            return;
        }
        let mut left: BTreeSet<u16> = ports.into_iter().collect();
        let mut seen = BTreeSet::new();
        let until = Instant::now() + Duration::from_secs(10);
        while !left.is_empty() && Instant::now() < until {
            let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { break };
            for e in dir.flatten() {
                let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else { continue };
                let Ok(link) = std::fs::read_link(e.path()) else { continue };
                let link = link.to_string_lossy().into_owned();
                if !link.starts_with("socket:") || !seen.insert((fd, link)) {
                    continue;
                }
                if let Some(port) = relisten(pidfd, fd, &left) {
                    left.remove(&port);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: our own descriptor.
        unsafe { libc::close(pidfd) };
    }

    /// If QEMU's `fd` is a listening TCP socket on one of `ports`, raises
    /// its backlog and returns the port.
    fn relisten(pidfd: libc::c_int, fd: libc::c_int, ports: &BTreeSet<u16>) -> Option<u16> {
        // SAFETY: see `widen`; `dup` is ours and closed before returning,
        // the option and address buffers are sized as passed.
        unsafe {
            let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as libc::c_int;
            if dup < 0 {
                return None;
            }
            let opt = |name| {
                let mut v: libc::c_int = 0;
                let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                let r = libc::getsockopt(dup, libc::SOL_SOCKET, name, (&mut v as *mut libc::c_int).cast(), &mut len);
                (r == 0).then_some(v)
            };
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let port = (opt(libc::SO_ACCEPTCONN) == Some(1)
                && opt(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
                && libc::getsockname(dup, (&mut sa as *mut libc::sockaddr_in).cast(), &mut len) == 0
                && sa.sin_family == libc::AF_INET as libc::sa_family_t)
                .then(|| u16::from_be(sa.sin_port))
                .filter(|p| ports.contains(p))
                .filter(|_| libc::listen(dup, libc::SOMAXCONN) == 0);
            libc::close(dup);
            port
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::GuestExit;
    use crate::devices::Nic;

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
            "-M q35,vmport=off -nodefaults -no-user-config -display none -no-reboot -smp 1 -m 64M -serial stdio \
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
        assert_eq!(a[a.len() - 2..], ["-append".to_string(), "x \"y z\" --".to_string()]);
    }

    #[test]
    fn argv_pvscsi_disks_in_target_order() {
        let devices =
            Devices { disks: vec!["a.img".into(), "b.img".into()], disk_bus: DiskBus::Pvscsi, ..Default::default() };
        let cfg = Config {
            image: Path::new("img"),
            memory: Memory::parse("64M").unwrap(),
            cmdline: "--",
            accel: Accel::Tcg,
            bios: None,
            machine: Machine::Q35,
            devices: &devices,
            initrd: None,
        };
        let a = strings(argv(&cfg)).join(" ");
        assert_eq!(a.matches("-device pvscsi,id=scsi0").count(), 1, "{a}");
        assert!(
            a.contains(
                "-drive file=a.img,if=none,id=disk0,format=raw -device scsi-hd,bus=scsi0.0,drive=disk0,scsi-id=0,lun=0 \
                 -drive file=b.img,if=none,id=disk1,format=raw -device scsi-hd,bus=scsi0.0,drive=disk1,scsi-id=1,lun=0"
            ),
            "{a}"
        );
        assert!(!a.contains("virtio-blk"), "{a}");
        // No disks: no adapter.
        let none = Devices { disk_bus: DiskBus::Pvscsi, ..Default::default() };
        let a = strings(argv(&Config { devices: &none, ..cfg })).join(" ");
        assert!(!a.contains("pvscsi"), "{a}");
    }

    #[test]
    fn argv_nic_models_on_q35() {
        for (nic, dev) in
            [(Nic::Virtio, "virtio-net-pci"), (Nic::Vmxnet3, "vmxnet3"), (Nic::E1000, "e1000"), (Nic::E1000e, "e1000e")]
        {
            let devices = Devices { publish: vec![(8080, 80)], net: Some(Net::User), nic, ..Default::default() };
            let cfg = Config {
                image: Path::new("img"),
                memory: Memory::parse("64M").unwrap(),
                cmdline: "--",
                accel: Accel::Tcg,
                bios: None,
                machine: Machine::Q35,
                devices: &devices,
                initrd: None,
            };
            let a = strings(argv(&cfg)).join(" ");
            assert!(a.contains(&format!("-device {dev},netdev=net0")), "{a}");
        }
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
        assert!(
            a.contains("-drive file=a,,b.img,if=none,id=disk0,format=raw -device virtio-blk-pci,drive=disk0"),
            "{a}"
        );
        assert!(a.contains("-initrd build/x.rootfs.cpio -kernel img"), "{a}");
        cfg.machine = Machine::Microvm;
        let a = strings(argv(&cfg)).join(" ");
        assert!(a.starts_with("-M microvm,acpi=off "), "{a}");
        assert!(
            a.contains("-device virtio-net-device,netdev=net0") && a.contains("-device virtio-blk-device,drive=disk0"),
            "{a}"
        );
        cfg.machine = Machine::Pc;
        let two = Devices {
            disks: vec!["a.img".into(), "b.img".into(), "c.img".into()],
            nic: crate::devices::Nic::Tulip,
            ..devices.clone()
        };
        cfg.devices = &two;
        let a = strings(argv(&cfg)).join(" ");
        assert!(a.starts_with("-M pc,vmport=off "), "{a}");
        assert!(a.contains("-device tulip,netdev=net0"), "{a}");
        assert!(
            a.contains("-drive file=a.img,if=none,id=disk0,format=raw -device ide-hd,drive=disk0,bus=ide.0,unit=0"),
            "{a}"
        );
        assert!(a.contains("-device ide-hd,drive=disk1,bus=ide.0,unit=1"), "{a}");
        assert!(a.contains("-device ide-hd,drive=disk2,bus=ide.1,unit=0"), "{a}");
        let tap = Devices { net: Some(Net::Tap("tap7".into())), ..Default::default() };
        cfg.devices = &tap;
        let a = strings(argv(&cfg)).join(" ");
        assert!(a.contains("-netdev tap,id=net0,ifname=tap7,script=no,downscript=no"), "{a}");
    }

    #[test]
    fn accel_choice() {
        assert_eq!(choose_accel(None, Ok(())).unwrap(), (Accel::Kvm, None));
        assert_eq!(choose_accel(Some(Accel::Kvm), Ok(())).unwrap(), (Accel::Kvm, None));
        assert_eq!(choose_accel(Some(Accel::Tcg), Ok(())).unwrap(), (Accel::Tcg, None));
        assert_eq!(choose_accel(Some(Accel::Tcg), Err("x".into())).unwrap(), (Accel::Tcg, None));
        let (a, w) = choose_accel(None, Err("/dev/kvm does not exist".into())).unwrap();
        assert_eq!(a, Accel::Tcg);
        assert_eq!(w.unwrap(), "KVM unavailable (/dev/kvm does not exist); using TCG software emulation (slow)");
        let e = choose_accel(Some(Accel::Kvm), Err("/dev/kvm does not exist".into())).unwrap_err();
        assert_eq!(e.to_string(), "KVM is not usable: /dev/kvm does not exist");
    }

    fn ended(end: End, stderr: &[&str]) -> Outcome {
        Outcome { marker: None, end, stderr: stderr.iter().map(|s| s.to_string()).collect(), interrupted: None }
    }

    #[test]
    fn exit_decoding() {
        let m = |code, reason: Option<&str>| GuestExit { code, reason: reason.map(String::from) };
        let mut r = Qemu {
            qemu: Path::new(QEMU),
            cfg: Config {
                image: Path::new("img"),
                memory: Memory::DEFAULT,
                cmdline: "",
                accel: Accel::Tcg,
                bios: None,
                machine: Machine::Q35,
                devices: &Devices::default(),
                initrd: None,
            },
        };
        let mut with =
            |marker: Option<GuestExit>, end| supervisor::verdict(&mut r, &Outcome { marker, ..ended(end, &[]) });
        assert_eq!(with(Some(m(0, None)), End::Exited(1)), Verdict { code: 0, lines: vec![] });
        assert_eq!(with(Some(m(258, None)), End::Exited(5)).code, 2);
        assert_eq!(with(Some(m(-1, None)), End::Signaled(9)).code, 255);
        let v = with(Some(m(101, Some("panic"))), End::Exited(203));
        assert_eq!(v, Verdict { code: 101, lines: vec!["unikit: guest panic (exit code 101)".into()] });
        let v = with(None, End::Exited(7));
        assert_eq!(v.code, 3);
        assert!(v.lines[0].starts_with("unikit: warning: no exit marker"));
        for s in [0, 1, 2, 4] {
            let v = with(None, End::Exited(s));
            assert_eq!(v.code, 125);
            assert_eq!(
                v.lines,
                [format!("error: guest stopped without reporting an exit code (qemu exit status {s})")]
            );
        }
        let v = with(None, End::Signaled(9));
        assert_eq!(v.code, 137);
        assert_eq!(v.lines, ["error: qemu-system-x86_64 was killed by signal 9, SIGKILL"]);
        // QEMU's own failure is QEMU's, with its words.
        let v = unmarked(&ended(
            End::Exited(1),
            &["qemu-system-x86_64: -m 999999G: cannot set up guest memory 'pc.ram': Cannot allocate memory"],
        ));
        assert_eq!(v.code, 125);
        assert!(
            v.lines[0].contains("could not run the guest") && v.lines[0].contains("Cannot allocate memory"),
            "{v:?}"
        );
        assert!(v.lines[1].starts_with("hint: "), "{v:?}");
    }
}
