//! `unikit run --plat hyperv`: Hyper-V runs on Windows, where the script
//! `unikit build --plat hyperv` writes creates and starts the VM. Here,
//! `--testbed [--gen 1|2]` boots the image's VHDX in QEMU shaped like that
//! generation, and says that it is QEMU imitating Hyper-V:
//! - Gen1: `-M pc`, SeaBIOS, the disk on IDE, the legacy network adapter
//!   (DEC 21140, QEMU `tulip`), `--disk` files on the other IDE slots;
//! - Gen2: q35, OVMF, the disk on SATA. A Gen2 VM's NIC and data disks are
//!   VMBus devices (netvsc, storvsc), which QEMU cannot offer on this host's
//!   KVM (no SynIC), so `-p`, `--net` and `--disk` are refused there.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::supervisor;
use super::{Accel, firmware::OVMF};
use crate::devices::Devices;
use crate::error::hinted;
use crate::image::hyperv::{self as hv, Generation};
use crate::memory::Memory;

/// The IDE slots a Gen1 VM has besides its boot disk.
const IDE_DATA_SLOTS: [(u8, u8); 3] = [(0, 1), (1, 0), (1, 1)];

pub struct Plan {
    qemu: PathBuf,
    accel: Accel,
    warning: Option<String>,
    generation: Generation,
}

impl Plan {
    pub fn new(opts: &super::Options, devices: &mut Devices, memory: Memory) -> Result<Plan> {
        if !opts.testbed {
            return Err(hinted(
                "unikit cannot start Hyper-V VMs: Hyper-V runs on Windows",
                "`unikit build --plat hyperv` writes a VHDX, a VHD for Azure and a PowerShell script that creates and \
                 starts the VM on a Hyper-V host; `--testbed` boots the image here in QEMU shaped like Hyper-V",
            ));
        }
        let generation = match opts.generation {
            None | Some(2) => Generation::Two,
            Some(1) => Generation::One,
            Some(g) => bail!("--gen {g}: Hyper-V VMs are generation 1 or 2"),
        };
        if !matches!(devices.nic, crate::devices::Nic::Virtio | crate::devices::Nic::Tulip) {
            bail!(
                "--nic {}: a Hyper-V generation 1 VM's NIC is the legacy DEC 21140 (tulip); generation 2's is VMBus netvsc",
                devices.nic.name()
            );
        }
        devices.check()?;
        devices.check_tap()?;
        match generation {
            Generation::Two => {
                if devices.net.is_some() {
                    bail!(
                        "a Hyper-V generation 2 VM's NIC is a VMBus device (netvsc), which QEMU cannot offer here: use --gen 1 (the legacy DEC 21140 adapter) for -p and --net"
                    );
                }
                if !devices.disks.is_empty() {
                    bail!(
                        "a Hyper-V generation 2 VM's data disks are VMBus SCSI (storvsc), which QEMU cannot offer here: use --gen 1 (IDE) for --disk"
                    );
                }
                super::firmware::check_ovmf(memory, "a generation 2 VM (UEFI)", "--gen 1")?;
            }
            Generation::One if devices.disks.len() > IDE_DATA_SLOTS.len() => {
                bail!(
                    "a Hyper-V generation 1 VM has IDE room for {} --disk files besides its boot disk",
                    IDE_DATA_SLOTS.len()
                )
            }
            Generation::One => {}
        }
        let qemu = crate::platform::find_qemu()?;
        crate::image::qemu_img()?;
        let (accel, warning) = super::qemu::choose_accel(opts.accel, crate::platform::probe_kvm())?;
        super::check_host_memory(memory, super::host_memory())?;
        Ok(Plan { qemu, accel, warning, generation })
    }
}

impl super::Plan for Plan {
    fn boot(self: Box<Self>, run: &super::Boot, annotator: &mut crate::symbols::Annotator) -> Result<u8> {
        super::check_memory(run.image, run.memory)?;
        super::check_initrd(run.image, run.initrd, run.memory)?;
        if let Some(w) = &self.warning {
            crate::error::warn(w);
        }
        crate::error::warn(match self.generation {
            Generation::One => {
                "--testbed: QEMU imitating a Hyper-V generation 1 VM (pc, SeaBIOS, IDE, DEC 21140), not Hyper-V"
            }
            Generation::Two => "--testbed: QEMU imitating a Hyper-V generation 2 VM (q35, OVMF), not Hyper-V",
        });
        let vm = hv::Vm {
            name: run.name,
            memory_mib: hv::hyperv_memory(run.memory.bytes()),
            generation: self.generation,
            disk: "",
        };
        let set = hv::write_set(run.image, run.initrd, run.cmdline, &vm, false, true)?;
        let cfg = Config {
            vhdx: &set.vhdx,
            memory: run.memory,
            accel: self.accel,
            generation: self.generation,
            devices: run.devices,
        };
        let mut runner = super::firmware::Testbed::new(&self.qemu, argv(&cfg), run.devices);
        supervisor::run(&mut runner, annotator)
    }
}

pub struct Config<'a> {
    pub vhdx: &'a Path,
    pub memory: Memory,
    pub accel: Accel,
    pub generation: Generation,
    pub devices: &'a Devices,
}

/// QEMU's arguments for the generation's shape.
pub fn argv(cfg: &Config) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let machine = match cfg.generation {
        Generation::One => "pc,vmport=off",
        Generation::Two => "q35,vmport=off",
    };
    push(&["-M", machine, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-smp", "1"]);
    push(&["-m", &cfg.memory.qemu_arg(), "-serial", "stdio"]);
    match cfg.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host,-arch-capabilities"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    if cfg.generation == Generation::Two {
        push(&["-bios", OVMF]);
    }
    let file = |p: &Path| p.display().to_string().replace(',', ",,");
    // The boot disk is never written (the guest withholds it from the app).
    // Gen1: IDE primary master; Gen2: the first SATA port of q35's AHCI.
    push(&[
        "-drive",
        &format!("file={},if=none,id=boot,format=vhdx,snapshot=on", file(cfg.vhdx)),
        "-device",
        "ide-hd,bus=ide.0,unit=0,drive=boot,bootindex=0",
    ]);
    for (i, (disk, (bus, unit))) in cfg.devices.disks.iter().zip(IDE_DATA_SLOTS).enumerate() {
        push(&[
            "-drive",
            &format!("file={},if=none,id=disk{i},format=raw", file(disk)),
            "-device",
            &format!("ide-hd,bus=ide.{bus},unit={unit},drive=disk{i}"),
        ]);
    }
    let net = super::qemu::net_args(cfg.devices, "tulip");
    push(&net.iter().map(String::as_str).collect::<Vec<_>>());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Net;

    fn strings(v: Vec<OsString>) -> String {
        v.into_iter().map(|s| s.into_string().unwrap()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn gen1_is_a_pc_with_ide_and_a_tulip() {
        let devices = Devices {
            publish: vec![(8080, 80)],
            net: Some(Net::User),
            disks: vec!["/d/a.img".into(), "/d/b.img".into()],
            ..Default::default()
        };
        let cfg = Config {
            vhdx: Path::new("/b/h.vhdx"),
            memory: Memory::parse("64M").unwrap(),
            accel: Accel::Tcg,
            generation: Generation::One,
            devices: &devices,
        };
        let a = strings(argv(&cfg));
        for part in [
            "-M pc,vmport=off",
            "file=/b/h.vhdx,if=none,id=boot,format=vhdx,snapshot=on -device ide-hd,bus=ide.0,unit=0,drive=boot,bootindex=0",
            "ide-hd,bus=ide.0,unit=1,drive=disk0",
            "ide-hd,bus=ide.1,unit=0,drive=disk1",
            "hostfwd=tcp:127.0.0.1:8080-:80 -device tulip,netdev=net0",
        ] {
            assert!(a.contains(part), "{part} in {a}");
        }
        assert!(!a.contains("-bios") && !a.contains("isa-debug-exit") && !a.contains("-kernel"), "{a}");
        let gen2 = Config { generation: Generation::Two, devices: &Devices::default(), ..cfg };
        let a = strings(argv(&gen2));
        assert!(a.contains("-M q35,vmport=off") && a.contains(&format!("-bios {OVMF}")), "{a}");
    }
}
