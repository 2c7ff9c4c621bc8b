//! Disks on VMware's PVSCSI adapter (`--disk-bus pvscsi`, QEMU q35's
//! `pvscsi` + `scsi-hd`): examples/counter keeps its count across boots,
//! raw unaligned block I/O survives a reboot, several disks come up in
//! target order, a disk past 2 TiB is driven with READ CAPACITY (16) and
//! READ/WRITE (16) (a sparse file: costs no space), and the CLI refuses the
//! option where there is no PCI bus.
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unikit")).arg("run").args(args).output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), so, se)
}

/// `unikit run -C PROJECT PLAT --disk-bus pvscsi --disk D... [-- APP]`.
fn boot(project: &str, plat: &[&str], disks: &[&Path], app: &[&str]) -> (i32, String) {
    let proj = repo().join(project);
    let mut a: Vec<String> = vec!["-C".into(), proj.to_str().unwrap().into()];
    a.extend(plat.iter().map(|s| s.to_string()));
    a.extend(["--disk-bus".into(), "pvscsi".into()]);
    for d in disks {
        a.extend(["--disk".into(), d.to_str().unwrap().into()]);
    }
    if !app.is_empty() {
        a.push("--".into());
        a.extend(app.iter().map(|s| s.to_string()));
    }
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, so, se) = run(&args);
    (code, format!("{so}{se}"))
}

fn sparse(dir: &Path, name: &str, len: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().set_len(len).unwrap();
    p
}

/// The count survives two reboots, raw unaligned I/O a reboot, and
/// `fsck.fat` finds the volume clean.
fn counter_survives_reboots(plat: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "disk.img", 16 << 20);
    for (i, app) in [(1, &["--format"][..]), (2, &[][..]), (3, &[][..])] {
        let (code, out) = boot("examples/counter", plat, &[&img], app);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("pvscsi0: pci ") && out.contains(" target 0, QEMU QEMU HARDDISK, 32768 blocks of 512 bytes"),
            "{out}"
        );
        assert!(out.contains(&format!("counter: boot {i}")), "{out}");
        assert!(out.contains(", interrupts (MSI)"), "{out}");
        assert!(!out.contains("virtio-blk"), "{out}");
    }
    if let Some(fsck) = ["/usr/sbin/fsck.fat", "/sbin/fsck.fat"].iter().find(|p| Path::new(p).exists()) {
        let o = Command::new(fsck).arg("-n").arg(&img).output().unwrap();
        assert!(o.status.success(), "fsck.fat: {}", String::from_utf8_lossy(&o.stdout));
    }
    for mode in ["disk-write", "disk-read"] {
        let (code, out) = boot("tests/kernel-tests", plat, &[&img], &[mode, "42"]);
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn pvscsi_counter_tcg() {
    counter_survives_reboots(&["--plat", "qemu", "--accel", "tcg"]);
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn pvscsi_counter_kvm() {
    counter_survives_reboots(&["--plat", "qemu", "--accel", "kvm"]);
}

#[test]
fn pvscsi_two_disks_in_target_order_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let a = sparse(dir.path(), "a.img", 8 << 20);
    let b = sparse(dir.path(), "b.img", 16 << 20);
    let (code, out) = boot("examples/counter", &["--plat", "qemu", "--accel", "tcg"], &[&a, &b], &["--format"]);
    assert_eq!(code, 0, "{out}");
    let first = out.find("pvscsi0: ").unwrap_or_else(|| panic!("no pvscsi0 in:\n{out}"));
    let second = out.find("pvscsi1: ").unwrap_or_else(|| panic!("no pvscsi1 in:\n{out}"));
    assert!(first < second, "{out}");
    let line = |at: usize| out[at..].lines().next().unwrap().to_string();
    assert!(line(first).contains(" target 0, ") && line(first).contains(" 16384 blocks of 512 bytes"), "{out}");
    assert!(line(second).contains(" target 1, ") && line(second).contains(" 32768 blocks of 512 bytes"), "{out}");
    // The app's disk 0 is the first --disk: formatted; the second untouched.
    let boot_sector = std::fs::read(&a).unwrap();
    assert_eq!(&boot_sector[510..512], &[0x55, 0xaa], "first disk not formatted");
    assert!(std::fs::read(&b).unwrap().iter().all(|&x| x == 0), "second disk was written");
}

#[test]
fn pvscsi_disk_past_2_tib_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let size = 3u64 << 40;
    let img = sparse(dir.path(), "big.img", size);
    let plat = ["--plat", "qemu", "--accel", "tcg"];
    let (code, out) = boot("tests/kernel-tests", &plat, &[&img], &["disk-write", "9", "end"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!(" {} blocks of 512 bytes (16-byte LBAs)", size / 512)), "{out}");
    // The pattern landed where the guest meant it: 7 bytes before the end.
    let at = size - 70_000 - 7;
    assert!(out.contains(&format!("kernel-tests: wrote 70000 bytes at {at}")), "{out}");
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(&img).unwrap();
    f.seek(SeekFrom::Start(at - 1)).unwrap();
    let mut got = vec![0u8; 70_000 + 8];
    f.read_exact(&mut got).unwrap();
    let want: Vec<u8> = (0..70_000u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(9)).collect();
    assert_eq!(got[0], 0);
    assert!(got[1..70_001] == want[..], "pattern not found at {at}");
    assert!(got[70_001..].iter().all(|&x| x == 0));
    let (code, out) = boot("tests/kernel-tests", &plat, &[&img], &["disk-read", "9", "end"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("kernel-tests: read back 70000 bytes: match"), "{out}");
}

#[test]
fn disk_bus_pvscsi_refused_without_pci() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse(dir.path(), "disk.img", 1 << 20);
    let counter = repo().join("examples/counter");
    let c = counter.to_str().unwrap();
    let i = img.to_str().unwrap();
    let cases: [(&[&str], &str); 2] = [
        (
            &["-C", c, "--plat", "qemu", "--machine", "microvm", "--disk-bus", "pvscsi", "--disk", i],
            "error: --disk-bus pvscsi needs a PCI bus: use --machine q35",
        ),
        (
            &["-C", c, "--plat", "linuxu", "--disk-bus", "pvscsi", "--disk", i],
            "error: --disk-bus pvscsi only applies to the qemu platform (machine q35 or pc), not linuxu",
        ),
    ];
    for (args, want) in cases {
        let (code, so, se) = run(args);
        assert_eq!(code, 125, "{so}{se}");
        assert_eq!(se.lines().filter(|l| l.starts_with("error: ")).count(), 1, "{se}");
        assert!(se.contains(want), "{se}");
        assert!(!se.contains("panicked"), "{se}");
    }
    // An unknown bus is clap's error (exit 125 too).
    let (code, _, se) = run(&["-C", c, "--plat", "qemu", "--disk-bus", "ide", "--disk", i]);
    assert_eq!(code, 125, "{se}");
    assert!(se.contains("invalid value 'ide' for '--disk-bus"), "{se}");
}
