//! Linux programs in unikit (`unikit run --exec`): system-call round trips
//! beside the same binary as a Linux process, the loader image's size,
//! the wall time of a static hello, and the smallest `-m` it runs in.
//! `--exec-only` measures this section alone and writes it into REPORT.md.

use crate::net;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const HEADING: &str = "## Linux programs (--exec)";

struct Progs {
    syscalls: PathBuf,
    hello: PathBuf,
}

fn musl_build(repo: &Path, src: &str, out: &Path) -> Result<(), String> {
    let st = Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(repo.join(src))
        .status()
        .map_err(|e| format!("musl-gcc: {e} (install musl-tools)"))?;
    if !st.success() {
        return Err(format!("musl-gcc failed on {src}"));
    }
    Ok(())
}

fn build(repo: &Path) -> Result<Progs, String> {
    let dir = repo.join("target/bench-exec");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let p = Progs { syscalls: dir.join("syscalls"), hello: dir.join("hello") };
    musl_build(repo, "bench/exec/syscalls.c", &p.syscalls)?;
    musl_build(repo, "tests/exec/hello.c", &p.hello)?;
    Ok(p)
}

/// `(getpid, read)` ticks from the program's output.
fn parse(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find(|l| l.starts_with("getpid_ticks="))?;
    let mut it = line.split_whitespace().map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok()));
    Some((it.next()??, it.next()??))
}

fn unikit_run(unikit: &Path, plat: &[&str], prog: &Path, mem: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut c = Command::new(unikit);
    c.args(["run", "-q"]).args(plat).arg("--exec").arg(prog);
    if let Some(m) = mem {
        c.args(["-m", m]);
    }
    match c.arg("--").args(args).output() {
        Ok(o) => (o.status.code() == Some(0), String::from_utf8_lossy(&o.stdout).into_owned()),
        Err(_) => (false, String::new()),
    }
}

fn wall_ms(mut f: impl FnMut() -> bool) -> Option<f64> {
    let mut v = vec![];
    for _ in 0..5 {
        let t = Instant::now();
        if !f() {
            return None;
        }
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// The smallest `-m` (256 KiB steps) in which the static hello prints.
fn smallest(unikit: &Path, plat: &[&str], hello: &Path) -> Option<u64> {
    let ok = |k: u64| {
        let (ok, out) = unikit_run(unikit, plat, hello, Some(&format!("{k}K")), &[]);
        ok && out.contains("hello from C")
    };
    let (mut lo, mut hi) = (1024u64, 64 * 1024u64);
    if !ok(hi) {
        return None;
    }
    while hi - lo > 256 {
        let mid = (lo + hi) / 2 / 256 * 256;
        if ok(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// The host's nginx with the libraries `ldd` names, a configuration in
/// the shape of `net::nginx_conf` (listening on 8080, the bench's page at
/// /www), in a rootfs for `--exec`.
fn nginx_rootfs(dir: &Path, www: &Path) -> Result<PathBuf, String> {
    let bin = Path::new("/usr/sbin/nginx");
    let o = Command::new("ldd").arg(bin).output().map_err(|e| format!("ldd: {e}"))?;
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() || list.contains("not found") {
        return Err(format!("ldd {} failed", bin.display()));
    }
    let copy = |from: &Path, to: &Path| -> Result<(), String> {
        let dest = dir.join(to.strip_prefix("/").unwrap_or(to));
        std::fs::create_dir_all(dest.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::copy(from, &dest).map(|_| ()).map_err(|e| format!("copying {}: {e}", from.display()))
    };
    copy(bin, bin)?;
    for line in list.lines() {
        let path = match line.split_once("=>") {
            Some((_, p)) => p.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            copy(Path::new(p), Path::new(p))?;
        }
    }
    for f in std::fs::read_dir(www).map_err(|e| e.to_string())?.flatten() {
        copy(&f.path(), &Path::new("/www").join(f.file_name()))?;
    }
    let etc = dir.join("etc");
    std::fs::create_dir_all(etc.join("nginx")).map_err(|e| e.to_string())?;
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        .map_err(|e| e.to_string())?;
    std::fs::write(etc.join("group"), "root:x:0:\nnogroup:x:65534:\n").map_err(|e| e.to_string())?;
    let conf = net::nginx_conf("/tmp", "8080", "/www").replace("daemon off;", "daemon off;\nmaster_process off;");
    std::fs::write(etc.join("nginx/nginx.conf"), conf).map_err(|e| e.to_string())?;
    for d in ["tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    Ok(dir.join("usr/sbin/nginx"))
}

/// nginx (Debian's, dynamically linked against glibc) in unikit, beside
/// the same binary as a host process and inside a Linux guest on the same
/// QEMU and accelerator: requests/s, keep-alive and one per connection.
fn http(repo: &Path, unikit: &Path) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "
### nginx: the same binary in unikit, as a Linux process, in a Linux guest
"
    );
    let Some(www) = net::bench_www() else {
        let _ = writeln!(r, "(not measured: no page to serve)");
        return r;
    };
    let root = std::env::temp_dir().join(format!("unikit-bench-nginx-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let nginx = match nginx_rootfs(&root, &www) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(r, "(not measured: {e})");
            return r;
        }
    };
    let port = net::free_port();
    let mut servers: Vec<net::Server> = vec![];
    servers.extend(net::nginx_host(&www));
    let mut cmd = Command::new(unikit);
    cmd.args([
        "run",
        "-q",
        "--plat",
        "qemu",
        "--accel",
        "tcg",
        "-m",
        "128M",
        "-p",
        &format!("{port}:8080"),
        "--rootfs",
    ])
    .arg(&root)
    .arg("--exec")
    .arg(&nginx)
    .args(["--", "-c", "/etc/nginx/nginx.conf", "-p", "/tmp"]);
    servers.extend(net::server(
        "nginx 1 worker in unikit (--exec), QEMU q35 TCG, user net".into(),
        &mut cmd,
        port,
        120,
    ));
    servers.extend(net::linux_guest(repo, &www).into_iter().filter(|s| s.name.starts_with("nginx")));
    let _ = writeln!(
        r,
        "| server | keep-alive req/s | p50 | p99 | one request per connection, req/s | p50 | p99 |\n|---|---|---|---|---|---|---|"
    );
    let cell = |w: &Option<net::Wrk>| match w {
        Some(w) => format!("{:.0} | {:.0} us | {:.0} us", w.rps, w.p50_us, w.p99_us),
        None => "- | - | -".into(),
    };
    for s in &servers {
        let (ka, close) = (net::wrk(s, false), net::wrk(s, true));
        let _ = writeln!(r, "| {} | {} | {} |", s.name, cell(&ka), cell(&close));
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&root);
    r
}

pub fn run(repo: &Path, unikit: &Path, kvm: bool) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "\n{HEADING}\n");
    let progs = match build(repo) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(r, "(not measured: {e})");
            return r;
        }
    };
    let mut configs: Vec<(&str, Vec<&str>)> = vec![
        ("qemu q35, TCG", vec!["--plat", "qemu", "--accel", "tcg"]),
        ("qemu microvm, TCG", vec!["--plat", "qemu", "--accel", "tcg", "--machine", "microvm"]),
    ];
    if kvm {
        configs.push(("qemu q35, KVM", vec!["--plat", "qemu", "--accel", "kvm"]));
    }
    let native = Command::new(&progs.syscalls).output().ok().and_then(|o| parse(&String::from_utf8_lossy(&o.stdout)));
    let _ = writeln!(
        r,
        "System-call round trips in TSC ticks per call (median of 7 batches; `bench/exec/syscalls.c`, the same static musl binary everywhere):\n"
    );
    let _ = writeln!(r, "| where | getpid | read 1 byte of /dev/zero | getpid vs Linux |\n|---|---|---|---|");
    let show = |v: Option<(u64, u64)>| v.map_or(("-".into(), "-".into()), |(g, rd)| (g.to_string(), rd.to_string()));
    let (g, rd) = show(native);
    let _ = writeln!(r, "| Linux process on this host | {g} | {rd} | 1.00x |");
    for (name, plat) in &configs {
        // Fewer calls under KVM here: kvm_pvm emulates every kernel instruction.
        let n = if name.contains("KVM") { "2000" } else { "20000" };
        let (_, out) = unikit_run(unikit, plat, &progs.syscalls, None, &[n]);
        let v = parse(&out);
        let ratio = match (v, native) {
            (Some((g, _)), Some((ng, _))) if ng > 0 => format!("{:.2}x", g as f64 / ng as f64),
            _ => "-".into(),
        };
        let (g, rd) = show(v);
        let _ = writeln!(r, "| unikit, {name} | {g} | {rd} | {ratio} |");
    }
    let _ = writeln!(
        r,
        "\nUnder TCG the guest's TSC ticks are emulated time: those rows show the cost inside QEMU's emulation, not hardware. On this host /dev/kvm is kvm_pvm, whose `syscall` from ring 3 does not switch to the guest kernel (unikit catches the resulting fault and serves the call from it), and whose kernel-mode instructions are emulated one by one: the KVM row measures that, not hardware KVM."
    );

    let size_dir = repo.join("target/bench-exec/image");
    let built = Command::new(unikit)
        .args(["build", "-q", "--plat", "qemu", "--exec"])
        .arg(&progs.hello)
        .arg("--out")
        .arg(&size_dir)
        .output()
        .is_ok_and(|o| o.status.success());
    let image = std::fs::read_dir(&size_dir)
        .ok()
        .and_then(|d| d.flatten().find(|e| e.file_name().to_string_lossy().ends_with("_qemu-x86_64")).map(|e| e.path()))
        .filter(|_| built);
    let size = image.and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len());
    let _ = writeln!(r, "\n| static hello (`tests/exec/hello.c`) | |\n|---|---|");
    let _ = writeln!(r, "| loader image (qemu) | {} |", size.map_or("-".into(), |s| format!("{s} bytes")));
    let native_ms = wall_ms(|| Command::new(&progs.hello).output().is_ok_and(|o| o.status.success()));
    let _ = writeln!(r, "| wall time, Linux process | {} |", native_ms.map_or("-".into(), |m| format!("{m:.1} ms")));
    for (name, plat) in &configs {
        let ms = wall_ms(|| unikit_run(unikit, plat, &progs.hello, None, &[]).0);
        let _ = writeln!(
            r,
            "| wall time, `unikit run --exec`, {name} | {} |",
            ms.map_or("-".into(), |m| format!("{m:.1} ms"))
        );
    }
    let tcg: Vec<&str> = vec!["--plat", "qemu", "--accel", "tcg"];
    let min = smallest(unikit, &tcg, &progs.hello);
    let _ = writeln!(r, "| smallest `-m` (TCG, 256 KiB steps) | {} |", min.map_or("-".into(), |k| format!("{k} KiB")));
    r.push_str(&http(repo, unikit));
    r
}
