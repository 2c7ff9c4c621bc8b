//! The hyperv platform: the VHDX, the fixed VHD for Azure and the
//! PowerShell script `unikit build --plat hyperv` writes, and the disk
//! booted by `unikit run --plat hyperv --testbed` in QEMU shaped like a
//! Hyper-V generation 1 VM (pc, SeaBIOS, IDE, DEC 21140) or generation 2
//! VM (q35, OVMF).
//!
//! Nothing here runs on Hyper-V or Azure. VMBus (netvsc, storvsc, the
//! integration services) cannot be offered by QEMU on this host's KVM (no
//! SynIC): the drivers' own tests run it against a simulated host.
mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{assert_error, expect_console as expect, repo, stderr, stdout, unikit_args as unikit};

fn hello(extra: &[&str]) -> Output {
    let dir = repo().join("examples/hello");
    let mut a = vec!["run", "-C", dir.to_str().unwrap(), "--plat", "hyperv", "--testbed"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--", "one", "two words", "--exit", "3"]);
    unikit(&a)
}

const HELLO: &[&str] = &["Hello from unikit on", "argv[1] = \"one\"", "argv[2] = \"two words\"", "argv[4] = \"3\""];

#[test]
fn gen1_hello_tcg() {
    let o = hello(&["--gen", "1", "--accel", "tcg"]);
    expect(&o, 3, HELLO);
    assert!(stderr(&o).contains("QEMU imitating a Hyper-V generation 1 VM"), "{}", stderr(&o));
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn gen1_hello_kvm() {
    expect(&hello(&["--gen", "1", "--accel", "kvm"]), 3, HELLO);
}

#[test]
fn gen2_hello_under_ovmf_tcg() {
    let o = hello(&["--gen", "2", "--accel", "tcg", "-m", "64M"]);
    expect(&o, 3, HELLO);
    assert!(stderr(&o).contains("QEMU imitating a Hyper-V generation 2 VM"), "{}", stderr(&o));
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn build_writes_a_vhdx_an_azure_vhd_and_the_script() {
    let out = tempfile::tempdir().unwrap();
    let dir = repo().join("examples/hello");
    let o = unikit(&[
        "build",
        "-q",
        "-C",
        dir.to_str().unwrap(),
        "--plat",
        "hyperv",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let base = out.path().join("hello_hyperv-x86_64");
    let with = |ext: &str| PathBuf::from(format!("{}{ext}", base.display()));

    for (file, format) in [(with(".vhdx"), "vhdx"), (with(".vhd"), "vpc")] {
        let info = Command::new("qemu-img").args(["info", "--output=json", "-f", format]).arg(&file).output().unwrap();
        assert!(info.status.success(), "qemu-img info {}: {}", file.display(), String::from_utf8_lossy(&info.stderr));
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(text.contains(&format!("\"format\": \"{format}\"")), "{text}");
    }

    // Azure: a fixed VHD whose virtual size is a whole number of MiB,
    // with the 512-byte footer (big-endian) at the end and a valid checksum.
    let vhd = std::fs::read(with(".vhd")).unwrap();
    let footer = &vhd[vhd.len() - 512..];
    assert_eq!(&footer[..8], b"conectix");
    assert_eq!(be32(footer, 60), 2, "disk type: fixed");
    let size = u64::from_be_bytes(footer[48..56].try_into().unwrap());
    assert_eq!(size % (1 << 20), 0, "virtual size {size} is not a whole MiB");
    assert_eq!(size, vhd.len() as u64 - 512);
    let sum: u32 = footer.iter().enumerate().filter(|(i, _)| !(64..68).contains(i)).map(|(_, &b)| u32::from(b)).sum();
    assert_eq!(!sum, be32(footer, 64), "footer checksum");
    // The disk inside is our hybrid GPT disk.
    assert_eq!(&vhd[510..512], &[0x55, 0xaa]);
    assert_eq!(&vhd[512..520], b"EFI PART");

    let script = std::fs::read_to_string(with(".ps1")).unwrap();
    for part in [
        "New-VM -Name $Name -Generation $Generation",
        "hello_hyperv-x86_64.vhdx",
        "-EnableSecureBoot Off",
        "Set-VMComPort",
    ] {
        assert!(script.contains(part), "{part} in\n{script}");
    }
}

#[test]
fn bad_input_gets_one_clear_error() {
    let dir = repo().join("examples/hello");
    let d = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "-C", d, "--plat", "hyperv"];
        a.extend_from_slice(extra);
        unikit(&a)
    };
    assert_error(&run(&[]), "Hyper-V runs on Windows");
    assert_error(&run(&["--testbed", "--gen", "2", "-p", "8080:80"]), "use --gen 1 (the legacy DEC 21140 adapter)");
    assert_error(&run(&["--testbed", "--gen", "2", "-m", "16M"]), "needs at least 40 MiB");
    assert_error(&run(&["--testbed", "--gen", "3"]), "invalid value '3'");
    let dir_disks = tempfile::tempdir().unwrap();
    let mut extra = vec!["--testbed", "--gen", "1"];
    let files: Vec<String> = (0..4)
        .map(|i| {
            let p = dir_disks.path().join(format!("d{i}.img"));
            std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
            p.display().to_string()
        })
        .collect();
    for f in &files {
        extra.extend(["--disk", f.as_str()]);
    }
    assert_error(&run(&extra), "IDE room for 3 --disk files");
    assert_error(
        &unikit(&["run", "-C", d, "--plat", "qemu", "--gen", "1"]),
        "--gen only applies to the hyperv platform",
    );
}

/// examples/counter on an IDE disk of the generation 1 test bed, across
/// boots; the VM's own disk (IDE primary master) is withheld from the app.
#[test]
fn gen1_counter_on_ide_survives_boots_and_the_boot_disk_is_withheld() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("data.img");
    std::fs::File::create(&disk).unwrap().set_len(32 << 20).unwrap();
    let project = repo().join("examples/counter");
    for (boot, extra) in [(1, &["--", "--format"][..]), (2, &[][..]), (3, &[][..])] {
        let mut a = vec![
            "run",
            "-C",
            project.to_str().unwrap(),
            "--plat",
            "hyperv",
            "--testbed",
            "--gen",
            "1",
            "--accel",
            "tcg",
            "--disk",
            disk.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let o = unikit(&a);
        expect(&o, 0, &["ide0: the boot disk, not given to the app", &format!("counter: boot {boot}")]);
        assert!(stdout(&o).contains("ide1: ATA disk"), "{}", stdout(&o));
    }
}

/// A panic in the generation 2 shape (UEFI): the report and exit code.
#[test]
fn gen2_panic_gives_its_report_and_exit_code() {
    let dir = repo().join("tests/kernel-tests");
    let o = unikit(&[
        "run",
        "-C",
        dir.to_str().unwrap(),
        "--plat",
        "hyperv",
        "--testbed",
        "--gen",
        "2",
        "--accel",
        "tcg",
        "-m",
        "64M",
        "-q",
        "--",
        "panic",
    ]);
    expect(&o, 101, &["PANIC in thread 'main': deliberate panic from kernel-tests", "backtrace:"]);
}
