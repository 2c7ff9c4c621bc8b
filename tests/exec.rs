//! `unikit run --exec`: unmodified Linux programs (tests/exec/: C built with
//! musl-gcc, static and static-pie, and a Rust std program for
//! x86_64-unknown-linux-musl) booted in the loader image on QEMU q35 and
//! microvm under TCG, and under KVM where /dev/kvm works, checking their
//! output and exit codes.
//!
//! The programs are built here, into `target/exec-progs/`, never committed.
//! Every program is also run as a Linux process on this host first
//! (`programs_behave_on_the_host`), so that a boot test's expectations are
//! those of Linux itself. Without musl-gcc or the musl Rust target the tests
//! are compiled as ignored, with the reason (see crates/cli/build.rs).
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        fs::copy(out.join("rust-target/x86_64-unknown-linux-musl/release/exec-rust-std"), out.join("rust-std"))
            .unwrap();
        out
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
    fn of(out: Output) -> Run {
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(!r.stderr.contains("panicked"), "the CLI panicked:\n{}", r.stderr);
        r
    }

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

/// `unikit run -q PLAT --exec <program> EXTRA...`.
fn run(plat: &[&str], prog: &str, extra: &[&str]) -> Run {
    let p = progs::build().join(prog);
    Run::of(
        Command::new(env!("CARGO_BIN_EXE_unikit"))
            .arg("run")
            .arg("-q")
            .args(plat)
            .arg("--exec")
            .arg(&p)
            .args(extra)
            .output()
            .expect("cannot start unikit"),
    )
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

/// Every program on every configuration. They wait for the guest side of
/// issue 12 (the ELF loader and the system-call layer in crates/exec and
/// crates/services/posix): until it lands they are ignored.
macro_rules! boot_tests {
    ($($name:ident),* $(,)?) => {
        mod tcg {
            $(
                #[test]
                #[cfg_attr(unikit_no_musl, ignore = "SKIPPED: musl-gcc or the x86_64-unknown-linux-musl Rust target is missing (scripts/setup-host.sh installs both)")]
                fn $name() { super::$name(super::TCG) }
            )*
        }
        mod microvm {
            $(
                #[test]
                #[cfg_attr(unikit_no_musl, ignore = "SKIPPED: musl-gcc or the x86_64-unknown-linux-musl Rust target is missing (scripts/setup-host.sh installs both)")]
                fn $name() { super::$name(super::MICROVM) }
            )*
        }
        mod kvm {
            $(
                #[test]
                #[cfg_attr(any(unikit_no_musl, unikit_no_kvm), ignore = "SKIPPED: /dev/kvm is not usable on this host, or musl-gcc or the musl Rust target is missing")]
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
    rust_std
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
