//! `unikit run --exec`: unmodified Linux programs booted in the loader
//! image on QEMU q35 and microvm under TCG, and under KVM where /dev/kvm
//! works, checking their output and exit codes:
//! - C built with musl-gcc (tests/exec/*.c), static and static-pie: files,
//!   threads, signals (sig.c), timer preemption (spin.c), an epoll HTTP
//!   server reached through `-p` (ep.c), a fault, an unserved system call;
//! - a Rust std program for x86_64-unknown-linux-musl (tests/exec/rust-std),
//!   also as a `TcpListener` HTTP server;
//! - a Go program (tests/exec/go, `CGO_ENABLED=0 go build`), also as a
//!   net/http server;
//! - programs nobody here wrote: Debian's static busybox (fetched with
//!   `apt-get download busybox-static` into target/exec-pkgs/) and the
//!   host's dynamically linked nginx with its glibc libraries in a rootfs.
//!
//! The programs are built here, into `target/exec-progs/`, never committed.
//! Every program is also run as a Linux process on this host first
//! (`programs_behave_on_the_host`), so that a boot test's expectations are
//! those of Linux itself. Without musl-gcc or the musl Rust target the tests
//! are compiled as ignored, with the reason (see crates/cli/build.rs); the
//! Go ones likewise without `go`. When busybox cannot be downloaded or there
//! is no nginx, those tests print `SKIPPED:` with the reason and pass.
//! Tests the guest cannot pass yet are ignored with the reason.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace's target folder (the parent of this test's temporary one).
fn target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_path_buf()
}

/// The test programs: built once into `target/exec-progs/` and rebuilt when
/// a source is newer. nextest runs each test in its own process, so the
/// build is serialized with a lock file.
mod progs {
    use super::*;

    /// C programs: (output name, source, how it is linked).
    pub const C: &[(&str, &str, Link)] = &[
        ("hello", "hello.c", Link::Static),
        ("hello-pie", "hello.c", Link::StaticPie),
        ("hello-dyn", "hello.c", Link::Dynamic),
        ("files", "files.c", Link::Static),
        ("files-pie", "files.c", Link::StaticPie),
        ("threads", "threads.c", Link::Static),
        ("threads-pie", "threads.c", Link::StaticPie),
        ("fault", "fault.c", Link::Static),
        ("nosys", "nosys.c", Link::Static),
        ("sig", "sig.c", Link::Static),
        ("spin", "spin.c", Link::Static),
        ("ep", "ep.c", Link::Static),
        ("idle", "idle.c", Link::Static),
        ("io", "io.c", Link::Static),
        ("epout", "epout.c", Link::Static),
    ];

    #[derive(Clone, Copy)]
    pub enum Link {
        Static,
        StaticPie,
        /// Against musl's libc.so, whose path is also its interpreter.
        Dynamic,
    }

    /// musl's own files (its crt objects, and libc.so = ld-musl-x86_64.so.1).
    pub const MUSL_LIB: &str = "/usr/lib/x86_64-linux-musl";
    /// The interpreter musl-gcc names in dynamically linked programs.
    pub const MUSL_INTERP: &str = "lib/ld-musl-x86_64.so.1";

    fn newer(src: &Path, out: &Path) -> bool {
        let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        match (m(src), m(out)) {
            (Some(s), Some(o)) => s > o,
            _ => true,
        }
    }

    fn gcc_file(name: &str) -> String {
        let o = Command::new("gcc").arg(format!("-print-file-name={name}")).output().expect("cannot run gcc");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn compile(src: &Path, out: &Path, link: Link) {
        let tmp = out.with_extension("tmp");
        let mut cmd = Command::new("musl-gcc");
        cmd.args(["-O2", "-Wall", "-Wextra", "-g", "-o"]).arg(&tmp);
        match link {
            Link::Static => {
                cmd.arg("-static").arg(src);
            }
            // Debian's musl-gcc.specs has no static-pie rule (it would name
            // the interpreter and link libc.so): name musl's self-relocating
            // start file and link statically by hand.
            Link::StaticPie => {
                cmd.args(["-fPIE", "-static-pie", "-nostartfiles", "-Wl,--no-dynamic-linker", "-Wl,-Bstatic"])
                    .arg(format!("{MUSL_LIB}/rcrt1.o"))
                    .arg(format!("{MUSL_LIB}/crti.o"))
                    .arg(gcc_file("crtbeginS.o"))
                    .arg(src)
                    .args(["-lpthread"])
                    .arg(gcc_file("crtendS.o"))
                    .arg(format!("{MUSL_LIB}/crtn.o"));
            }
            Link::Dynamic => {
                cmd.arg(src);
            }
        }
        cmd.arg("-lpthread");
        let o = cmd.output().unwrap_or_else(|e| panic!("cannot run musl-gcc: {e}"));
        assert!(o.status.success(), "musl-gcc failed on {}:\n{}", src.display(), String::from_utf8_lossy(&o.stderr));
        fs::rename(&tmp, out).unwrap();
    }

    /// Builds whatever is out of date; returns the folder of the programs.
    pub fn build() -> PathBuf {
        let out = target().join("exec-progs");
        fs::create_dir_all(&out).unwrap();
        // Held until `lock` is dropped, at the end of the build.
        let lock = fs::File::create(out.join(".lock")).unwrap();
        lock.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", out.display()));
        let srcdir = repo().join("tests/exec");
        for &(name, src, link) in C {
            let (src, dest) = (srcdir.join(src), out.join(name));
            if newer(&src, &dest) {
                compile(&src, &dest, link);
            }
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let o = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--target", "x86_64-unknown-linux-musl", "--manifest-path"])
            .arg(srcdir.join("rust-std/Cargo.toml"))
            .arg("--target-dir")
            .arg(out.join("rust-target"))
            // Not this workspace's flags: a plain Linux program.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("cannot run cargo");
        assert!(o.status.success(), "building tests/exec/rust-std failed:\n{}", String::from_utf8_lossy(&o.stderr));
        // Replaced only when cargo rebuilt it, and by a rename: other tests
        // may be running the current copy.
        let (built, dest) =
            (out.join("rust-target/x86_64-unknown-linux-musl/release/exec-rust-std"), out.join("rust-std"));
        if newer(&built, &dest) {
            fs::copy(&built, out.join("rust-std.tmp")).unwrap();
            fs::rename(out.join("rust-std.tmp"), &dest).unwrap();
        }
        out
    }

    /// The Go program (tests/exec/go), built with `CGO_ENABLED=0 go build`
    /// into `target/exec-progs/go`; returns its path.
    pub fn go() -> PathBuf {
        let out = build();
        let lock = fs::File::create(out.join(".lock")).unwrap();
        lock.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", out.display()));
        let (src, dest) = (repo().join("tests/exec/go/main.go"), out.join("go"));
        if newer(&src, &dest) {
            let tmp = out.join("go.tmp");
            let o = Command::new("go")
                .args(["build", "-o"])
                .arg(&tmp)
                .arg(&src)
                .env("CGO_ENABLED", "0")
                .env("GOCACHE", out.join("go-cache"))
                .env("GOFLAGS", "-trimpath")
                .output()
                .unwrap_or_else(|e| panic!("cannot run go: {e}"));
            assert!(o.status.success(), "go build failed:\n{}", String::from_utf8_lossy(&o.stderr));
            fs::rename(&tmp, &dest).unwrap();
        }
        dest
    }

    /// Debian package `pkg`, fetched with `apt-get download` into
    /// `target/exec-pkgs/` and unpacked there (once): returns the folder it
    /// was unpacked into, or why it could not be fetched.
    pub fn debian(pkg: &str) -> Result<PathBuf, String> {
        let cache = target().join("exec-pkgs");
        fs::create_dir_all(&cache).unwrap();
        let lock = fs::File::create(cache.join(".lock")).unwrap();
        lock.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", cache.display()));
        let root = cache.join(pkg);
        if root.join(".unpacked").exists() {
            return Ok(root);
        }
        let dl = cache.join(format!("{pkg}.download"));
        let _ = fs::remove_dir_all(&dl);
        fs::create_dir_all(&dl).unwrap();
        let o = Command::new("apt-get")
            .args(["download", "-q", pkg])
            .current_dir(&dl)
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        let deb = fs::read_dir(&dl)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"));
        let Some(deb) = deb.filter(|_| o.status.success()) else {
            return Err(format!(
                "apt-get download {pkg} failed: {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("(no message)")
            ));
        };
        let _ = fs::remove_dir_all(&root);
        let o = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .output()
            .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
        if !o.status.success() {
            return Err(format!("dpkg-deb -x {} failed: {}", deb.display(), String::from_utf8_lossy(&o.stderr)));
        }
        fs::write(root.join(".unpacked"), deb.file_name().unwrap().as_encoded_bytes()).unwrap();
        let _ = fs::remove_dir_all(&dl);
        Ok(root)
    }

    /// A rootfs for files.c: /data/hello.txt and /data/sub.
    pub fn data_rootfs(dir: &Path) {
        fs::create_dir_all(dir.join("data/sub")).unwrap();
        fs::write(dir.join("data/hello.txt"), "from the rootfs\n").unwrap();
    }

    /// A rootfs with musl's interpreter for the dynamically linked program.
    pub fn musl_rootfs(dir: &Path) {
        fs::create_dir_all(dir.join("lib")).unwrap();
        fs::copy(Path::new(MUSL_LIB).join("libc.so"), dir.join(MUSL_INTERP)).unwrap();
        fs::set_permissions(dir.join(MUSL_INTERP), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect(&self, code: i32, lines: &[&str]) -> &Self {
        let ctx = format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr);
        assert_eq!(self.code, code, "wrong exit code\n{ctx}");
        for l in lines {
            assert!(self.stdout.lines().any(|x| x.trim_end() == *l), "missing the line {l:?}\n{ctx}");
        }
        assert!(!self.stdout.contains("\x1b_unikit:exit"), "exit marker leaked to stdout\n{ctx}");
        self
    }

    #[track_caller]
    fn no_fail(&self) -> &Self {
        assert!(!self.stdout.contains("FAIL"), "a check failed:\n{}", self.stdout);
        self
    }
}

/// `unikit run -q PLAT --exec <program> EXTRA...` to its end (stopped with
/// SIGTERM after `SERVE_TIMEOUT`: a hung guest fails its test).
fn run(plat: &[&str], prog: &str, extra: &[&str]) -> Run {
    Server::start(plat, &progs::build().join(prog), extra).finish()
}

const TCG: &[&str] = &["--plat", "qemu", "--accel", "tcg"];
const MICROVM: &[&str] = &["--plat", "qemu", "--accel", "tcg", "--machine", "microvm"];
const KVM: &[&str] = &["--plat", "qemu", "--accel", "kvm"];

fn hello(plat: &[&str], prog: &str, extra: &[&str]) {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["-e", "GREETING=hi there", "--", "7", "two words"]);
    run(plat, prog, &args).expect(
        7,
        &[
            "hello from C",
            "argc=3",
            &format!("argv[0]=/bin/{prog}"),
            "argv[1]=7",
            "argv[2]=two words",
            "GREETING=hi there",
        ],
    );
    // No arguments, no environment: exit 0.
    run(plat, prog, extra).expect(0, &["hello from C", "argc=1", "GREETING=(unset)"]);
}

fn hello_static(plat: &[&str]) {
    hello(plat, "hello", &[]);
}

fn hello_pie(plat: &[&str]) {
    hello(plat, "hello-pie", &[]);
}

fn hello_dynamic(plat: &[&str]) {
    let root = tempfile::tempdir().unwrap();
    progs::musl_rootfs(root.path());
    hello(plat, "hello-dyn", &["--rootfs", root.path().to_str().unwrap()]);
}

fn files(plat: &[&str], prog: &str) {
    let root = tempfile::tempdir().unwrap();
    progs::data_rootfs(root.path());
    let r = run(plat, prog, &["--rootfs", root.path().to_str().unwrap()]);
    r.expect(0, &["read /data/hello.txt ok", "readdir /data ok", "readlink /proc/self/exe ok"]).no_fail();
    assert!(r.stdout.lines().any(|l| l.starts_with("files: ") && l.ends_with(" ok, 0 failed")), "{}", r.stdout);
}

fn files_static(plat: &[&str]) {
    files(plat, "files");
}

fn files_pie(plat: &[&str]) {
    files(plat, "files-pie");
}

fn threads(plat: &[&str], prog: &str) {
    run(plat, prog, &[])
        .expect(0, &["condvar handshake ok", "nanosleep 20 ms ok", "counter=40000", "threads: ok"])
        .no_fail();
}

fn threads_static(plat: &[&str]) {
    threads(plat, "threads");
}

fn threads_pie(plat: &[&str]) {
    threads(plat, "threads-pie");
}

fn fault(plat: &[&str]) {
    // 128 + SIGSEGV, as a Linux shell shows, and a report naming the signal.
    let r = run(plat, "fault", &[]);
    r.expect(139, &["fault: writing through a null pointer"]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("SIGSEGV"), "no fault report naming SIGSEGV:\n{all}");
    assert!(!r.stdout.contains("still running"), "{}", r.stdout);
}

fn nosys(plat: &[&str]) {
    run(plat, "nosys", &[]).expect(0, &["fork: -1 ENOSYS", "syscall 1000: -1 ENOSYS", "nosys: ok"]);
}

fn rust_std(plat: &[&str]) {
    run(plat, "rust-std", &["-e", "GREETING=hi", "--", "a", "b"])
        .expect(0, &["args=[\"/bin/rust-std\", \"a\", \"b\"]", "GREETING=Ok(\"hi\")", "rust: ok"])
        .no_fail();
}

fn sig(plat: &[&str]) {
    run(plat, "sig", &[])
        .expect(0, &["sig: caught 11 at 0x10", "sig: usr1 handler ran: 10", "sig: fpu after handlers 12.0 ok"])
        .no_fail();
}

fn spin(plat: &[&str]) {
    run(plat, "spin", &[]).expect(0, &["spin: ok"]);
}

/// A rootfs whose /etc/hosts names exec-test-host (io.c, the Go program).
fn hosts_rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("etc/hosts"), "127.0.0.1 localhost\n10.1.2.3 exec-test-host\n").unwrap();
    fs::write(dir.join("etc/nsswitch.conf"), "hosts: files dns\n").unwrap();
}

/// io.c's groups `args`; every check must pass.
fn io(plat: &[&str], args: &[&str], extra: &[&str]) -> Run {
    let root = tempfile::tempdir().unwrap();
    hosts_rootfs(root.path());
    let mut all = vec!["--rootfs", root.path().to_str().unwrap()];
    all.extend(extra);
    all.push("--");
    all.extend(args);
    let r = run(plat, "io", &all);
    let ctx = format!("exit {}\n{}{}", r.code, r.stdout, r.stderr);
    assert!(r.stdout.lines().any(|l| l.trim_end().ends_with(" ok, 0 failed")), "{ctx}");
    r.expect(0, &[]).no_fail();
    r
}

fn io_pipes(plat: &[&str]) {
    io(plat, &["pipes", "events", "hosts"], &[]).expect(
        0,
        &[
            "poll pipe wakes ok",
            "select timeout ok",
            "TCGETS on a pipe ENOTTY ok",
            "eventfd sum ok",
            "getaddrinfo from /etc/hosts ok",
        ],
    );
}

fn io_unix(plat: &[&str]) {
    io(plat, &["unix"], &[]).expect(0, &["socketpair round trip ok"]);
}

fn io_links(plat: &[&str]) {
    io(plat, &["links"], &[]).expect(0, &["readlink ok", "stat follows the link ok"]);
}

/// TCP and UDP to itself over 127.0.0.1, with a NIC (`-p`) ...
fn io_loopback(plat: &[&str]) {
    let fwd = format!("{}:9", free_port());
    io(plat, &["tcp", "udp"], &["-p", &fwd]).expect(0, &["tcp client round trip ok", "udp recvmsg ok"]);
}

/// ... and without one.
fn io_loopback_no_nic(plat: &[&str]) {
    io(plat, &["tcp", "udp"], &[]).expect(0, &["tcp client round trip ok", "udp recvmsg ok"]);
}

/// A loopback port free right now, for `-p PORT:GUEST`.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `unikit run --exec` in the background, its console read line by line.
struct Server {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::thread::JoinHandle<String>,
    stdout_done: std::thread::JoinHandle<()>,
}

/// How long a guest may take to get to serving, and to answer (TCG, a
/// loaded 2-core host).
const SERVE_TIMEOUT: Duration = Duration::from_secs(120);

impl Server {
    fn start(plat: &[&str], prog: &Path, extra: &[&str]) -> Server {
        use std::io::{BufRead, Read};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_unikit"))
            .arg("run")
            .arg("-q")
            .args(plat)
            .arg("--exec")
            .arg(prog)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start unikit");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (out, all) = (child.stdout.take().unwrap(), stdout.clone());
        let stdout_done = std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Server { child, lines, stdout, stderr, stdout_done }
    }

    /// Waits for a console line starting with `prefix`.
    fn wait_for(&mut self, prefix: &str) -> Result<(), String> {
        let end = Instant::now() + SERVE_TIMEOUT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(format!("no line {prefix:?} on the console")),
            }
        }
    }

    /// `GET path` through the forwarded `port`, retried while the guest is
    /// not listening yet (QEMU's user network accepts on the host side and
    /// then closes when the guest refuses); the whole answer.
    fn get(&mut self, port: u16, path: &str) -> Result<String, String> {
        self.get_bytes(port, path).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn get_bytes(&mut self, port: u16, path: &str) -> Result<Vec<u8>, String> {
        use std::io::{Read, Write};
        let end = Instant::now() + SERVE_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("unikit exited ({st}) before answering GET {path}; last try: {last}"));
            }
            let attempt = (|| -> std::io::Result<Vec<u8>> {
                let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
                c.set_read_timeout(Some(Duration::from_secs(30)))?;
                write!(c, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
                let mut v = Vec::new();
                c.read_to_end(&mut v)?;
                Ok(v)
            })();
            match attempt {
                Ok(r) if r.starts_with(b"HTTP/1.") => return Ok(r),
                Ok(r) => last = format!("answer {:?}", String::from_utf8_lossy(&r)),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("no answer to GET {path} on port {port}; last try: {last}"))
    }

    /// Waits for the run to end by itself (SIGTERM after the timeout).
    fn finish(mut self) -> Run {
        let end = Instant::now() + SERVE_TIMEOUT;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return self.collect();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop()
    }

    /// Ends the run with SIGTERM to unikit (which stops the guest).
    fn stop(mut self) -> Run {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        }
        self.collect()
    }

    fn collect(mut self) -> Run {
        let status = self.child.wait().unwrap();
        let _ = self.stdout_done.join();
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.join().unwrap();
        let r = Run { code: status.code().unwrap_or(-1), stdout, stderr };
        assert!(!r.stderr.contains("panicked"), "the CLI panicked:\n{}", r.stderr);
        r
    }
}

/// Ends the run and fails with `why` and what it printed.
#[track_caller]
fn serve_failed(srv: Server, why: String) -> ! {
    let r = srv.stop();
    panic!("{why}\nexit {}\n--- stdout\n{}\n--- stderr\n{}", r.code, r.stdout, r.stderr);
}

/// ep.c: two requests to its epoll loop, then it exits 0 by itself.
fn epoll_http(plat: &[&str]) {
    let port = free_port();
    let mut srv = Server::start(plat, &progs::build().join("ep"), &["-p", &format!("{port}:8080")]);
    if let Err(e) = srv.wait_for("ep: listening") {
        serve_failed(srv, e);
    }
    for _ in 0..2 {
        match srv.get(port, "/") {
            Ok(r) if r.contains("hello from epoll") => {}
            Ok(r) => serve_failed(srv, format!("wrong answer {r:?}")),
            Err(e) => serve_failed(srv, e),
        }
    }
    let r = srv.finish();
    r.expect(0, &["ep: listening"]);
    assert!(r.stdout.contains("ep: epoll_wait="), "{}", r.stdout);
}

/// epout.c: a 1 MiB answer, `args` saying how it is written.
fn big_answer(plat: &[&str], args: &[&str]) {
    let port = free_port();
    let fwd = format!("{port}:8080");
    let mut extra = vec!["-p", fwd.as_str(), "--"];
    extra.extend(args);
    let mut srv = Server::start(plat, &progs::build().join("epout"), &extra);
    if let Err(e) = srv.wait_for("epout: listening") {
        serve_failed(srv, e);
    }
    let want: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    match srv.get_bytes(port, "/") {
        Ok(a) if a.starts_with(b"HTTP/1.0 200 OK\r\nContent-Length: 1048576\r\n\r\n") && a.ends_with(&want) => {}
        Ok(a) => serve_failed(srv, format!("a short answer: {} bytes", a.len())),
        Err(e) => serve_failed(srv, e),
    }
    let r = srv.finish();
    r.expect(0, &[]);
    assert!(r.stdout.contains("epout: sent 1048576 bytes"), "{}", r.stdout);
}

/// Non-blocking writes until EAGAIN, then an edge-triggered EPOLLOUT, as
/// nginx sends a large file.
fn epoll_big(plat: &[&str]) {
    big_answer(plat, &[]);
}

fn tcp_big_blocking(plat: &[&str]) {
    big_answer(plat, &["blocking"]);
}

fn go_prog(plat: &[&str]) {
    run(plat, progs::go().to_str().unwrap(), &[])
        .expect(
            0,
            &[
                "go: goroutines 2399960",
                "go: slept true",
                "go: recovered: runtime error: invalid memory address or nil pointer dereference",
                "go: ok",
            ],
        )
        .no_fail();
}

/// On one P, main wakes from time.Sleep only if the runtime preempts a
/// goroutine spinning without a call: with SIGURG.
fn go_preempt(plat: &[&str]) {
    run(plat, progs::go().to_str().unwrap(), &["--", "preempt"])
        .expect(0, &["go: preempted a spinning goroutine", "go: ok"])
        .no_fail();
}

/// net.LookupHost reads the rootfs's /etc/hosts.
fn go_hosts(plat: &[&str]) {
    let root = tempfile::tempdir().unwrap();
    hosts_rootfs(root.path());
    run(plat, progs::go().to_str().unwrap(), &["--rootfs", root.path().to_str().unwrap(), "--", "hosts"])
        .expect(0, &["go: hosts [10.1.2.3] <nil>", "go: ok"]);
}

/// The Go net/http server: two pages, then /exit, then `go: ok`, exit 0.
fn go_http(plat: &[&str]) {
    let port = free_port();
    let mut srv = Server::start(plat, &progs::go(), &["-p", &format!("{port}:8080"), "--", "serve"]);
    if let Err(e) = srv.wait_for("go: serving") {
        serve_failed(srv, e);
    }
    for (path, want) in [("/a", "hello from go /a"), ("/b", "hello from go /b"), ("/exit", "bye from go")] {
        match srv.get(port, path) {
            Ok(r) if r.starts_with("HTTP/1.0 200 OK") && r.ends_with(&format!("\r\n\r\n{want}\n")) => {}
            Ok(r) => serve_failed(srv, format!("wrong answer to {path}: {r:?}")),
            Err(e) => serve_failed(srv, e),
        }
    }
    srv.finish().expect(0, &["go: serving", "go: served", "go: ok"]);
}

/// The Rust std program's TcpListener mode: 3 requests, then exit 0.
fn rust_http(plat: &[&str]) {
    let port = free_port();
    let prog = progs::build().join("rust-std");
    let mut srv = Server::start(plat, &prog, &["-p", &format!("{port}:8080"), "-e", "GREETING=hi", "--", "serve", "3"]);
    if let Err(e) = srv.wait_for("rust: serving") {
        serve_failed(srv, e);
    }
    for i in 0..3 {
        let path = format!("/page{i}");
        match srv.get(port, &path) {
            Ok(r) if r.contains(&format!(": GET {path} HTTP/1.0\n")) && r.contains("hello from rust std") => {}
            Ok(r) => serve_failed(srv, format!("wrong answer to {path}: {r:?}")),
            Err(e) => serve_failed(srv, e),
        }
    }
    srv.finish().expect(0, &["rust: served 3", "TcpListener serve ok", "rust: ok"]).no_fail();
}

/// Connects to host `port` (forwarded to a guest port where nothing
/// listens) while the guest runs: Ok when the connection is refused within
/// 3 s, as Linux answers the SYN with a RST and QEMU's user network then
/// closes the host side (QEMU would retransmit a SYN left unanswered only
/// after seconds).
fn refused(port: u16) -> Result<(), String> {
    use std::io::{Read, Write};
    let t0 = Instant::now();
    let r = (|| -> std::io::Result<usize> {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
        c.set_read_timeout(Some(Duration::from_secs(3)))?;
        c.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        c.read(&mut [0u8; 64])
    })();
    match r {
        Ok(0) => Ok(()),
        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut => Ok(()),
        other => Err(format!("a closed guest port, after {:?}: {other:?}, not refused", t0.elapsed())),
    }
}

/// A closed port while the program serves another one.
fn closed_port(plat: &[&str]) {
    let (port, closed) = (free_port(), free_port());
    let prog = progs::build().join("rust-std");
    let fwd = [format!("{port}:8080"), format!("{closed}:8081")];
    let mut srv = Server::start(plat, &prog, &["-p", &fwd[0], "-p", &fwd[1], "-e", "GREETING=hi", "--", "serve", "1"]);
    if let Err(e) = srv.wait_for("rust: serving") {
        serve_failed(srv, e);
    }
    let closed = refused(closed);
    // Ends the program: its one request.
    let served = srv.get(port, "/");
    let r = srv.finish();
    assert!(closed.is_ok(), "{}\n{}", closed.unwrap_err(), r.stdout);
    assert!(served.is_ok(), "{served:?}");
    r.expect(0, &["rust: served 1", "rust: ok"]);
}

/// A closed port while the program (which has no socket) sleeps: a
/// connection that arrives before a server's first socket call.
fn closed_port_idle(plat: &[&str]) {
    let port = free_port();
    let prog = progs::build().join("idle");
    // It sleeps longer than `refused` waits: a refusal is the guest's.
    let mut srv = Server::start(plat, &prog, &["-p", &format!("{port}:8080"), "--", "20"]);
    if let Err(e) = srv.wait_for("idle: up") {
        serve_failed(srv, e);
    }
    let closed = refused(port);
    let running = srv.child.try_wait().is_ok_and(|s| s.is_none());
    let r = srv.stop();
    assert!(closed.is_ok(), "{}\n{}", closed.unwrap_err(), r.stdout);
    assert!(running, "the program ended before the check:\n{}", r.stdout);
}

/// Debian's static busybox, or None (with the reason printed) when it
/// cannot be downloaded here.
fn busybox_bin() -> Option<PathBuf> {
    match progs::debian("busybox-static") {
        Ok(root) => Some(root.join("bin/busybox")),
        Err(e) => {
            eprintln!("SKIPPED: Debian's busybox-static cannot be fetched: {e}");
            None
        }
    }
}

fn busybox_rootfs(dir: &Path) {
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("srv/www")).unwrap();
    let text: String = (0..200).map(|i| format!("line {i} of a file for sha256sum\n")).collect();
    fs::write(dir.join("etc/somefile"), text).unwrap();
}

/// `unikit run --exec busybox --rootfs R -- ARGS`, or None when busybox
/// cannot be fetched (SKIPPED, printed).
fn busybox(plat: &[&str], args: &[&str]) -> Option<(Run, tempfile::TempDir)> {
    let bb = busybox_bin()?;
    let root = tempfile::tempdir().unwrap();
    busybox_rootfs(root.path());
    let mut extra = vec!["--rootfs", root.path().to_str().unwrap(), "--"];
    extra.extend(args);
    Some((run(plat, bb.to_str().unwrap(), &extra), root))
}

fn busybox_sh(plat: &[&str]) {
    if let Some((r, _)) = busybox(plat, &["sh", "-c", "echo hi; exit 3"]) {
        r.expect(3, &["hi"]);
    }
}

fn busybox_sha256sum(plat: &[&str]) {
    if let Some((r, root)) = busybox(plat, &["sha256sum", "/etc/somefile"]) {
        let host = Command::new("sha256sum").arg(root.path().join("etc/somefile")).output().unwrap();
        let sum = String::from_utf8_lossy(&host.stdout).split_whitespace().next().unwrap().to_string();
        assert_eq!(sum.len(), 64, "host sha256sum: {host:?}");
        r.expect(0, &[&format!("{sum}  /etc/somefile")]);
    }
}

fn busybox_ls(plat: &[&str]) {
    // The rootfs, and /bin where unikit put the program.
    if let Some((r, _)) = busybox(plat, &["ls", "/"]) {
        r.expect(0, &["bin", "etc", "srv"]);
    }
}

/// nginx: the host's /usr/sbin/nginx (Debian's nginx-light, fetched when
/// it is not installed) with the libraries `ldd` names, in a rootfs.
fn nginx_rootfs(dir: &Path, http_extra: &str) -> Result<(), String> {
    let host = Path::new("/usr/sbin/nginx");
    let bin = if host.exists() { host.to_path_buf() } else { progs::debian("nginx-light")?.join("usr/sbin/nginx") };
    let o = Command::new("ldd").arg(&bin).output().map_err(|e| format!("cannot run ldd: {e}"))?;
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() || list.contains("not found") {
        return Err(format!("ldd {} cannot resolve its libraries:\n{list}", bin.display()));
    }
    let copy = |from: &Path, to: &str| {
        let dest = dir.join(to.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(from, &dest).unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), dest.display()));
    };
    copy(&bin, "/usr/sbin/nginx");
    for line in list.lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
        let path = match line.split_once("=>") {
            Some((_, p)) => p.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            copy(Path::new(p), p);
        }
    }
    let etc = dir.join("etc/nginx");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n").unwrap();
    fs::write(
        etc.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log stderr;\npid /tmp/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; {http_extra} server {{ listen 8080; location / {{ root /www; }} }} }}\n"
        ),
    )
    .unwrap();
    fs::create_dir_all(dir.join("www")).unwrap();
    fs::write(dir.join("www/index.html"), "<h1>nginx on unikit</h1>\n").unwrap();
    fs::write(dir.join("www/big.bin"), big_file()).unwrap();
    for d in ["var/lib/nginx/body", "var/lib/nginx/proxy", "var/lib/nginx/fastcgi", "var/lib/nginx/uwsgi"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    for d in ["var/lib/nginx/scgi", "var/log/nginx", "run", "tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    Ok(())
}

/// 300 KiB that are not one repeated byte.
fn big_file() -> Vec<u8> {
    (0..300 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

/// nginx with `http_extra` in its http block: the page twice and, if `big`,
/// a 300 KiB file; then stopped with SIGTERM (its exit code is not the
/// point).
fn nginx_with(plat: &[&str], http_extra: &str, big: bool) {
    let root = tempfile::tempdir().unwrap();
    if let Err(e) = nginx_rootfs(root.path(), http_extra) {
        eprintln!("SKIPPED: no nginx to run: {e}");
        return;
    }
    let port = free_port();
    let prog = root.path().join("usr/sbin/nginx");
    let r = root.path().to_str().unwrap();
    let pf = format!("{port}:8080");
    let mut srv = Server::start(
        plat,
        &prog,
        &["--rootfs", r, "-m", "128M", "-p", &pf, "--", "-c", "/etc/nginx/nginx.conf", "-p", "/tmp"],
    );
    for _ in 0..2 {
        match srv.get(port, "/index.html") {
            Ok(a) if a.starts_with("HTTP/1.1 200 OK") && a.ends_with("\r\n\r\n<h1>nginx on unikit</h1>\n") => {}
            Ok(a) => serve_failed(srv, format!("wrong answer: {a:?}")),
            Err(e) => serve_failed(srv, e),
        }
    }
    match if big { srv.get_bytes(port, "/big.bin") } else { Ok(big_file()) } {
        Ok(a) if !big || (a.starts_with(b"HTTP/1.1 200 OK") && a.ends_with(&big_file())) => {}
        Ok(a) => {
            let head = String::from_utf8_lossy(&a[..a.len().min(300)]).into_owned();
            serve_failed(srv, format!("wrong answer to /big.bin ({} bytes): {head:?}", a.len()))
        }
        Err(e) => serve_failed(srv, e),
    }
    let r = srv.stop();
    // Still running when stopped: it did not crash after serving.
    assert!(!r.stderr.contains("SIGSEGV") && !r.stdout.contains("SIGSEGV"), "{}{}", r.stdout, r.stderr);
}

fn nginx(plat: &[&str]) {
    nginx_with(plat, "", false);
}

fn nginx_big(plat: &[&str]) {
    nginx_with(plat, "", true);
}

/// Debian's default nginx.conf says `sendfile on`.
fn nginx_sendfile(plat: &[&str]) {
    nginx_with(plat, "sendfile on;", true)
}

/// Every program on every configuration; a test's own attributes (ignore
/// with the reason while the guest cannot run it yet) come before its name,
/// those for KVM alone after it in `[kvm: ...]`.
macro_rules! boot_tests {
    ($($(#[$m:meta])* $name:ident $([kvm: $(#[$k:meta])*])?),* $(,)?) => {
        mod tcg {
            $(
                #[test]
                #[cfg_attr(unikit_no_musl, ignore = "SKIPPED: musl-gcc or the x86_64-unknown-linux-musl Rust target is missing (scripts/setup-host.sh installs both)")]
                $(#[$m])*
                fn $name() { super::$name(super::TCG) }
            )*
        }
        mod microvm {
            $(
                #[test]
                #[cfg_attr(unikit_no_musl, ignore = "SKIPPED: musl-gcc or the x86_64-unknown-linux-musl Rust target is missing (scripts/setup-host.sh installs both)")]
                $(#[$m])*
                fn $name() { super::$name(super::MICROVM) }
            )*
        }
        mod kvm {
            $(
                #[test]
                #[cfg_attr(any(unikit_no_musl, unikit_no_kvm), ignore = "SKIPPED: /dev/kvm is not usable on this host, or musl-gcc or the musl Rust target is missing")]
                $(#[$m])*
                $($(#[$k])*)?
                fn $name() { super::$name(super::KVM) }
            )*
        }
    };
}

boot_tests!(
    hello_static,
    hello_pie,
    hello_dynamic,
    files_static,
    files_pie,
    threads_static,
    threads_pie,
    fault,
    nosys,
    rust_std,
    sig,
    spin,
    io_pipes,
    io_unix,
    io_links,
    #[ignore = "guest: connect() to 127.0.0.1 where a socket listens gets ECONNREFUSED, and a UDP datagram sent to 127.0.0.1 never arrives (recvmsg EAGAIN after poll times out)"]
    io_loopback,
    io_loopback_no_nic,
    epoll_http,
    epoll_big,
    tcp_big_blocking,
    rust_http,
    closed_port,
    closed_port_idle,
    #[cfg_attr(unikit_no_go, ignore = "SKIPPED: no go on PATH (scripts/setup-host.sh installs golang-go)")]
    go_prog,
    #[cfg_attr(unikit_no_go, ignore = "SKIPPED: no go on PATH (scripts/setup-host.sh installs golang-go)")]
    go_preempt,
    #[cfg_attr(unikit_no_go, ignore = "SKIPPED: no go on PATH (scripts/setup-host.sh installs golang-go)")]
    go_hosts,
    #[cfg_attr(unikit_no_go, ignore = "SKIPPED: no go on PATH (scripts/setup-host.sh installs golang-go)")]
    go_http,
    busybox_sh,
    busybox_sha256sum,
    busybox_ls,
    nginx,
    nginx_big,
    nginx_sendfile,
);

/// A program run as a Linux process on this host.
fn native(prog: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let p = progs::build().join(prog).canonicalize().unwrap();
    Command::new(&p).args(args).env_remove("GREETING").envs(env.iter().copied()).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The programs and their expected output, checked against Linux itself:
/// what the boot tests expect of unikit is what Linux does.
#[test]
#[cfg_attr(
    unikit_no_musl,
    ignore = "SKIPPED: musl-gcc or the x86_64-unknown-linux-musl Rust target is missing (scripts/setup-host.sh installs both)"
)]
fn programs_behave_on_the_host() {
    for prog in ["hello", "hello-pie", "hello-dyn"] {
        if prog == "hello-dyn" && !Path::new("/").join(progs::MUSL_INTERP).exists() {
            // musl's interpreter is not installed as /lib/ld-musl-x86_64.so.1 here.
            continue;
        }
        let path = progs::build().join(prog).canonicalize().unwrap();
        let o = Command::new(&path).args(["7", "two words"]).env("GREETING", "hi there").output().unwrap();
        assert_eq!(o.status.code(), Some(7), "{prog}");
        let want = format!(
            "hello from C\nargc=3\nargv[0]={}\nargv[1]=7\nargv[2]=two words\nGREETING=hi there\n",
            path.display()
        );
        assert_eq!(text(&o), want, "{prog}");
    }
    let root = tempfile::tempdir().unwrap();
    progs::data_rootfs(root.path());
    for prog in ["files", "files-pie"] {
        let o = native(prog, &[], &[("FILES_ROOT", root.path().to_str().unwrap())]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{prog}:\n{out}");
        assert!(out.lines().any(|l| l.starts_with("files: ") && l.ends_with(" ok, 0 failed")), "{out}");
        assert!(!out.contains("FAIL"), "{out}");
    }
    for prog in ["threads", "threads-pie"] {
        let o = native(prog, &[], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("counter=40000\nthreads: ok\n"), "{}", text(&o));
    }
    let o = native("fault", &[], &[]);
    assert_eq!(o.status.signal(), Some(libc::SIGSEGV), "{o:?}");
    assert_eq!(text(&o), "fault: writing through a null pointer\n");
    // Linux forks; the unassigned number is ENOSYS there too.
    let o = native("nosys", &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("syscall 1000: -1 ENOSYS\nnosys: FAIL\n"), "{}", text(&o));
    let o = native("sig", &[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(text(&o), "sig: caught 11 at 0x10\nsig: usr1 handler ran: 10\nsig: fpu after handlers 12.0 ok\n");
    let o = native("io", &["pipes", "events", "tcp", "udp", "unix", "links"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).ends_with("io: 39 ok, 0 failed\n"), "{}", text(&o));
    let o = native("spin", &[], &[]);
    assert_eq!((o.status.code(), text(&o).as_str()), (Some(0), "spin: ok\n"));
    let o = native("rust-std", &["a", "b"], &[("GREETING", "hi")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("GREETING=Ok(\"hi\")\n") && text(&o).ends_with("rust: ok\n"), "{}", text(&o));
}

/// Every built program passes the host's checks (the run then stops at the
/// missing loader, before building anything); the dynamically linked one
/// only with its interpreter in the rootfs.
#[test]
#[cfg_attr(
    unikit_no_musl,
    ignore = "SKIPPED: musl-gcc or the x86_64-unknown-linux-musl Rust target is missing (scripts/setup-host.sh installs both)"
)]
fn host_checks_accept_every_program() {
    let dir = progs::build();
    let check = |prog: &str, extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_unikit"))
            .env("UNIKIT_EXEC_LOADER", "/nonexistent/loader")
            .args(["run", "--exec"])
            .arg(dir.join(prog))
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(125));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let names = progs::C.iter().map(|c| c.0).filter(|n| *n != "hello-dyn").chain(["rust-std"]);
    for prog in names {
        let e = check(prog, &[]);
        assert!(e.starts_with("error: the loader project for --exec is missing"), "{prog}: {e}");
    }
    let e = check("hello-dyn", &[]);
    assert!(e.contains("dynamically linked (interpreter /lib/ld-musl-x86_64.so.1) and no rootfs given"), "{e}");
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let e = check("hello-dyn", &["--rootfs", r]);
    assert!(e.contains("its interpreter /lib/ld-musl-x86_64.so.1 is missing from the rootfs"), "{e}");
    progs::musl_rootfs(root.path());
    let e = check("hello-dyn", &["--rootfs", r]);
    assert!(e.starts_with("error: the loader project for --exec is missing"), "{e}");
}

/// The Go program, as a Linux process here (without `serve`).
#[test]
#[cfg_attr(unikit_no_go, ignore = "SKIPPED: no go on PATH (scripts/setup-host.sh installs golang-go)")]
fn go_behaves_on_the_host() {
    let o = Command::new(progs::go()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        text(&o),
        "go: goroutines 2399960\ngo: slept true\n\
         go: recovered: runtime error: invalid memory address or nil pointer dereference\ngo: ok\n"
    );
    let o = Command::new(progs::go()).arg("preempt").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).ends_with("go: preempted a spinning goroutine\ngo: ok\n"), "{}", text(&o));
}
