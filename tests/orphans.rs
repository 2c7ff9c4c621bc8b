//! No orphans with real guests (issue 11.3): `examples/httpd` serving on a
//! published port under QEMU (TCG) and under the Solo5 tender (`-p` through
//! the run's network namespace). Only the CLI's PID is signalled; its VMM,
//! the namespace and the published port must go with it; likewise for the
//! Xen test bed (QEMU under TCG booting Xen, dom0 and the guest). (Every
//! signal on every runner, with stand-in VMMs, is in crates/cli/tests/host.rs.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Children of `pid` (from /proc/*/stat).
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        if rest.split_whitespace().nth(1).and_then(|s| s.parse::<u32>().ok()) == Some(pid) {
            v.push(p);
        }
    }
    v
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) != Some("Z"))
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with integers.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as libc::pid_t, sig)
    };
}

fn netns_list() -> String {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `unikit-hvt`, built next to `unikit` (as tests/solo5.rs does).
fn tender() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_BIN_EXE_unikit")).parent().unwrap().to_path_buf();
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "-q", "-p", "unikit-hvt", "--bin", "unikit-hvt", "--manifest-path"])
            .arg(repo().join("Cargo.toml"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        assert!(cmd.status().unwrap().success(), "building unikit-hvt failed");
        dir.join("unikit-hvt")
    })
}

/// Boots httpd with `plat` and `-p`, waits until it answers through the
/// port, signals only the CLI with `sig`, and checks what must go.
fn httpd_then_signal(plat: &[&str], vmm: &str, sig: i32) {
    let port = free_port();
    let publish = format!("{port}:80");
    let log = std::env::temp_dir().join(format!("unikit-orphans-{}-{port}.log", std::process::id()));
    let out = std::fs::File::create(&log).unwrap();
    let httpd = repo().join("examples/httpd");
    let mut unikit: Child = Command::new(env!("CARGO_BIN_EXE_unikit"))
        .arg("run")
        .arg("-q")
        .arg("-C")
        .arg(&httpd)
        .args(plat)
        .args(["-p", &publish])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let ns = format!("unikit-fc-{}", unikit.id());
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    // Served through the published port: the VMM is up and holds it.
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let o = Command::new("curl")
            .args(["-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}/x"))
            .output()
            .expect("curl not installed");
        if o.status.success() && o.stdout == b"404" {
            break;
        }
        if let Ok(Some(s)) = unikit.try_wait() {
            panic!("unikit ended ({s}) before httpd answered:\n{}", text());
        }
        assert!(Instant::now() < until, "httpd never answered:\n{}", text());
        std::thread::sleep(Duration::from_millis(300));
    }
    let pids: Vec<u32> = children(unikit.id())
        .into_iter()
        .filter(|&p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e.to_string_lossy().contains(vmm)))
        .collect();
    assert_eq!(pids.len(), 1, "one {vmm} under unikit: {pids:?}\n{}", text());
    signal(unikit.id(), sig);
    let _ = unikit.wait();
    let until = Instant::now() + Duration::from_secs(15);
    while (alive(pids[0]) || !port_free(port) || netns_list().contains(&ns)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (left, port_taken, ns_left) = (alive(pids[0]), !port_free(port), netns_list().contains(&ns));
    if left {
        signal(pids[0], libc::SIGKILL);
    }
    let _ = std::fs::remove_file(&log);
    assert!(!left, "{vmm} outlived unikit (signal {sig})");
    assert!(!port_taken, "port {port} still taken after signal {sig}");
    assert!(!ns_left, "namespace {ns} left behind after signal {sig}");
}

#[test]
fn qemu_tcg_httpd_goes_with_the_cli() {
    for sig in [libc::SIGKILL, libc::SIGTERM] {
        httpd_then_signal(&["--plat", "qemu", "--accel", "tcg"], "qemu-system-x86_64", sig);
    }
}

#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
#[test]
fn solo5_httpd_tender_and_namespace_go_with_the_cli() {
    tender();
    for sig in [libc::SIGKILL, libc::SIGTERM] {
        httpd_then_signal(&["--plat", "solo5"], "unikit-hvt", sig);
    }
}

/// The Xen test bed: QEMU booting Xen and dom0, which boots httpd; dom0
/// relays the published port to the guest.
#[cfg_attr(
    unikit_no_xen_testbed,
    ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
)]
#[test]
fn xen_testbed_qemu_goes_with_the_cli() {
    for sig in [libc::SIGKILL, libc::SIGTERM] {
        httpd_then_signal(&["--plat", "xen", "--xen-testbed"], "qemu-system-x86_64", sig);
    }
}
