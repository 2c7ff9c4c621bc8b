//! The VMware-family NICs on QEMU q35: examples/httpd answering curl
//! through `-p` over vmxnet3 and over e1000 (`--nic`), under TCG and KVM
//! (e1000e under TCG),
//! including a 1.5 MiB answer; and `--nic` refused where there is no PCI.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `unikit run`, killed (with its QEMU) when dropped.
struct Guest {
    child: Child,
    log: PathBuf,
}

impl Guest {
    fn start(args: &[&str], tag: &str) -> Guest {
        let log = std::env::temp_dir().join(format!("unikit-nics-test-{tag}-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_unikit"));
        // Its own process group, so that dropping it stops QEMU too.
        use std::os::unix::process::CommandExt;
        cmd.arg("run").args(args).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out).process_group(0);
        Guest { child: cmd.spawn().expect("cannot start unikit"), log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `curl ARGS` (stdout as bytes); with `wait`, retried until the server
/// answers (build and boot time).
fn curl(args: &[&str], guest: &mut Guest, wait: bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let out =
            Command::new("curl").args(["-s", "--max-time", "60"]).args(args).output().expect("curl not installed");
        if out.status.success() {
            return out.stdout;
        }
        if let Ok(Some(st)) = guest.child.try_wait() {
            panic!("unikit exited ({st}) before answering:\n{}", guest.log());
        }
        if !wait || Instant::now() > deadline {
            panic!("curl {args:?} failed ({}):\n{}", out.status, guest.log());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

/// The httpd site plus `big.bin`, 1.5 MiB of a pattern no run of pages
/// repeats (so a misplaced or duplicated segment shows).
fn site(dir: &Path) -> Vec<u8> {
    let www = repo().join("examples/httpd/www");
    let copy = Command::new("cp").arg("-r").arg(www.join(".")).arg(dir).status().unwrap();
    assert!(copy.success());
    let big: Vec<u8> = (0..1536 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.join("static/big.bin"), &big).unwrap();
    big
}

/// httpd over `--nic NIC`, which the guest names `DEVICE-0` and drives
/// with `MODE` ("interrupts (msi-x)" or "polled").
fn httpd_over(nic: &str, device: &str, mode: &str, accel: &str) {
    httpd_on(&["--plat", "qemu"], nic, device, mode, accel)
}

/// The same on `plat` (qemu q35, or the VMware-shaped test bed).
fn httpd_on(plat: &[&str], nic: &str, device: &str, mode: &str, accel: &str) {
    let port = free_port();
    let root = tempfile::tempdir().unwrap();
    let big = site(root.path());
    let proj = repo().join("examples/httpd");
    let publish = format!("{port}:80");
    let mut args = vec!["-C", proj.to_str().unwrap()];
    args.extend_from_slice(plat);
    let mut g = Guest::start(
        &[&args[..], &["--accel", accel, "--nic", nic, "-p", &publish, "--rootfs", root.path().to_str().unwrap()]]
            .concat(),
        &format!("{nic}-{accel}-{}", plat.len()),
    );
    let base = format!("http://127.0.0.1:{port}");
    let index = text(curl(&[&format!("{base}/")], &mut g, true));
    assert!(index.contains("Hello from unikit!"), "{index}");
    // The page came over the NIC asked for, not virtio-net.
    let log = g.log();
    // vmxnet3-0 and e1000-0 name their PCI slot first; tulip0 its chip.
    let prefix = if device == "tulip" { "tulip0: DEC ".to_string() } else { format!("{device}-0: pci ") };
    assert!(log.contains(&prefix), "no {device} device line:\n{log}");
    assert!(!log.contains("virtio-net"), "{log}");
    let line = log.lines().find(|l| l.starts_with(&prefix)).unwrap();
    assert!(line.ends_with(mode), "{line}");
    // Two requests on one kept-alive connection.
    let reuse = text(curl(
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects}\n",
            &format!("{base}/"),
            &format!("{base}/static/style.css"),
        ],
        &mut g,
        false,
    ));
    assert_eq!(reuse.lines().collect::<Vec<_>>(), ["1", "0"], "second request did not reuse the connection");
    let got = curl(&[&format!("{base}/static/big.bin")], &mut g, false);
    assert_eq!(got.len(), big.len(), "1.5 MiB answer truncated or padded");
    assert!(got == big, "1.5 MiB answer corrupted");
    // 16 clients at once.
    let urls: Vec<String> = (0..16).map(|i| format!("{base}/?client={i}")).collect();
    let mut args: Vec<&str> = vec!["--parallel", "--parallel-max", "16", "-w", "%{http_code}\n"];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let codes = text(curl(&args, &mut g, false));
    assert_eq!(codes.lines().filter(|c| *c == "200").count(), 16, "{codes}");
}

#[test]
fn httpd_vmxnet3_tcg() {
    httpd_over("vmxnet3", "vmxnet3", "interrupts (msi-x)", "tcg");
}

#[test]
fn httpd_e1000_tcg() {
    httpd_over("e1000", "e1000", "polled", "tcg");
}

/// The 82574L, through the same driver and its legacy descriptors, with
/// MSI-X.
#[test]
fn httpd_e1000e_tcg() {
    httpd_over("e1000e", "e1000", "interrupts (msi-x)", "tcg");
}

/// The VMware-shaped test bed (`-M pc,vmport=on`, SeaBIOS, the image's
/// own disk on PVSCSI): the same NICs as a VMware VM has them.
#[test]
fn httpd_vmware_testbed_vmxnet3_tcg() {
    httpd_on(&["--plat", "vmware", "--testbed"], "vmxnet3", "vmxnet3", "interrupts (msi-x)", "tcg");
}

/// The Hyper-V generation 1 test bed (pc, SeaBIOS, the image's own disk
/// on IDE): its legacy network adapter, a DEC 21143 (QEMU tulip).
#[test]
fn httpd_hyperv_gen1_testbed_tulip_tcg() {
    httpd_on(&["--plat", "hyperv", "--testbed", "--gen", "1"], "tulip", "tulip", ")", "tcg");
}

#[test]
fn httpd_vmware_testbed_e1000_tcg() {
    httpd_on(&["--plat", "vmware", "--testbed"], "e1000", "e1000", "polled", "tcg");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn httpd_vmxnet3_kvm() {
    httpd_over("vmxnet3", "vmxnet3", "interrupts (msi-x)", "kvm");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn httpd_e1000_kvm() {
    httpd_over("e1000", "e1000", "polled", "kvm");
}

/// microvm has no PCI: a vmxnet3 cannot be attached. One `error:` line,
/// exit 125, before any build.
#[test]
fn nic_vmxnet3_on_microvm_is_refused() {
    let proj = repo().join("examples/hello");
    let out = Command::new(env!("CARGO_BIN_EXE_unikit"))
        .args(["run", "-C", proj.to_str().unwrap(), "--plat", "qemu", "--machine", "microvm", "--nic", "vmxnet3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: --nic vmxnet3: microvm has no PCI bus"), "{err}");
}

/// Other platforms have no choice of NIC.
#[test]
fn nic_on_fc_is_refused() {
    let proj = repo().join("examples/hello");
    let out = Command::new(env!("CARGO_BIN_EXE_unikit"))
        .args(["run", "-C", proj.to_str().unwrap(), "--plat", "fc", "--nic", "e1000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.trim(), "error: --nic only applies to the qemu, vmware and hyperv platforms, not fc");
}
