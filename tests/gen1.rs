//! Hyper-V Generation 1's devices in QEMU's `-M pc` (i440fx): the DEC
//! 21140-family "legacy network adapter" (QEMU `tulip`, a 21143) and ATA
//! disks on the PIIX IDE controller. examples/httpd answers curl over the
//! tulip through `-p`; examples/counter keeps its count on an IDE disk
//! across boots; several IDE disks come up as ide0, ide1, ... in
//! channel/master-slave order.
use std::net::TcpListener;
use std::path::PathBuf;
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
        let log = std::env::temp_dir().join(format!("unikit-gen1-test-{tag}-{}.log", std::process::id()));
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

/// `curl ARGS`, retried (when `wait`) until the server answers.
fn curl(args: &[&str], guest: &mut Guest, wait: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let out =
            Command::new("curl").args(["-s", "--max-time", "20"]).args(args).output().expect("curl not installed");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if let Ok(Some(st)) = guest.child.try_wait() {
            panic!("the guest stopped ({st}) before answering:\n{}", guest.log());
        }
        if !wait || Instant::now() > deadline {
            panic!("curl {args:?} failed ({}):\n{}", out.status, guest.log());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn httpd_over_tulip(accel: &str, machine: &str) {
    let port = free_port();
    let www = repo().join("examples/httpd/www");
    let proj = repo().join("examples/httpd");
    let publish = format!("{port}:80");
    let mut g = Guest::start(
        &[
            "-C",
            proj.to_str().unwrap(),
            "--plat",
            "qemu",
            "--accel",
            accel,
            "--machine",
            machine,
            "--nic",
            "tulip",
            "-p",
            &publish,
            "--rootfs",
            www.to_str().unwrap(),
        ],
        &format!("httpd-{accel}-{machine}"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let index = curl(&[&format!("{base}/")], &mut g, true);
    assert!(index.contains("Hello from unikit!"), "{index}");
    let log = g.log();
    assert!(log.contains("tulip0: DEC 21143 at pci"), "{log}");
    if machine == "pc" {
        assert!(log.contains("interrupts (INTx, irq "), "the tulip is polled:\n{log}");
    }
    assert!(log.contains("net: tulip0 "), "the stack did not take the tulip:\n{log}");
    assert!(!log.contains("virtio"), "{log}");
    // Keep-alive: two requests, one connection.
    let reuse = curl(
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
    );
    assert_eq!(reuse.lines().collect::<Vec<_>>(), ["1", "0"], "second request did not reuse the connection");
    // 64 KiB: many full-size frames through both rings, more than once round.
    let big = curl(
        &["-o", "/dev/null", "-w", "%{http_code} %{size_download}", &format!("{base}/static/64k.txt")],
        &mut g,
        false,
    );
    assert_eq!(big, "200 65536");
    let body = curl(&[&format!("{base}/static/64k.txt")], &mut g, false);
    let want = std::fs::read_to_string(repo().join("examples/httpd/www/static/64k.txt")).unwrap();
    assert!(body == want, "64 KiB body differs");
    // 32 clients at once.
    let urls: Vec<String> = (0..32).map(|i| format!("{base}/?client={i}")).collect();
    let mut args: Vec<&str> = vec!["--parallel", "--parallel-max", "32", "-w", "%{http_code}\n"];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let codes = curl(&args, &mut g, false);
    assert_eq!(codes.lines().filter(|c| *c == "200").count(), 32, "{codes}");
}

#[test]
fn httpd_tulip_tcg() {
    httpd_over_tulip("tcg", "pc");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn httpd_tulip_kvm() {
    httpd_over_tulip("kvm", "pc");
}

/// On q35 the interrupt line qboot writes does not reach the I/O APIC: the
/// probe's loopback interrupt test notices and the tulip is polled, and
/// still serves.
#[test]
fn httpd_tulip_q35_tcg() {
    httpd_over_tulip("tcg", "q35");
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unikit")).arg("run").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn counter_on_ide(accel: &str) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
    let img = img.to_str().unwrap();
    let counter = repo().join("examples/counter");
    let kt = repo().join("tests/kernel-tests");
    let base = |p: &std::path::Path| -> Vec<String> {
        ["-C", p.to_str().unwrap(), "--plat", "qemu", "--accel", accel, "--machine", "pc", "--disk", img]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    for (i, extra) in [(1, vec!["--", "--format"]), (2, vec![])] {
        let mut a = base(&counter);
        a.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, out) = run(&args);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("ide0: ATA disk QEMU HARDDISK on master channel 0"), "{out}");
        assert!(out.contains("16384 sectors, LBA48, bus-master DMA"), "{out}");
        assert!(out.contains(&format!("counter: boot {i}")), "{out}");
    }
    // Raw block access with unaligned offsets, across two boots.
    for mode in ["disk-write", "disk-read"] {
        let mut a = base(&kt);
        a.insert(0, "-q".into());
        a.extend(["--".into(), mode.into(), "42".into()]);
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, out) = run(&args);
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn counter_ide_tcg() {
    counter_on_ide("tcg");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn counter_ide_kvm() {
    counter_on_ide("kvm");
}

/// Three disks of different sizes: primary master and slave, secondary
/// master, named in that order; the count goes to the first.
#[test]
fn ide_disks_in_channel_order_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let mut imgs = Vec::new();
    for (i, mib) in [8u64, 4, 2].iter().enumerate() {
        let p = dir.path().join(format!("d{i}.img"));
        std::fs::File::create(&p).unwrap().set_len(mib << 20).unwrap();
        imgs.push(p.to_str().unwrap().to_string());
    }
    let counter = repo().join("examples/counter");
    let mut a: Vec<&str> = vec!["-C", counter.to_str().unwrap(), "--plat", "qemu", "--accel", "tcg", "--machine", "pc"];
    for i in &imgs {
        a.extend(["--disk", i.as_str()]);
    }
    a.extend(["--", "--format"]);
    let (code, out) = run(&a);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("ide")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ide0: ") && lines[0].contains("master channel 0") && lines[0].contains(" 16384 sectors"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("ide1: ") && lines[1].contains("slave channel 0") && lines[1].contains(" 8192 sectors"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("ide2: ") && lines[2].contains("master channel 1") && lines[2].contains(" 4096 sectors"),
        "{out}"
    );
    assert!(out.contains("counter: boot 1"), "{out}");
    // The count went to ide0 (the first disk), not another.
    let d0 = std::fs::read(&imgs[0]).unwrap();
    let d1 = std::fs::read(&imgs[1]).unwrap();
    assert!(d0.iter().any(|&b| b != 0), "nothing written to the first disk");
    assert!(d1.iter().all(|&b| b == 0), "the second disk was written");
}

#[test]
fn pc_refuses_a_fifth_disk_and_microvm_refuses_tulip() {
    let counter = repo().join("examples/counter");
    let c = counter.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let imgs: Vec<String> = (0..5)
        .map(|i| {
            let p = dir.path().join(format!("d{i}.img"));
            std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
            p.to_str().unwrap().to_string()
        })
        .collect();
    let mut a = vec!["-C", c, "--plat", "qemu", "--accel", "tcg", "--machine", "pc"];
    for i in &imgs {
        a.extend(["--disk", i.as_str()]);
    }
    let (code, out) = run(&a);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("error: --machine pc takes at most 4 --disk"), "{out}");
    let (code, out) = run(&["-C", c, "--plat", "qemu", "--accel", "tcg", "--machine", "microvm", "--nic", "tulip"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("error: --nic tulip: microvm has no PCI bus"), "{out}");
}
