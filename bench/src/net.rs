//! HTTP throughput: wrk against examples/httpd in unikit VMs, the same
//! server as a Linux process (linuxu, over a tap in a network namespace),
//! a Linux guest (Debian's kernel + busybox httpd) on the same QEMU, and
//! busybox httpd as a host process. Servers stay up; wrk runs interleave.
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ROUNDS: usize = 3;
const SECONDS: u32 = 5;
const CONNECTIONS: u32 = 16;

pub struct Server {
    pub name: String,
    /// Prefix to run wrk with (e.g. `ip netns exec NS`).
    pub wrap: Vec<String>,
    pub url: String,
    child: Child,
    cleanup: Vec<Vec<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        for c in &self.cleanup {
            let _ = Command::new(&c[0]).args(&c[1..]).status();
        }
    }
}

fn spawn(cmd: &mut Command) -> Option<Child> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0).spawn().ok()
}

fn wait_up(wrap: &[String], url: &str, secs: u64) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        let mut c = cmd(wrap, "curl");
        if c.args(["-s", "-o", "/dev/null", "--max-time", "2", url]).status().is_ok_and(|s| s.success()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    false
}

fn cmd(wrap: &[String], prog: &str) -> Command {
    match wrap.split_first() {
        Some((w, rest)) => {
            let mut c = Command::new(w);
            c.args(rest).arg(prog);
            c
        }
        None => Command::new(prog),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// The process id of the `unikit run` (or server) started.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

pub fn unikit_qemu(repo: &Path, unikit: &Path, accel: &str) -> Option<Server> {
    unikit_qemu_with(repo, unikit, accel, &[])
}

/// As `unikit_qemu`, with more `unikit run` arguments (e.g. `-m 64M`).
pub fn unikit_qemu_with(repo: &Path, unikit: &Path, accel: &str, extra: &[&str]) -> Option<Server> {
    let port = free_port();
    let child = spawn(
        Command::new(unikit)
            .args(["run", "-q", "-C"])
            .arg(repo.join("examples/httpd"))
            .args(extra)
            .args(["--plat", "qemu", "--accel", accel, "-p", &format!("{port}:80"), "--rootfs"])
            .arg(repo.join("examples/httpd/www")),
    )?;
    let s = Server {
        name: format!("unikit httpd, QEMU q35 {}, user net", accel.to_uppercase()),
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child,
        cleanup: vec![],
    };
    wait_up(&s.wrap, &s.url, 300).then_some(s)
}

/// The Linux guest's kernel and initramfs (bench/linux-guest.sh).
pub fn linux_guest_files(repo: &Path) -> Option<(String, String)> {
    let out = Command::new(repo.join("bench/linux-guest.sh")).arg(repo.join("examples/httpd/www")).output().ok()?;
    if !out.status.success() {
        eprintln!("bench: linux guest unavailable: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let paths = String::from_utf8_lossy(&out.stdout);
    let mut it = paths.split_whitespace();
    Some((it.next()?.to_string(), it.next()?.to_string()))
}

/// Starts a server on 127.0.0.1:`port` and waits up to `secs` for it to answer.
pub fn server(name: String, cmd: &mut Command, port: u16, secs: u64) -> Option<Server> {
    let child = spawn(cmd)?;
    let s = Server { name, wrap: vec![], url: format!("http://127.0.0.1:{port}/index.html"), child, cleanup: vec![] };
    wait_up(&s.wrap, &s.url, secs).then_some(s)
}

pub fn linux_guest(repo: &Path) -> Option<Server> {
    let (kernel, initrd) = linux_guest_files(repo)?;
    let port = free_port();
    let child = spawn(Command::new("qemu-system-x86_64").args([
        "-M",
        "q35",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-smp",
        "1",
        "-m",
        "256M",
        "-serial",
        "null",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-netdev",
        &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80"),
        "-device",
        "virtio-net-pci,netdev=n0",
        "-kernel",
        &kernel,
        "-initrd",
        &initrd,
        "-append",
        "console=ttyS0 quiet",
    ]))?;
    let s = Server {
        name: "Linux guest (Debian 6.1 kernel, busybox httpd), QEMU q35 TCG, user net".into(),
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child,
        cleanup: vec![],
    };
    wait_up(&s.wrap, &s.url, 300).then_some(s)
}

pub fn unikit_linuxu(repo: &Path, unikit: &Path) -> Option<Server> {
    let ns = format!("unikit-bench-{}", std::process::id());
    let ip = |args: &[&str]| Command::new("ip").args(args).status().is_ok_and(|s| s.success());
    if !ip(&["netns", "add", &ns]) {
        eprintln!("bench: cannot create a network namespace (needs root): skipping linuxu");
        return None;
    }
    let cleanup = vec![vec!["ip".to_string(), "netns".into(), "del".into(), ns.clone()]];
    let ok = ip(&["-n", &ns, "link", "set", "lo", "up"])
        && ip(&["-n", &ns, "tuntap", "add", "dev", "tap0", "mode", "tap"])
        && ip(&["-n", &ns, "addr", "add", "10.0.0.1/24", "dev", "tap0"])
        && ip(&["-n", &ns, "link", "set", "tap0", "up"]);
    let wrap: Vec<String> = ["ip", "netns", "exec", &ns].iter().map(|s| s.to_string()).collect();
    let child = spawn(
        cmd(&wrap, unikit.to_str()?)
            .args(["run", "-q", "-C"])
            .arg(repo.join("examples/httpd"))
            .args(["--plat", "linuxu", "--net", "tap:tap0", "--ip", "10.0.0.2/24:10.0.0.1", "--rootfs"])
            .arg(repo.join("examples/httpd/www")),
    );
    let Some(child) = child.filter(|_| ok) else {
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        return None;
    };
    let s = Server {
        name: "unikit httpd as a Linux process (linuxu), tap in a netns".into(),
        wrap,
        url: "http://10.0.0.2/index.html".into(),
        child,
        cleanup,
    };
    wait_up(&s.wrap, &s.url, 120).then_some(s)
}

pub fn busybox_host(repo: &Path) -> Option<Server> {
    let port = free_port();
    let child = spawn(
        Command::new("busybox")
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(repo.join("examples/httpd/www")),
    )?;
    let s = Server {
        name: "busybox httpd, host Linux process, loopback".into(),
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child,
        cleanup: vec![],
    };
    wait_up(&s.wrap, &s.url, 20).then_some(s)
}

/// Requests per second, or None if wrk failed.
pub fn wrk(s: &Server, close: bool) -> Option<f64> {
    wrk_with(s, close, SECONDS, 2)
}

/// wrk for `secs` seconds; a request slower than `timeout` seconds counts
/// as an error, not as a request.
pub fn wrk_with(s: &Server, close: bool, secs: u32, timeout: u32) -> Option<f64> {
    let mut c = cmd(&s.wrap, "wrk");
    c.args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{secs}s"), &format!("--timeout={timeout}s")]);
    if close {
        c.args(["-H", "Connection: close"]);
    }
    let out = c.arg(&s.url).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok())
}

/// wrk (keep-alive) for `secs` seconds: requests/s and the errors it
/// counted (socket errors of every kind, non-2xx answers, timeouts).
pub fn wrk_detail(s: &Server, secs: u32) -> (Option<f64>, u64) {
    let mut c = cmd(&s.wrap, "wrk");
    c.args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{secs}s"), "--timeout=2s"]);
    let Ok(out) = c.arg(&s.url).output() else { return (None, 0) };
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok());
    let mut errors = 0;
    for l in text.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            errors += rest.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
        } else if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    (rps, errors)
}

/// Whether the server still answers a request.
pub fn answers(s: &Server) -> bool {
    wait_up(&s.wrap, &s.url, 5)
}

pub fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied()
}

/// Runs the network benchmark and returns its report section.
pub fn run(repo: &Path, unikit: &Path, kvm: bool) -> String {
    let mut r = String::new();
    if Command::new("wrk").arg("--version").output().is_err() {
        let _ = writeln!(r, "\n## HTTP throughput\n\nSkipped: `wrk` is not installed (apt-get install wrk).");
        return r;
    }
    eprintln!("bench: starting HTTP servers ...");
    let mut servers: Vec<Server> = Vec::new();
    servers.extend(unikit_qemu(repo, unikit, "tcg"));
    if kvm {
        servers.extend(unikit_qemu(repo, unikit, "kvm"));
    }
    servers.extend(linux_guest(repo));
    servers.extend(unikit_linuxu(repo, unikit));
    servers.extend(busybox_host(repo));
    let mut keep: Vec<Vec<f64>> = servers.iter().map(|_| vec![]).collect();
    let mut close: Vec<Vec<f64>> = servers.iter().map(|_| vec![]).collect();
    for round in 0..ROUNDS {
        eprintln!("bench: wrk round {}/{ROUNDS} ...", round + 1);
        for (i, s) in servers.iter().enumerate() {
            keep[i].extend(wrk(s, false));
            close[i].extend(wrk(s, true));
        }
    }
    let _ = writeln!(r, "\n## HTTP throughput (wrk)\n");
    let _ = writeln!(
        r,
        "`wrk -t2 -c{CONNECTIONS} -d{SECONDS}s` fetching `index.html` (the same file everywhere), median of {ROUNDS} interleaved rounds; requests/s. \"close\" adds `Connection: close` (one request per connection, which is all busybox httpd does).\n"
    );
    let _ = writeln!(r, "| server | keep-alive req/s | close req/s |\n|---|---|---|");
    let mut meds = vec![];
    for (i, s) in servers.iter().enumerate() {
        let (k, c) = (median(&mut keep[i]), median(&mut close[i]));
        meds.push((s.name.clone(), k, c));
        let f = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "failed".into());
        let _ = writeln!(r, "| {} | {} | {} |", s.name, f(k), f(c));
    }
    let find = |p: &str| meds.iter().find(|m| m.0.starts_with(p)).cloned();
    if let (Some(u), Some(l)) = (find("unikit httpd, QEMU q35 TCG"), find("Linux guest"))
        && let (Some(uc), Some(lc)) = (u.2, l.2)
    {
        let _ = writeln!(
            r,
            "\nSame QEMU, same accelerator (TCG), same user-mode network, one request per connection: unikit serves **{:.1}x** the Linux guest's requests/s.",
            uc / lc
        );
    }
    if let (Some(u), Some(b)) = (find("unikit httpd as a Linux process"), find("busybox httpd, host"))
        && let (Some(uc), Some(bc)) = (u.2, b.2)
    {
        let _ = writeln!(
            r,
            "As Linux processes, one request per connection: unikit's httpd (its own TCP/IP stack over a tap) serves {:.2}x busybox httpd on the host's loopback.",
            uc / bc
        );
    }
    let _ = writeln!(
        r,
        "\nThe Linux guest runs under TCG only: this host's KVM cannot boot a stock Linux kernel. QEMU's user-mode network (slirp) is in the path of every QEMU row, and limits them all alike."
    );
    drop(servers);
    r
}

#[allow(dead_code)]
pub fn repo_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
