//! The vmware platform: the disk `unikit build --plat vmware` writes (hybrid
//! GPT: our BIOS and UEFI loaders), booted by `unikit run --plat vmware
//! --testbed` in QEMU shaped like a VMware VM (vmport, PVSCSI, vmxnet3 or
//! e1000, SeaBIOS or OVMF, no exit device but ACPI power-off), and the
//! VMware files themselves (VMDK, .vmx, OVA).
//!
//! Nothing here runs on VMware: QEMU imitates its devices and firmware.
//! OVMF cannot run under this host's kvm_pvm, so EFI boots use TCG.
mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{BIN, assert_error, expect_console as expect, repo, stderr, stdout, unikit_args as unikit};

fn hello(extra: &[&str]) -> Output {
    let dir = repo().join("examples/hello");
    let mut a = vec!["run", "-C", dir.to_str().unwrap(), "--plat", "vmware", "--testbed"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--", "one", "two words", "--exit", "3"]);
    unikit(&a)
}

const HELLO: &[&str] = &[
    "unikit 0.1.0 on vmware",
    "VMware backdoor version",
    // QEMU's vmport has no MESSAGE command: the disk's command line stays.
    "no RPCI channel (guestinfo not read)",
    "Hello from unikit on vmware!",
    "argv[1] = \"one\"",
    "argv[2] = \"two words\"",
    "argv[4] = \"3\"",
];

#[test]
fn hello_under_seabios_from_pvscsi_tcg() {
    let o = hello(&["--accel", "tcg"]);
    expect(&o, 3, HELLO);
    assert!(stderr(&o).contains("QEMU imitating a VMware VM"), "{}", stderr(&o));
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn hello_under_seabios_from_pvscsi_kvm() {
    expect(&hello(&["--accel", "kvm"]), 3, HELLO);
}

#[test]
fn hello_under_ovmf_tcg() {
    expect(&hello(&["--accel", "tcg", "--firmware", "efi", "-m", "64M"]), 3, HELLO);
}

/// An `--exec` program: the loader image, its initrd and a command line
/// with the program's arguments all travel on the disk.
#[test]
fn a_static_program_from_the_disk_under_both_firmwares() {
    let Some(prog) = static_hello() else { return };
    for fw in ["seabios", "efi"] {
        let o = unikit(&[
            "run",
            "--exec",
            prog.to_str().unwrap(),
            "--plat",
            "vmware",
            "--testbed",
            "--accel",
            "tcg",
            "--firmware",
            fw,
            "-m",
            "64M",
            "-q",
            "--",
            "from",
            "the disk",
        ]);
        expect(&o, 0, &["argv[1]=from", "argv[2]=the disk"]);
    }
}

/// A static musl C program printing its arguments (musl-gcc, as tests/exec.rs
/// builds its programs); None (and a note) where musl-gcc is missing.
fn static_hello() -> Option<PathBuf> {
    let dir = repo().join("target/vmware-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("args.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(int c, char **v) { for (int i = 0; i < c; i++) printf(\"argv[%d]=%s\\n\", i, v[i]); return 0; }\n",
    )
    .unwrap();
    let out = dir.join("args");
    match Command::new("musl-gcc").args(["-static", "-O2", "-o"]).arg(&out).arg(&src).status() {
        Ok(s) if s.success() => Some(out),
        _ => {
            eprintln!("SKIPPED: musl-gcc not found (scripts/setup-host.sh installs musl-tools)");
            None
        }
    }
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn build_writes_a_vmdk_a_vmx_and_an_ova_with_matching_sums() {
    let out = tempfile::tempdir().unwrap();
    let dir = repo().join("examples/hello");
    let o = unikit(&[
        "build",
        "-q",
        "-C",
        dir.to_str().unwrap(),
        "--plat",
        "vmware",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let base = out.path().join("hello_vmware-x86_64");
    let with = |ext: &str| PathBuf::from(format!("{}{ext}", base.display()));

    // qemu-img reads the VMDK as VMware's sparse format.
    let info = Command::new("qemu-img").args(["info", "--output=json"]).arg(with(".vmdk")).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("\"format\": \"vmdk\"") && info.contains("monolithicSparse"), "{info}");

    let vmx = std::fs::read_to_string(with(".vmx")).unwrap();
    for line in
        ["guestOS = \"other-64\"", "scsi0.virtualDev = \"pvscsi\"", "scsi0:0.fileName = \"hello_vmware-x86_64.vmdk\""]
    {
        assert!(vmx.contains(line), "{line} in\n{vmx}");
    }

    // The OVA: descriptor first, manifest next, each sum right; the OVF
    // parses and names the disk with its real size.
    let mut a = tar::Archive::new(std::fs::File::open(with(".ova")).unwrap());
    let mut files = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        files.push((e.path().unwrap().to_string_lossy().into_owned(), data));
    }
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["hello.ovf", "hello.mf", "hello-disk1.vmdk"]);
    let mf = String::from_utf8(files[1].1.clone()).unwrap();
    for (name, data) in [&files[0], &files[2]] {
        assert!(mf.contains(&format!("SHA256({name})= {}", sha256(data))), "{mf}");
    }
    let ovf = String::from_utf8(files[0].1.clone()).unwrap();
    let doc = roxmltree::Document::parse(&ovf).expect("the OVF is well-formed XML");
    let file = doc.descendants().find(|n| n.has_tag_name("File")).expect("a File reference");
    let size_attr = file.attributes().find(|a| a.name() == "size").unwrap().value();
    assert_eq!(size_attr, files[2].1.len().to_string());
    assert!(&files[2].1[..4] == b"KDMV", "the OVA's disk is a sparse VMDK");
}

#[test]
fn bad_input_gets_one_clear_error() {
    let dir = repo().join("examples/hello");
    let d = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "-C", d, "--plat", "vmware"];
        a.extend_from_slice(extra);
        unikit(&a)
    };
    assert_error(&run(&[]), "VMware Workstation or Fusion (vmrun) is not installed");
    assert_error(&run(&["--testbed", "--firmware", "qboot"]), "--firmware qboot cannot boot a disk");
    assert_error(&run(&["--testbed", "--firmware", "efi", "-m", "16M"]), "--firmware efi needs at least 40 MiB");
    assert_error(&run(&["--testbed", "--nic", "rtl8139"]), "invalid value 'rtl8139'");
    let q = unikit(&["run", "-C", d, "--plat", "qemu", "--testbed"]);
    assert_error(&q, "--testbed only applies to the vmware and hyperv platforms");
    let q = unikit(&["run", "-C", d, "--plat", "qemu", "--firmware", "efi"]);
    assert_error(&q, "--firmware efi boots a disk image");
    // QEMU but no qemu-img on PATH: the VMDK cannot be written.
    let bin = tempfile::tempdir().unwrap();
    let qemu = common_which("qemu-system-x86_64").expect("QEMU");
    std::os::unix::fs::symlink(qemu, bin.path().join("qemu-system-x86_64")).unwrap();
    let o = Command::new(BIN)
        .args(["run", "-C", d, "--plat", "vmware", "--testbed", "--accel", "tcg"])
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let err = assert_error(&o, "qemu-img not found");
    assert!(err.contains("apt-get install qemu-utils"), "{err}");
}

fn common_which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// examples/counter on a FAT disk on PVSCSI: formatted, then counted across
/// two more boots. The VM's own boot disk is PVSCSI target 0 and must be
/// withheld (else counter would take it for its data disk).
#[test]
fn counter_on_pvscsi_survives_boots_and_the_boot_disk_is_withheld() {
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
            "vmware",
            "--testbed",
            "--accel",
            "tcg",
            "--disk",
            disk.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        let o = unikit(&a);
        expect(&o, 0, &["pvscsi0: the boot disk, not given to the app", &format!("counter: boot {boot}")]);
        assert!(stdout(&o).contains("pvscsi1: pci"), "{}", stdout(&o));
    }
}

/// A `vmrun` on PATH: tests/vmware/fake-vmrun, which boots the .vmx's own
/// disk in QEMU shaped like VMware with COM1 written to the .vmx's serial
/// log, as VMware would (no VMware product can run here).
fn fake_vmrun() -> (tempfile::TempDir, tempfile::TempDir, String) {
    let bin = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("tests/vmware/fake-vmrun"), bin.path().join("vmrun")).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    (bin, state, path)
}

#[test]
fn vmrun_runs_the_vm_and_gives_back_its_exit_code() {
    let (_bin, state, path) = fake_vmrun();
    let dir = repo().join("examples/hello");
    let o = Command::new(BIN)
        .args(["run", "-C", dir.to_str().unwrap(), "--plat", "vmware", "--", "one", "--exit", "5"])
        .env("PATH", &path)
        .env("FAKE_VMRUN_STATE", state.path())
        .output()
        .unwrap();
    expect(&o, 5, &["Hello from unikit on vmware!", "argv[1] = \"one\""]);
    let calls = std::fs::read_to_string(state.path().join("calls")).unwrap();
    let vmx = repo().join("examples/hello/build/hello_vmware-x86_64.vmx").canonicalize().unwrap();
    assert_eq!(calls.trim(), format!("-T ws start {} nogui", vmx.display()));
    // vmrun's own options are VMware's: -p has no port forward to give.
    let o = Command::new(BIN)
        .args(["run", "-C", dir.to_str().unwrap(), "--plat", "vmware", "-p", "8080:80"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_error(&o, "-p and --net need --testbed");
}

/// SIGTERM to `unikit run` powers the VMware VM off (vmrun stop hard).
#[test]
fn vmrun_vm_is_stopped_when_the_run_is() {
    let (_bin, state, path) = fake_vmrun();
    let dir = repo().join("examples/httpd");
    let mut child = Command::new(BIN)
        .args(["run", "-q", "-C", dir.to_str().unwrap(), "--plat", "vmware"])
        .env("PATH", &path)
        .env("FAKE_VMRUN_STATE", state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the VM to run.
    let pidfile = state.path().join("pid");
    let t0 = std::time::Instant::now();
    while !pidfile.exists() {
        assert!(t0.elapsed().as_secs() < 300, "the VM never started");
        assert!(child.try_wait().unwrap().is_none(), "unikit ended early");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let qemu: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    let calls = std::fs::read_to_string(state.path().join("calls")).unwrap();
    assert!(calls.lines().any(|l| l.starts_with("-T ws stop ") && l.ends_with(" hard")), "{calls}");
    // SAFETY: kill(pid, 0) only asks whether the process exists.
    let alive = unsafe { libc::kill(qemu, 0) } == 0;
    assert!(!alive, "the VM's QEMU is still running");
}

/// A panic and a CPU exception in a VMware-shaped VM: the report on COM1,
/// symbolized, and the distinct exit codes, ended through ACPI power-off.
#[test]
fn crashes_give_their_report_and_exit_code() {
    let dir = repo().join("tests/kernel-tests");
    for (mode, code, needle) in [
        ("panic", 101, "PANIC in thread 'main': deliberate panic from kernel-tests"),
        ("fault", 102, "CPU EXCEPTION in thread 'main': page fault (#PF) (vector 14)"),
    ] {
        let o = unikit(&[
            "run",
            "-C",
            dir.to_str().unwrap(),
            "--plat",
            "vmware",
            "--testbed",
            "--accel",
            "tcg",
            "-q",
            "--",
            mode,
        ]);
        expect(&o, code, &[needle, "backtrace:", "unikit_kernel::boot::start+0x"]);
    }
}
