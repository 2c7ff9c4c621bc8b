//! Network and storage boot tests: examples/httpd answering real HTTP
//! clients (curl) through `-p` on QEMU q35 (virtio-net over PCI) and
//! microvm (virtio-mmio), and over a tap in a network namespace on linuxu;
//! files from the initrd; a block device written, rebooted and read back.
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
    fn start(wrap: &[&str], args: &[&str], tag: &str) -> Guest {
        let log = std::env::temp_dir().join(format!("unikit-net-test-{tag}-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = match wrap.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(env!("CARGO_BIN_EXE_unikit"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_unikit")),
        };
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

/// `curl ARGS`, retried until the server answers (boot + build time).
fn curl(wrap: &[&str], args: &[&str], guest: &mut Guest, wait: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let mut cmd = match wrap.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg("curl");
                c
            }
            None => Command::new("curl"),
        };
        let out = cmd.args(["-s", "--max-time", "20"]).args(args).output().expect("curl not installed");
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

fn check_httpd(wrap: &[&str], base: &str, guest: &mut Guest) {
    let index = curl(wrap, &[&format!("{base}/")], guest, true);
    assert!(index.contains("Hello from unikit!"), "{index}");
    // Two requests on one kept-alive connection.
    let v = curl(
        wrap,
        &["-v", "-o", "/dev/null", "-o", "/dev/null", &format!("{base}/"), &format!("{base}/static/style.css")],
        guest,
        false,
    );
    let _ = v; // curl -v writes to stderr; keep-alive is checked below with -w
    let reuse = curl(
        wrap,
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
        guest,
        false,
    );
    assert_eq!(reuse.lines().collect::<Vec<_>>(), ["1", "0"], "second request did not reuse the connection");
    let big = curl(
        wrap,
        &["-o", "/dev/null", "-w", "%{http_code} %{size_download}", &format!("{base}/static/64k.txt")],
        guest,
        false,
    );
    assert_eq!(big, "200 65536");
    let missing = curl(wrap, &["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/no/such/file")], guest, false);
    assert_eq!(missing, "404");
    let traversal = curl(
        wrap,
        &["--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/../etc/passwd")],
        guest,
        false,
    );
    assert_eq!(traversal, "404");
    // Many clients at once: 64 parallel connections, each must get the page.
    let urls: Vec<String> = (0..64).map(|i| format!("{base}/?client={i}")).collect();
    let mut args: Vec<&str> = vec!["--parallel", "--parallel-max", "64", "-w", "%{http_code}\n"];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let codes = curl(wrap, &args, guest, false);
    assert_eq!(codes.lines().filter(|c| *c == "200").count(), 64, "{codes}");
}

fn httpd_qemu(accel: &str, machine: &str) {
    let port = free_port();
    let www = repo().join("examples/httpd/www");
    let proj = repo().join("examples/httpd");
    let publish = format!("{port}:80");
    let mut g = Guest::start(
        &[],
        &[
            "-q",
            "-C",
            proj.to_str().unwrap(),
            "--plat",
            "qemu",
            "--accel",
            accel,
            "--machine",
            machine,
            "-p",
            &publish,
            "--rootfs",
            www.to_str().unwrap(),
        ],
        &format!("{accel}-{machine}"),
    );
    check_httpd(&[], &format!("http://127.0.0.1:{port}"), &mut g);
}

#[test]
fn httpd_q35_tcg() {
    httpd_qemu("tcg", "q35");
}

#[test]
fn httpd_microvm_tcg() {
    httpd_qemu("tcg", "microvm");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn httpd_q35_kvm() {
    httpd_qemu("kvm", "q35");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn httpd_microvm_kvm() {
    httpd_qemu("kvm", "microvm");
}

/// A network namespace with a tap interface, removed when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("unikit-{tag}-{}", std::process::id());
        let sh = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().expect("iproute2 missing");
            assert!(st.success(), "ip {args:?} failed");
        };
        sh(&["netns", "add", &name]);
        let ns = Netns { name };
        sh(&["-n", &ns.name, "link", "set", "lo", "up"]);
        sh(&["-n", &ns.name, "tuntap", "add", "dev", "tap0", "mode", "tap"]);
        sh(&["-n", &ns.name, "addr", "add", "10.0.0.1/24", "dev", "tap0"]);
        sh(&["-n", &ns.name, "link", "set", "tap0", "up"]);
        ns
    }

    fn exec(&self) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.name.clone()]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[test]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
fn httpd_linuxu_tap_in_netns() {
    let ns = Netns::new("linuxu");
    let exec = ns.exec();
    let wrap: Vec<&str> = exec.iter().map(String::as_str).collect();
    let www = repo().join("examples/httpd/www");
    let proj = repo().join("examples/httpd");
    let mut g = Guest::start(
        &wrap,
        &[
            "-q",
            "-C",
            proj.to_str().unwrap(),
            "--plat",
            "linuxu",
            "--net",
            "tap:tap0",
            "--ip",
            "10.0.0.2/24:10.0.0.1",
            "--rootfs",
            www.to_str().unwrap(),
        ],
        "linuxu",
    );
    check_httpd(&wrap, "http://10.0.0.2", &mut g);
}

#[test]
fn linuxu_tap_that_cannot_be_opened_is_reported() {
    // `lo` exists and is not a tap: opening it as one fails at run time.
    let proj = repo().join("examples/httpd");
    let (code, out) =
        run(&["-q", "-C", proj.to_str().unwrap(), "--plat", "linuxu", "--net", "tap:lo", "--ip", "10.9.9.2/24"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("unikit: cannot open tap device 'lo': TUNSETIFF"), "{out}");
    assert!(out.contains("no network device"), "{out}");
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unikit")).arg("run").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn disk_persists(plat: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
    let img = img.to_str().unwrap();
    let counter = repo().join("examples/counter");
    let kt = repo().join("tests/kernel-tests");
    let base = |p: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = vec!["-q".into(), "-C".into(), p.to_str().unwrap().into()];
        v.extend(plat.iter().map(|s| s.to_string()));
        v.extend(["--disk".into(), img.into()]);
        v
    };
    for (i, extra) in [(1, vec!["--", "--format"]), (2, vec![]), (3, vec![])] {
        let mut a = base(&counter);
        a.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, out) = run(&args);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("counter: boot {i}")), "{out}");
    }
    // Raw block access with unaligned offsets, across two boots.
    for mode in ["disk-write", "disk-read"] {
        let mut a = base(&kt);
        a.extend(["--".into(), mode.into(), "42".into()]);
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, out) = run(&args);
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn disk_q35_tcg() {
    disk_persists(&["--plat", "qemu", "--accel", "tcg"]);
}

#[test]
fn disk_microvm_tcg() {
    disk_persists(&["--plat", "qemu", "--accel", "tcg", "--machine", "microvm"]);
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn disk_q35_kvm() {
    disk_persists(&["--plat", "qemu", "--accel", "kvm"]);
}

#[test]
fn disk_linuxu() {
    disk_persists(&["--plat", "linuxu"]);
}
