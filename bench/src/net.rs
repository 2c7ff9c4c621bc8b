//! HTTP throughput against a real yardstick: wrk against examples/httpd in
//! unikit VMs and as a Linux process (linuxu, over a tap in a network
//! namespace), beside nginx (Debian's nginx-light: one worker, access log
//! off) natively on the host and in a Linux guest on the same QEMU. busybox
//! httpd stays as an extra row (host, and in the same guest). Every server
//! serves the same 612-byte page. Servers stay up; wrk runs interleave.
//!
//! Also the "no collapse" check: ten back-to-back runs of one request per
//! connection against one fresh linuxu httpd, run 10 against run 1.
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ROUNDS: usize = 3;
const SECONDS: u32 = 5;
const CONNECTIONS: u32 = 16;
/// The collapse check: this many back-to-back runs of this many seconds.
const COLLAPSE_RUNS: usize = 10;
const COLLAPSE_SECONDS: u32 = 4;
/// Size of the page every server serves (nginx's Debian welcome page size).
const PAGE_BYTES: usize = 612;

pub struct Server {
    pub name: String,
    /// Prefix to run wrk with (e.g. `ip netns exec NS`).
    pub wrap: Vec<String>,
    pub url: String,
    /// `None` for a second server inside a process another row owns.
    child: Option<Child>,
    cleanup: Vec<Vec<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
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
    /// The process id of the `unikit run` (or server) started; 0 for a
    /// row inside a process another row owns.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

/// A program on PATH (or in /usr/sbin, where Debian puts nginx).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The tools this benchmark runs, each with the Debian package that has it,
/// and whether the benchmark can do without it.
const TOOLS: &[(&str, &str, bool)] = &[
    ("wrk", "wrk", false),
    ("curl", "curl", false),
    ("nginx", "nginx-light", true),
    ("busybox", "busybox-static", true),
    ("qemu-system-x86_64", "qemu-system-x86", true),
];

/// One line naming missing tools and the `apt-get install` that brings them.
fn missing_tools(required: bool) -> Option<String> {
    let missing: Vec<_> = TOOLS.iter().filter(|t| t.2 != required && find_program(t.0).is_none()).collect();
    if missing.is_empty() {
        return None;
    }
    let names: Vec<_> = missing.iter().map(|t| t.0).collect();
    let pkgs: Vec<_> = missing.iter().map(|t| t.1).collect();
    Some(format!("`{}` not installed (apt-get install {})", names.join("`, `"), pkgs.join(" ")))
}

/// A directory with the page every server serves: `index.html`, exactly
/// `PAGE_BYTES` long, written fresh for this run.
pub fn bench_www() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("unikit-bench-www-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let head = "<!DOCTYPE html>\n<html>\n<head>\n<title>unikit bench</title>\n</head>\n<body>\n<h1>unikit network benchmark</h1>\n<p>";
    let tail = "</p>\n</body>\n</html>\n";
    let mut page = String::from(head);
    let filler = "Every server in this benchmark serves this same page. ";
    while page.len() + tail.len() < PAGE_BYTES {
        let room = PAGE_BYTES - tail.len() - page.len();
        page.push_str(&filler[..room.min(filler.len())]);
    }
    page.push_str(tail);
    debug_assert_eq!(page.len(), PAGE_BYTES);
    std::fs::write(dir.join("index.html"), page).ok()?;
    Some(dir)
}

pub fn unikit_qemu(repo: &Path, unikit: &Path, www: &Path, accel: &str) -> Option<Server> {
    unikit_qemu_with(repo, unikit, www, accel, &[])
}

/// As `unikit_qemu`, with more `unikit run` arguments (e.g. `-m 64M`).
pub fn unikit_qemu_with(repo: &Path, unikit: &Path, www: &Path, accel: &str, extra: &[&str]) -> Option<Server> {
    let port = free_port();
    let child = spawn(
        Command::new(unikit)
            .args(["run", "-q", "-C"])
            .arg(repo.join("examples/httpd"))
            .args(extra)
            .args(["--plat", "qemu", "--accel", accel, "-p", &format!("{port}:80"), "--rootfs"])
            .arg(www),
    )?;
    let s = Server {
        name: format!("unikit httpd, QEMU q35 {}, user net", accel.to_uppercase()),
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child: Some(child),
        cleanup: vec![],
    };
    wait_up(&s.wrap, &s.url, 300).then_some(s)
}

/// The Linux guest's kernel and initramfs serving examples/httpd/www with
/// busybox httpd on port 80 (bench/linux-guest.sh).
pub fn linux_guest_files(repo: &Path) -> Option<(String, String)> {
    linux_guest_files_with(repo, &repo.join("examples/httpd/www"), false)
}

/// The same, serving `www`; with `nginx`, nginx on port 80 and busybox
/// httpd on 8080.
pub fn linux_guest_files_with(repo: &Path, www: &Path, nginx: bool) -> Option<(String, String)> {
    let mut c = Command::new(repo.join("bench/linux-guest.sh"));
    c.arg(www);
    if nginx {
        c.arg("nginx");
    }
    let out = c.output().ok()?;
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
    let s = Server {
        name,
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child: Some(child),
        cleanup: vec![],
    };
    wait_up(&s.wrap, &s.url, secs).then_some(s)
}

/// The Linux guest on QEMU q35 TCG: nginx on guest port 80 and, when the
/// image has it, busybox httpd on 8080 (a second row without its own process).
pub fn linux_guest(repo: &Path, www: &Path) -> Vec<Server> {
    let Some((kernel, initrd)) = linux_guest_files_with(repo, www, true) else { return vec![] };
    let (port, bb_port) = (free_port(), free_port());
    let Some(child) = spawn(Command::new("qemu-system-x86_64").args([
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
        &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80,hostfwd=tcp:127.0.0.1:{bb_port}-:8080"),
        "-device",
        "virtio-net-pci,netdev=n0",
        "-kernel",
        &kernel,
        "-initrd",
        &initrd,
        "-append",
        "console=ttyS0 quiet",
    ])) else {
        return vec![];
    };
    let nginx = Server {
        name: "nginx in a Linux guest (Debian 6.1 kernel), QEMU q35 TCG, user net".into(),
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child: Some(child),
        cleanup: vec![],
    };
    if !wait_up(&nginx.wrap, &nginx.url, 300) {
        eprintln!("bench: nginx in the Linux guest did not answer");
        return vec![];
    }
    let bb = Server {
        name: "busybox httpd in the same Linux guest, QEMU q35 TCG, user net".into(),
        wrap: vec![],
        url: format!("http://127.0.0.1:{bb_port}/index.html"),
        child: None,
        cleanup: vec![],
    };
    // `bb` has no process of its own: it must drop before `nginx`, so it goes first.
    if wait_up(&bb.wrap, &bb.url, 20) { vec![bb, nginx] } else { vec![nginx] }
}

/// unikit's httpd as a Linux process on a tap in a fresh network namespace.
pub fn unikit_linuxu(repo: &Path, unikit: &Path, www: &Path, tag: &str) -> Option<Server> {
    let ns = format!("unikit-bench-{}-{tag}", std::process::id());
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
            .arg(www),
    );
    let Some(child) = child.filter(|_| ok) else {
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        return None;
    };
    let s = Server {
        name: "unikit httpd as a Linux process (linuxu), tap in a netns".into(),
        wrap,
        url: "http://10.0.0.2/index.html".into(),
        child: Some(child),
        cleanup,
    };
    wait_up(&s.wrap, &s.url, 120).then_some(s)
}

/// nginx from Debian's nginx-light on the host's loopback with a config
/// written here: one worker, access log off, everything else nginx's
/// defaults (sendfile on, as Debian ships it).
pub fn nginx_host(www: &Path) -> Option<Server> {
    let nginx = find_program("nginx")?;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("unikit-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let conf = nginx_conf(&dir.display().to_string(), &format!("127.0.0.1:{port}"), &www.display().to_string());
    std::fs::write(dir.join("nginx.conf"), conf).ok()?;
    let child = spawn(
        Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log")),
    )?;
    let s = Server {
        name: "nginx 1 worker, host Linux process, loopback".into(),
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child: Some(child),
        cleanup: vec![vec!["rm".into(), "-rf".into(), dir.display().to_string()]],
    };
    wait_up(&s.wrap, &s.url, 20).then_some(s)
}

/// The nginx configuration of both nginx rows (bench/linux-guest.sh writes
/// the same one for the guest): state under `dir`, listening on `listen`.
pub fn nginx_conf(dir: &str, listen: &str, root: &str) -> String {
    format!(
        "worker_processes 1;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  default_type application/octet-stream;\n  types {{ text/html html; }}\n\
         \x20 client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n\
         \x20 uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
         \x20 server {{ listen {listen}; root {root}; }}\n}}\n"
    )
}

pub fn busybox_host(www: &Path) -> Option<Server> {
    let port = free_port();
    let child =
        spawn(Command::new("busybox").args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"]).arg(www))?;
    let s = Server {
        name: "busybox httpd, host Linux process, loopback".into(),
        wrap: vec![],
        url: format!("http://127.0.0.1:{port}/index.html"),
        child: Some(child),
        cleanup: vec![],
    };
    wait_up(&s.wrap, &s.url, 20).then_some(s)
}

/// What one wrk run measured.
#[derive(Clone, Copy, Debug)]
pub struct Wrk {
    pub rps: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
}

/// wrk's duration text (`215.00us`, `1.23ms`, `2.00s`) in microseconds.
fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|v| v * mult)
}

/// Requests/s and the latency percentiles from `wrk --latency` output.
pub fn parse_wrk(text: &str) -> Option<Wrk> {
    let rps = text.lines().find_map(|l| l.trim().strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok())?;
    let pct = |p: &str| {
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(p)).then(|| w.next().and_then(parse_duration_us)).flatten()
        })
    };
    Some(Wrk { rps, p50_us: pct("50%")?, p99_us: pct("99%")? })
}

/// One wrk run of the standard length, or None if wrk failed.
pub fn wrk(s: &Server, close: bool) -> Option<Wrk> {
    wrk_run(s, close, SECONDS, 2)
}

/// Requests/s of a wrk run for `secs` seconds; a request slower than
/// `timeout` seconds counts as an error, not as a request.
pub fn wrk_with(s: &Server, close: bool, secs: u32, timeout: u32) -> Option<f64> {
    wrk_run(s, close, secs, timeout).map(|w| w.rps)
}

/// A wrk run with latency percentiles.
pub fn wrk_run(s: &Server, close: bool, secs: u32, timeout: u32) -> Option<Wrk> {
    let mut c = cmd(&s.wrap, "wrk");
    c.args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{secs}s"), &format!("--timeout={timeout}s"), "--latency"]);
    if close {
        c.args(["-H", "Connection: close"]);
    }
    let out = c.arg(&s.url).output().ok()?;
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
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

/// Medians over rounds of each of wrk's figures.
fn medians(v: &[Wrk]) -> Option<Wrk> {
    let pick = |f: fn(&Wrk) -> f64| median(&mut v.iter().map(f).collect::<Vec<_>>());
    Some(Wrk { rps: pick(|w| w.rps)?, p50_us: pick(|w| w.p50_us)?, p99_us: pick(|w| w.p99_us)? })
}

fn fmt_lat(us: f64) -> String {
    if us >= 1000.0 { format!("{:.2} ms", us / 1e3) } else { format!("{us:.0} us") }
}

/// Ten back-to-back runs of one request per connection against `s`.
pub fn collapse_runs(s: &Server) -> Vec<Option<f64>> {
    (0..COLLAPSE_RUNS)
        .map(|i| {
            eprintln!("bench: collapse check, run {}/{COLLAPSE_RUNS} ...", i + 1);
            wrk_with(s, true, COLLAPSE_SECONDS, 2)
        })
        .collect()
}

/// "a / b" as `N.NNx`, or "n/a".
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

/// Runs the network benchmark and returns its report section.
pub fn run(repo: &Path, unikit: &Path, kvm: bool) -> String {
    let mut r = String::new();
    if let Some(m) = missing_tools(true) {
        eprintln!("bench: HTTP throughput skipped: {m}");
        let _ = writeln!(r, "\n## HTTP throughput\n\nSkipped: {m}.");
        return r;
    }
    let optional_missing = missing_tools(false);
    if let Some(m) = &optional_missing {
        eprintln!("bench: some HTTP rows skipped: {m}");
    }
    let Some(www) = bench_www() else {
        let _ = writeln!(r, "\n## HTTP throughput\n\nSkipped: cannot write the page to serve in the temp directory.");
        return r;
    };

    // The collapse check wants a linuxu httpd that has served nothing yet.
    eprintln!(
        "bench: collapse check: {COLLAPSE_RUNS} runs of {COLLAPSE_SECONDS} s, one request per connection, against a fresh linuxu httpd ..."
    );
    let collapse = unikit_linuxu(repo, unikit, &www, "fresh").map(|s| collapse_runs(&s));

    eprintln!("bench: starting HTTP servers ...");
    let mut servers: Vec<Server> = Vec::new();
    servers.extend(unikit_qemu(repo, unikit, &www, "tcg"));
    if kvm {
        servers.extend(unikit_qemu(repo, unikit, &www, "kvm"));
    }
    servers.extend(linux_guest(repo, &www));
    servers.extend(unikit_linuxu(repo, unikit, &www, "rows"));
    servers.extend(nginx_host(&www));
    servers.extend(busybox_host(&www));
    let mut keep: Vec<Vec<Wrk>> = servers.iter().map(|_| vec![]).collect();
    let mut close: Vec<Vec<Wrk>> = servers.iter().map(|_| vec![]).collect();
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
        "`wrk -t2 -c{CONNECTIONS} -d{SECONDS}s --latency` fetching the same {PAGE_BYTES}-byte `index.html` from every server; medians of {ROUNDS} interleaved rounds. \"close\" adds `-H 'Connection: close'` (one request per connection; busybox httpd never keeps a connection alive). nginx is Debian's nginx-light with a config the bench writes: one worker, access log off, sendfile on.\n"
    );
    if let Some(m) = &optional_missing {
        let _ = writeln!(r, "Rows missing: {m}.\n");
    }
    let _ = writeln!(
        r,
        "| server | keep-alive req/s | keep-alive p50 / p99 | close req/s | close p50 / p99 |\n|---|---|---|---|---|"
    );
    let mut meds: Vec<(String, Option<Wrk>, Option<Wrk>)> = vec![];
    for (i, s) in servers.iter().enumerate() {
        let (k, c) = (medians(&keep[i]), medians(&close[i]));
        meds.push((s.name.clone(), k, c));
        let rps = |w: Option<Wrk>| w.map(|w| format!("{:.0}", w.rps)).unwrap_or_else(|| "failed".into());
        let lat = |w: Option<Wrk>| {
            w.map(|w| format!("{} / {}", fmt_lat(w.p50_us), fmt_lat(w.p99_us))).unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(r, "| {} | {} | {} | {} | {} |", s.name, rps(k), lat(k), rps(c), lat(c));
    }
    drop(servers);
    let find = |p: &str| meds.iter().find(|m| m.0.starts_with(p)).cloned();
    let _ = writeln!(
        r,
        "\nRatios from this run (targets of issue 17: linuxu >= 2x native nginx keep-alive and >= 1.0x close; QEMU >= 2x nginx in a Linux guest on the same QEMU and accelerator in both columns; p99 no worse than nginx's).\n"
    );
    let _ = writeln!(
        r,
        "| comparison | keep-alive req/s | close req/s | keep-alive p99 | close p99 |\n|---|---|---|---|---|"
    );
    let rows = [
        ("unikit linuxu vs native nginx", "unikit httpd as a Linux process", "nginx 1 worker, host"),
        (
            "unikit QEMU TCG vs nginx in a Linux guest (QEMU TCG)",
            "unikit httpd, QEMU q35 TCG",
            "nginx in a Linux guest",
        ),
    ];
    for (label, a, b) in rows {
        let (Some(a), Some(b)) = (find(a), find(b)) else {
            let _ = writeln!(r, "| {label} | n/a | n/a | n/a | n/a |");
            continue;
        };
        // Latency as nginx's p99 over ours: above 1 means ours is lower (better).
        let _ = writeln!(
            r,
            "| {label} | {} | {} | {} vs {} | {} vs {} |",
            ratio(a.1.map(|w| w.rps), b.1.map(|w| w.rps)),
            ratio(a.2.map(|w| w.rps), b.2.map(|w| w.rps)),
            a.1.map(|w| fmt_lat(w.p99_us)).unwrap_or("-".into()),
            b.1.map(|w| fmt_lat(w.p99_us)).unwrap_or("-".into()),
            a.2.map(|w| fmt_lat(w.p99_us)).unwrap_or("-".into()),
            b.2.map(|w| fmt_lat(w.p99_us)).unwrap_or("-".into()),
        );
    }
    let _ = writeln!(
        r,
        "\nThe Linux guest runs under TCG only: this host's KVM cannot boot a stock Linux kernel. QEMU's user-mode network (slirp) is in the path of every QEMU row, and limits them all alike."
    );
    let _ = writeln!(
        r,
        "\n### No collapse: {COLLAPSE_RUNS} back-to-back runs of one request per connection\n\n`wrk -t2 -c{CONNECTIONS} -d{COLLAPSE_SECONDS}s -H 'Connection: close'`, {COLLAPSE_RUNS} times in a row against one linuxu httpd started for this check alone (before any other load); req/s.\n"
    );
    match collapse {
        Some(runs) => {
            let f = |v: &Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "failed".into());
            let all: Vec<String> = runs.iter().map(f).collect();
            let (first, last) = (runs.first().copied().flatten(), runs.last().copied().flatten());
            let _ = writeln!(r, "runs: {}\n", all.join(", "));
            let _ = writeln!(
                r,
                "**run {COLLAPSE_RUNS} / run 1 = {}** ({} vs {} req/s). The collapse of issue 17 shows here as 0.03x..0.1x; run-to-run noise on a shared machine spans about 0.5x..2x.",
                ratio(last, first),
                f(&last),
                f(&first)
            );
        }
        None => {
            let _ = writeln!(r, "Not run: the linuxu httpd did not start (needs root for the network namespace).");
        }
    }
    let _ = std::fs::remove_dir_all(&www);
    r
}

#[allow(dead_code)]
pub fn repo_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUT: &str = "Running 5s test @ http://127.0.0.1:8080/index.html
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   292.47us  400.12us  13.26ms   97.33%
    Req/Sec    28.16k     2.51k   33.08k    72.00%
  Latency Distribution
     50%  215.00us
     75%  294.00us
     90%  420.00us
     99%    1.51ms
  280196 requests in 5.00s, 224.75MB read
Requests/sec:  56028.77
Transfer/sec:     44.94MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let w = parse_wrk(WRK_OUT).unwrap();
        assert!((w.rps - 56028.77).abs() < 1e-6);
        assert!((w.p50_us - 215.0).abs() < 1e-6);
        assert!((w.p99_us - 1510.0).abs() < 1e-6);
        assert_eq!(parse_duration_us("2.00s"), Some(2e6));
        assert_eq!(parse_duration_us("12x"), None);
        // No latency distribution (wrk without --latency): not a result.
        assert!(parse_wrk("Requests/sec: 10.0\n").is_none());
    }

    #[test]
    fn the_page_has_the_promised_size() {
        let d = bench_www().unwrap();
        assert_eq!(std::fs::metadata(d.join("index.html")).unwrap().len(), PAGE_BYTES as u64);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn nginx_conf_has_one_worker_and_no_access_log() {
        let c = nginx_conf("/tmp/x", "127.0.0.1:1", "/www");
        assert!(c.contains("worker_processes 1;") && c.contains("access_log off;"));
        assert!(c.contains("listen 127.0.0.1:1;") && c.contains("root /www;"));
    }
}
