//! `--capacity`: how many idle connections examples/httpd holds with
//! `-m 64M`, and what one costs; `--soak SECS`: wrk against httpd for SECS
//! seconds, requests/s and errors per interval.
//!
//! Capacity: TCP connections are opened in batches, each fetches a page and
//! is then left idle, until one is refused (the stack's RST when memory
//! runs short), fails or times out, or `MAX_IDLE` is reached; then a new
//! client is tried while they are held, and again after they leave (the
//! server must have stayed up). On linuxu
//! the process's resident memory is read before and after, which gives the
//! memory per idle connection; on QEMU the guest's memory is not visible
//! from outside, so 64 MiB divided by the capacity is given as an upper
//! bound. httpd closes idle clients after 30 s, so opening them must take
//! less than that (the report says how long it took).
use crate::net::{self, Server};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const MAX_IDLE: usize = 6000;

struct Capacity {
    held: usize,
    stop: String,
    took: Duration,
    rss_per_conn: Option<f64>,
    served_while_full: bool,
    served_after: bool,
}

fn raise_fd_limit() {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

/// Runs `f` on a thread inside network namespace `ns` (if any).
fn within<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(ns) = ns {
                use std::os::fd::AsRawFd;
                let file = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
                // SAFETY: setns on a valid descriptor; affects this thread only.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap()
    })
}

fn get(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if s.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut b = [0u8; 64];
    matches!(s.read(&mut b), Ok(n) if n >= 12 && b.starts_with(b"HTTP/1.1 200"))
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

fn descends_from(mut pid: u32, root: u32) -> bool {
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match parent_of(pid) {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// Resident memory of the linuxu guest process (the httpd image) started
/// under `root`, in bytes.
fn guest_rss(root: u32) -> Option<u64> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains("httpd_linuxu") || !descends_from(pid, root) {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim();
        return kb.parse::<u64>().ok().map(|kb| kb * 1024);
    }
    None
}

/// Reads one whole response (head and `Content-Length` body); true for a 200.
fn read_response(c: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return head.starts_with("http/1.1 200");
            }
        }
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Opens connections in batches, each asking for one page (kept alive) so
/// that only connections the guest really took count (QEMU's user network
/// accepts on the host side before the guest has a say), then left idle.
fn measure(addr: SocketAddr, ns: Option<&str>, rss_of: Option<u32>) -> Capacity {
    const BATCH: usize = 50;
    within(ns, || {
        let before = rss_of.and_then(guest_rss);
        let t0 = Instant::now();
        let mut idle: Vec<TcpStream> = Vec::new();
        let mut stop = format!("reached the bench's limit of {MAX_IDLE}");
        'open: while idle.len() < MAX_IDLE {
            let mut batch = Vec::new();
            for _ in 0..BATCH {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                    Ok(c) => batch.push(c),
                    Err(e) => {
                        stop = format!("connection {} failed: {e}", idle.len() + batch.len() + 1);
                        break;
                    }
                }
            }
            let full = batch.len() < BATCH;
            for c in &mut batch {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = c.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
            }
            for mut c in batch {
                if read_response(&mut c) {
                    idle.push(c);
                } else {
                    stop = format!("connection {} was refused or not answered", idle.len() + 1);
                    break 'open;
                }
            }
            if full {
                break;
            }
        }
        let took = t0.elapsed();
        std::thread::sleep(Duration::from_secs(2));
        // Count the ones still open: a reset or closed one reads 0 / errors.
        let mut held = 0;
        for c in &idle {
            let _ = c.set_nonblocking(true);
            let mut b = [0u8; 1];
            match (&*c).read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => held += 1,
                _ => {}
            }
        }
        let after = rss_of.and_then(guest_rss);
        let rss_per_conn = match (before, after) {
            (Some(b), Some(a)) if held > 0 && a > b => Some((a - b) as f64 / held as f64),
            _ => None,
        };
        let served_while_full = get(addr);
        drop(idle);
        // The server must have stayed up: once the clients are gone, a new
        // one is served again.
        let t = Instant::now();
        let mut served_after = false;
        while !served_after && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(500));
            served_after = get(addr);
        }
        Capacity { held, stop, took, rss_per_conn, served_while_full, served_after }
    })
}

/// The `--capacity` report section.
pub fn run_capacity(repo: &Path, unikit: &Path) -> String {
    raise_fd_limit();
    let mut r = String::new();
    let _ = writeln!(r, "\n## Idle-connection capacity (httpd, `-m 64M`)\n");
    let _ = writeln!(
        r,
        "TCP connections opened in batches of 50, each fetching a page and then left idle, until one is refused or fails (at most {MAX_IDLE}); then a new client is tried while they are held and after they leave.\n"
    );
    let _ = writeln!(
        r,
        "| server | idle connections held | stopped because | opening took | memory per idle connection | new client while full | new client after they left |\n|---|---|---|---|---|---|---|"
    );
    if let Some(s) = net::unikit_linuxu(repo, unikit, &repo.join("examples/httpd/www"), "capacity") {
        let ns = s.wrap.get(3).cloned();
        let addr: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let c = measure(addr, ns.as_deref(), Some(s.pid()));
        let per = c.rss_per_conn.map(|b| format!("{:.1} KiB (RSS growth / connections)", b / 1024.0));
        row(&mut r, &s.name, &c, per.unwrap_or_else(|| "n/a".into()));
    }
    if let Some(s) = net::unikit_qemu_with(repo, unikit, &repo.join("examples/httpd/www"), "tcg", &["-m", "64M"]) {
        let addr: SocketAddr = s.url.trim_start_matches("http://").split('/').next().unwrap().parse().unwrap();
        let c = measure(addr, None, None);
        let per = if c.held > 0 {
            format!("at most {:.1} KiB (64 MiB / held)", 64.0 * 1024.0 / c.held as f64)
        } else {
            "n/a".into()
        };
        row(&mut r, &s.name, &c, per);
    }
    r
}

fn row(r: &mut String, name: &str, c: &Capacity, per: String) {
    let _ = writeln!(
        r,
        "| {name} | {} | {} | {:.1} s | {per} | {} | {} |",
        c.held,
        c.stop,
        c.took.as_secs_f64(),
        if c.served_while_full { "served" } else { "refused" },
        if c.served_after { "served" } else { "NO" }
    );
}

/// The `--soak SECS` report section: wrk (keep-alive, 16 connections)
/// against httpd on linuxu and on QEMU TCG in 10 s intervals.
pub fn run_soak(repo: &Path, unikit: &Path, secs: u64) -> String {
    const INTERVAL: u64 = 10;
    let mut r = String::new();
    let _ = writeln!(r, "\n## Soak: {secs} s of wrk (keep-alive, 16 connections), per {INTERVAL} s interval\n");
    let mut servers: Vec<Server> = Vec::new();
    servers.extend(net::unikit_linuxu(repo, unikit, &repo.join("examples/httpd/www"), "capacity"));
    servers.extend(net::unikit_qemu_with(repo, unikit, &repo.join("examples/httpd/www"), "tcg", &["-m", "64M"]));
    for s in &servers {
        let _ = writeln!(r, "\n{}\n\n| interval | req/s | errors |\n|---|---|---|", s.name);
        let mut total_err = 0u64;
        let n = secs.div_ceil(INTERVAL).max(1);
        for i in 0..n {
            let (rps, errs) = net::wrk_detail(s, INTERVAL as u32);
            total_err += errs;
            let _ = writeln!(
                r,
                "| {}-{} s | {} | {errs} |",
                i * INTERVAL,
                (i + 1) * INTERVAL,
                rps.map(|v| format!("{v:.0}")).unwrap_or_else(|| "failed".into())
            );
        }
        let _ = writeln!(r, "\nerrors in total: {total_err}; server still answering: {}", net::answers(s));
    }
    r
}
