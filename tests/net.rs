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

// ---------------------------------------------------------------------------
// httpd under hostile load (issue 11): many idle clients, bursts, slowloris,
// odd requests. Each talks raw TCP from the test, inside the guest's network
// namespace for linuxu.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// Where a test reaches httpd: a netns (linuxu) or the host (QEMU `-p`).
struct Target {
    ns: Option<String>,
    addr: SocketAddr,
}

impl Target {
    /// Runs `f` on a thread inside the target's network namespace (threads
    /// it starts inherit it); sockets it opens stay usable anywhere.
    fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                if let Some(ns) = &self.ns {
                    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
                    use std::os::fd::AsRawFd;
                    // SAFETY: setns on a valid descriptor; affects this thread only.
                    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap()
        })
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(20))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(s)
    }
}

/// Sends one request on `s` and returns the status line ("" if the
/// connection ended first).
fn request(s: &mut TcpStream, req: &[u8]) -> String {
    if s.write_all(req).is_err() {
        return String::new();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).lines().next().unwrap_or("").to_string()
}

const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";

/// Lets this process (and the VMM it starts) hold a few thousand sockets.
fn raise_fd_limit() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

/// httpd on linuxu in a fresh netns (64M, its manifest's memory).
fn linuxu_httpd(tag: &str) -> (Netns, Guest, Target) {
    raise_fd_limit();
    let ns = Netns::new(tag);
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
            "-m",
            "64M",
            "--plat",
            "linuxu",
            "--net",
            "tap:tap0",
            "--ip",
            "10.0.0.2/24:10.0.0.1",
            "--rootfs",
            www.to_str().unwrap(),
        ],
        tag,
    );
    curl(&wrap, &["-o", "/dev/null", "http://10.0.0.2/"], &mut g, true);
    let t = Target { ns: Some(ns.name.clone()), addr: "10.0.0.2:80".parse().unwrap() };
    (ns, g, t)
}

/// httpd on QEMU q35 under TCG with `-m 64M`, published on a host port.
fn qemu_httpd(tag: &str) -> (Guest, Target) {
    raise_fd_limit();
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
            "-m",
            "64M",
            "--plat",
            "qemu",
            "--accel",
            "tcg",
            "-p",
            &publish,
            "--rootfs",
            www.to_str().unwrap(),
        ],
        tag,
    );
    curl(&[], &["-o", "/dev/null", &format!("http://127.0.0.1:{port}/")], &mut g, true);
    (g, Target { ns: None, addr: format!("127.0.0.1:{port}").parse().unwrap() })
}

fn assert_alive(g: &mut Guest) {
    if let Ok(Some(st)) = g.child.try_wait() {
        panic!("the guest stopped ({st}):\n{}", g.log());
    }
    let log = g.log();
    assert!(!log.contains("panicked") && !log.contains("allocation"), "{log}");
}

/// 1,000 idle connections held open; a new client is still served, and
/// idle ones picked across the range still answer (all asked at once: the
/// server closes connections idle for 30 s).
fn idle_thousand(t: &Target, g: &mut Guest) {
    const N: usize = 1000;
    let r = t.within(|| {
        let t0 = Instant::now();
        let mut idle = Vec::with_capacity(N);
        for i in 0..N {
            match t.connect() {
                Ok(s) => idle.push(s),
                Err(e) => return Err(format!("idle connection {i} failed after {:?}: {e}", t0.elapsed())),
            }
        }
        let opened = t0.elapsed();
        // Let the guest take them all in before the checks.
        std::thread::sleep(Duration::from_secs(3));
        let fresh = t.connect().map(|mut s| request(&mut s, GET)).unwrap_or_else(|e| e.to_string());
        let picks: Vec<usize> = (0..N).step_by(97).collect();
        for &i in &picks {
            let _ = idle[i].write_all(GET);
        }
        let sampled: Vec<String> = picks.iter().map(|&i| request(&mut idle[i], b"")).collect();
        Ok((idle, fresh, sampled, opened, t0.elapsed()))
    });
    let (idle, fresh, sampled, opened, total) = match r {
        Ok(v) => v,
        Err(e) => panic!("{e}\n{}", g.log()),
    };
    let when = format!("(opened in {opened:?}, checked after {total:?})");
    assert!(fresh.starts_with("HTTP/1.1 200"), "new client with {N} idle connections: {fresh:?} {when}\n{}", g.log());
    for (k, s) in sampled.iter().enumerate() {
        assert!(s.starts_with("HTTP/1.1 200"), "idle connection {} did not answer: {s:?} {when}\n{}", k * 97, g.log());
    }
    drop(idle);
    assert_alive(g);
}

/// 1,000 clients connect and ask at once; every one gets its page.
fn burst_thousand(t: &Target, g: &mut Guest) {
    const THREADS: usize = 50;
    const PER: usize = 20;
    let results: Vec<String> = t.within(|| {
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let conns: Vec<std::io::Result<TcpStream>> = (0..PER).map(|_| t.connect()).collect();
                        let mut conns: Vec<TcpStream> = conns
                            .into_iter()
                            .map(|c| c.unwrap_or_else(|e| panic!("connect in the burst: {e}")))
                            .collect();
                        for c in &mut conns {
                            let _ = c.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                        }
                        conns.iter_mut().map(|c| request(c, b"")).collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        })
    });
    let ok = results.iter().filter(|r| r.starts_with("HTTP/1.1 200")).count();
    assert_eq!(ok, THREADS * PER, "answered {ok} of {}:\n{}", THREADS * PER, g.log());
    assert_alive(g);
}

#[test]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
fn httpd_linuxu_holds_1000_idle_connections() {
    let (_ns, mut g, t) = linuxu_httpd("idle");
    idle_thousand(&t, &mut g);
}

#[test]
fn httpd_q35_tcg_holds_1000_idle_connections() {
    let (mut g, t) = qemu_httpd("idle-tcg");
    idle_thousand(&t, &mut g);
}

#[test]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
fn httpd_linuxu_answers_a_burst_of_1000() {
    let (_ns, mut g, t) = linuxu_httpd("burst");
    burst_thousand(&t, &mut g);
}

#[test]
fn httpd_q35_tcg_answers_a_burst_of_1000() {
    let (mut g, t) = qemu_httpd("burst-tcg");
    burst_thousand(&t, &mut g);
}

/// A client sending its head a byte a second is closed once the head
/// deadline (10 s) passes; one that never sends is closed after the idle
/// timeout (30 s); meanwhile others are served.
#[test]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
fn httpd_linuxu_times_out_slowloris() {
    let (_ns, mut g, t) = linuxu_httpd("slowloris");
    let (trickle_closed_after, silent_closed_after, served) = t.within(|| {
        std::thread::scope(|s| {
            let trickle = s.spawn(|| {
                let mut c = t.connect().unwrap();
                let t0 = Instant::now();
                let head = b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                for b in head.iter().chain(std::iter::repeat(&b'a')) {
                    if c.write_all(&[*b]).is_err() || t0.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                    let mut buf = [0u8; 512];
                    match c.read(&mut buf) {
                        Ok(_) => break, // the 408 or the close
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
                t0.elapsed()
            });
            let silent = s.spawn(|| {
                let mut c = t.connect().unwrap();
                let t0 = Instant::now();
                c.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
                let _ = c.read(&mut [0u8; 64]);
                t0.elapsed()
            });
            std::thread::sleep(Duration::from_secs(5));
            let served = t.connect().map(|mut c| request(&mut c, GET)).unwrap_or_default();
            (trickle.join().unwrap(), silent.join().unwrap(), served)
        })
    });
    assert!(served.starts_with("HTTP/1.1 200"), "{served:?}");
    assert!(
        trickle_closed_after >= Duration::from_secs(8) && trickle_closed_after < Duration::from_secs(20),
        "a byte-a-second client was closed after {trickle_closed_after:?} (want about 10 s)"
    );
    assert!(
        silent_closed_after >= Duration::from_secs(25) && silent_closed_after < Duration::from_secs(45),
        "a silent client was closed after {silent_closed_after:?} (want about 30 s)"
    );
    assert_alive(&mut g);
}

/// Bare-LF line endings get an answer; a 1 MiB request head is refused
/// promptly instead of stalling the client.
#[test]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
fn httpd_linuxu_bare_lf_and_huge_head() {
    let (_ns, mut g, t) = linuxu_httpd("lf");
    let (lf, huge_status, huge_took) = t.within(|| {
        let mut c = t.connect().unwrap();
        let lf = request(&mut c, b"GET /index.html HTTP/1.1\nHost: x\n\n");
        let mut c = t.connect().unwrap();
        let t0 = Instant::now();
        let mut head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        head.resize(1 << 20, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let status = request(&mut c, &head);
        (lf, status, t0.elapsed())
    });
    assert!(lf.starts_with("HTTP/1.1 200"), "bare-LF request: {lf:?}");
    assert!(huge_took < Duration::from_secs(5), "a 1 MiB head kept the client {huge_took:?} ({huge_status:?})");
    assert!(huge_status.is_empty() || huge_status.starts_with("HTTP/1.1 431"), "{huge_status:?}");
    assert_alive(&mut g);
}
