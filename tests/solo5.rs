//! The solo5 platform end to end: `unikit run --plat solo5` with unikit's
//! tender (crates/tender, `unikit-hvt`): hello (output, arguments, exit
//! code), a disk written and read back across boots, httpd over a tap in a
//! network namespace; and the tender itself against hostile guests (a bad
//! hypercall pointer) and executables with a wrong or missing ABI note.
//!
//! These tests need the guest platform crate (crates/plat/solo5): if it is
//! missing they fail, saying so, rather than pass without testing anything.
//! KVM tests are skipped (with the reason) where /dev/kvm is unusable,
//! network-namespace tests where we are not root, upstream-tender tests
//! where no `solo5-hvt` is on PATH (or in $UNIKIT_SOLO5_HVT) at build time.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use unikit_hvt::testguest;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unikit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unikit"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The guest side must exist: fail loudly, not silently pass.
fn need_platform_crate() {
    let c = repo().join("crates/plat/solo5/Cargo.toml");
    assert!(
        c.is_file(),
        "the solo5 guest platform crate is missing ({}): these tests cannot check anything",
        c.display()
    );
}

/// `unikit-hvt`, built next to `unikit` (where `unikit run` looks for it).
/// `cargo nextest run -p unikit-cli` alone does not build other packages'
/// binaries, so build it here once, in the same profile.
fn tender() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let unikit = PathBuf::from(env!("CARGO_BIN_EXE_unikit"));
        let dir = unikit.parent().unwrap().to_path_buf();
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "-q", "-p", "unikit-hvt", "--bin", "unikit-hvt", "--manifest-path"])
            .arg(repo().join("Cargo.toml"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        let st = cmd.status().expect("cannot run cargo to build unikit-hvt");
        assert!(st.success(), "building unikit-hvt failed");
        let t = dir.join("unikit-hvt");
        assert!(t.is_file(), "{} was not built", t.display());
        t
    })
}

fn run(args: &[&str]) -> (i32, String) {
    need_platform_crate();
    tender();
    let o = unikit().arg("run").args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o))
}

fn example(name: &str) -> String {
    repo().join("examples").join(name).to_str().unwrap().to_string()
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn hello_output_args_and_exit_code() {
    let hello = example("hello");
    let (code, out) = run(&["-C", &hello, "--plat", "solo5", "--", "--exit", "3", "two words"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("Hello from unikit on solo5!"), "{out}");
    assert!(
        out.contains("argv[1] = \"--exit\"")
            && out.contains("argv[2] = \"3\"")
            && out.contains("argv[3] = \"two words\""),
        "{out}"
    );
    assert!(out.contains("hello_solo5-x86_64"), "the image name: {out}");
    // Quiet: no build output, no boot log; exit 0.
    let (code, out) = run(&["-q", "-C", &hello, "--plat", "solo5"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("Hello from unikit on solo5!"), "{out}");
    // `--tender PATH` alone selects solo5.
    let t = tender().to_str().unwrap();
    let (code, out) = run(&["-q", "-C", &hello, "--tender", t, "--", "--exit", "5"]);
    assert_eq!(code, 5, "{out}");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn crashes_keep_their_exit_codes() {
    let kt = repo().join("tests/kernel-tests");
    let kt = kt.to_str().unwrap();
    let (code, out) = run(&["-q", "-C", kt, "--plat", "solo5", "--", "panic"]);
    assert_eq!(code, 101, "{out}");
    let (code, out) = run(&["-q", "-C", kt, "--plat", "solo5", "--", "fault"]);
    assert_eq!(code, 102, "{out}");
    assert!(out.contains("page fault (#PF)"), "{out}");
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn disk_written_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
    let img = img.to_str().unwrap();
    let counter = example("counter");
    for (i, extra) in [(1, vec!["--", "--format"]), (2, vec![]), (3, vec![])] {
        let mut a = vec!["-q", "-C", &counter, "--plat", "solo5", "--disk", img];
        a.extend(extra);
        let (code, out) = run(&a);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("counter: boot {i}")), "{out}");
    }
    // Raw block access with unaligned offsets, across two boots.
    let kt = repo().join("tests/kernel-tests");
    for mode in ["disk-write", "disk-read"] {
        let (code, out) = run(&["-q", "-C", kt.to_str().unwrap(), "--plat", "solo5", "--disk", img, "--", mode, "42"]);
        assert_eq!(code, 0, "{mode}: {out}");
    }
}

/// A running `unikit run`, killed (with its tender) when dropped.
struct Guest {
    child: Child,
    log: PathBuf,
}

impl Guest {
    fn start(args: &[&str]) -> Guest {
        need_platform_crate();
        tender();
        let log = std::env::temp_dir().join(format!("unikit-solo5-test-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        use std::os::unix::process::CommandExt;
        let child = unikit()
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        Guest { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // SIGTERM first: unikit passes it to the tender and removes its namespace.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: signalling our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn curl(args: &[&str], guest: &mut Guest) -> String {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let o = Command::new("curl").args(["-s", "--max-time", "20"]).args(args).output().expect("curl not installed");
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).into_owned();
        }
        if let Ok(Some(st)) = guest.child.try_wait() {
            panic!("the guest stopped ({st}) before answering:\n{}", guest.log());
        }
        assert!(Instant::now() < deadline, "curl {args:?} failed:\n{}", guest.log());
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
fn httpd_over_a_tap_in_a_network_namespace() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let publish = format!("{port}:80");
    let httpd = example("httpd");
    let mut g = Guest::start(&["-q", "-C", &httpd, "--plat", "solo5", "-p", &publish]);
    let base = format!("http://127.0.0.1:{port}");
    // No --rootfs on solo5: the server answers from an empty file system.
    let head = curl(&["-i", &format!("{base}/no/such/file")], &mut g);
    assert!(head.starts_with("HTTP/1.1 404") && head.contains("Server: unikit-httpd"), "{head}");
    // Kept-alive connection, then many clients at once.
    let reuse = curl(
        &["-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n", &format!("{base}/a"), &format!("{base}/b")],
        &mut g,
    );
    assert_eq!(reuse.lines().collect::<Vec<_>>(), ["1", "0"], "{reuse}");
    let urls: Vec<String> = (0..32).map(|i| format!("{base}/?client={i}")).collect();
    let mut args: Vec<&str> = vec!["--parallel", "--parallel-max", "32", "-w", "%{http_code}\n"];
    for u in &urls {
        args.extend(["-o", "/dev/null", u.as_str()]);
    }
    let codes = curl(&args, &mut g);
    assert_eq!(codes.lines().filter(|c| *c == "404").count(), 32, "{codes}");
    assert!(g.log().contains("httpd: serving / on port 80") || g.log().is_empty(), "{}", g.log());
}

fn run_tender(image: &[u8], extra: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("guest.hvt");
    std::fs::write(&p, image).unwrap();
    let o = Command::new(tender()).arg("--mem=2").arg(&p).args(extra).output().unwrap();
    let code = o.status.code().unwrap_or_else(|| panic!("the tender was killed: {o:?}"));
    (
        code,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).replace(p.to_str().unwrap(), "IMG"),
    )
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn guest_passing_a_bad_pointer_is_stopped() {
    // A hand-made guest: outl to the puts port with a buffer far outside its 2 MiB.
    let (code, out, err) = run_tender(&testguest::bad_puts(0x7fff_0000_0000, 64), &[]);
    assert_eq!(code, 121, "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        "unikit-hvt: guest passed an invalid puts buffer (64 bytes at 0x7fff00000000, outside guest memory; guest memory is 0x200000 bytes)\n"
    );
    // The argument structure itself outside memory.
    let (code, _, err) = run_tender(&testguest::bad_struct(5, 0xffff_f000), &[]);
    assert_eq!(code, 121, "{err}");
    assert!(
        err.starts_with("unikit-hvt: guest passed an invalid block_read argument pointer (struct at 0xfffff000"),
        "{err}"
    );
    // And a well-behaved one for contrast.
    let (code, out, err) = run_tender(&testguest::hello(b"fine\n", 4), &[]);
    assert_eq!((code, out.as_str(), err.as_str()), (4, "fine\n", ""));
}

#[test]
fn wrong_or_missing_abi_note_is_refused() {
    let code = testguest::hypercalls(&[]);
    let mft = testguest::mft_note(&testguest::mft(&[]));
    for (notes, msg) in [
        (
            vec![mft.clone()],
            "unikit-hvt: IMG: no Solo5 ABI note (.note.solo5.abi) in the executable: it is not a Solo5 unikernel\n",
        ),
        (
            vec![testguest::abi_note(3, 2), mft.clone()],
            "unikit-hvt: IMG: the executable is built for the Solo5 'virtio' target (ABI target 3), not hvt\n",
        ),
        (
            vec![testguest::abi_note(1, 1), mft.clone()],
            "unikit-hvt: IMG: the executable requests hvt ABI version 1; this tender implements version 2\n",
        ),
    ] {
        let (c, out, err) = run_tender(&testguest::guest(&code, 0, 0, 0, b"", &notes), &[]);
        assert_eq!((c, out.as_str(), err.as_str()), (120, "", msg));
    }
    // A unikit image for another platform (a PVH ELF, no Solo5 notes).
    need_platform_crate();
    let hello = example("hello");
    let o = unikit().args(["build", "-q", "--plat", "qemu", "-C", &hello]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let img = repo().join("examples/hello/build/hello_qemu-x86_64");
    let o = Command::new(tender()).arg(&img).output().unwrap();
    assert_eq!(o.status.code(), Some(120));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no Solo5 ABI note"), "{}", text(&o));
}

#[test]
fn cli_errors_for_solo5() {
    need_platform_crate();
    let hello = example("hello");
    let httpd = example("httpd");
    let (code, out) = run(&["-C", &hello, "--plat", "solo5", "--net", "user"]);
    assert_eq!(code, 125, "{out}");
    assert!(out.contains("error: --net user is QEMU's user-mode network; Solo5 (hvt) has none"), "{out}");
    let (code, out) =
        run(&["-C", &httpd, "--plat", "solo5", "--rootfs", &repo().join("examples/httpd/www").to_string_lossy()]);
    assert_eq!(code, 125, "{out}");
    assert!(out.contains("error: --rootfs is not available on solo5"), "{out}");
    let (code, out) = run(&["-C", &hello, "--plat", "qemu", "--tender", "solo5-hvt"]);
    assert_eq!(code, 125, "{out}");
    assert!(out.contains("error: --tender only applies to the solo5 platform, not qemu"), "{out}");
    let (code, out) = run(&["-C", &hello, "--plat", "solo5", "--tender", "/nonexistent/hvt"]);
    assert_eq!(code, 125, "{out}");
    assert!(out.contains("error: --tender /nonexistent/hvt: no such file"), "{out}");
    let o = unikit().arg("platforms").output().unwrap();
    let row =
        String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with("solo5")).unwrap_or_default().to_string();
    if cfg!(unikit_no_kvm) {
        assert!(row.starts_with("solo5    no") && row.contains("KVM"), "{row}");
    } else {
        assert!(row.starts_with("solo5    yes") && row.contains("unikit-hvt"), "{row}");
    }
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
#[cfg_attr(
    unikit_no_solo5_hvt,
    ignore = "SKIPPED: no upstream solo5-hvt on PATH or in $UNIKIT_SOLO5_HVT at build time"
)]
fn unikit_image_runs_on_upstream_solo5_hvt() {
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(t) = std::env::var_os("UNIKIT_SOLO5_HVT") {
        let dir = PathBuf::from(t).parent().unwrap().to_path_buf();
        path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path))).unwrap();
    }
    need_platform_crate();
    let hello = example("hello");
    let o = unikit()
        .env("PATH", path)
        .args(["run", "-q", "-C", &hello, "--plat", "solo5", "--tender", "solo5-hvt", "--", "--exit", "6"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(text(&o).contains("Hello from unikit on solo5!"), "{}", text(&o));
}
