//! The Xen platform (`--plat xen`) end to end.
//!
//! - Always run: without a Xen dom0, `run --plat xen` says what it needs and
//!   offers `--xen-testbed`; Xen-only flags elsewhere are refused;
//!   `platforms` has a xen row; `build --plat xen` makes the image; a fake
//!   `xl` plays a dom0 (`UNIKIT_XEN_CAPABILITIES` points at a fake
//!   /proc/xen/capabilities) to check the xl config, the console and exit
//!   code, crash reports and `xl destroy` on SIGTERM.
//! - `bed::*` boot real guests in the Xen test bed (Xen 4.17 and a Debian
//!   dom0 under QEMU TCG, assembled from Debian packages on first use):
//!   a Linux PV domU (the bed alone), hello (arguments, exit codes, -q, PVH),
//!   the kernel tests and a crash, httpd answering curl through `-p`, a FAT
//!   disk written and read back across two boots, and a failure report.
//!   They need QEMU, apt and dpkg (crates/cli/build.rs compiles them as
//!   ignored, with the reason, where those are missing), and run one at a
//!   time (nextest group `xen-testbed` in .config/nextest.toml, and a lock
//!   here for plain `cargo test`): each one is a whole Xen machine on TCG.
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod common;
use common::{APP_SPIN, BIN, assert_error, fixture, stderr, stdout};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_dom0() -> bool {
    std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"))
}

fn project(manifest: &str) -> TempDir {
    let p = TempDir::new().unwrap();
    std::fs::write(p.path().join("unikit.toml"), manifest).unwrap();
    p
}

#[test]
fn without_a_dom0_run_says_what_is_needed() {
    if is_dom0() {
        eprintln!("SKIPPED: this host is a Xen dom0, so --plat xen runs here");
        return;
    }
    let p = project("name = \"x\"\ntargets = [\"xen/x86_64\"]\n");
    let empty = TempDir::new().unwrap();
    let o = Command::new(BIN)
        .current_dir(p.path())
        .env("PATH", empty.path())
        .args(["run", "--plat", "xen"])
        .output()
        .unwrap();
    let err = assert_error(&o, "error: the xen platform needs a Xen dom0 with `xl`");
    assert_eq!(err.lines().count(), 2, "one error line and one hint: {err}");
    assert!(err.contains("hint: add --xen-testbed"), "{err}");
    // Without --plat, xen is not picked (the test bed is only used when asked for).
    let o = Command::new(BIN).current_dir(p.path()).env("PATH", empty.path()).arg("run").output().unwrap();
    assert_error(&o, "xen/x86_64: the xen platform needs a Xen dom0");
}

#[test]
fn xen_flags_elsewhere_are_refused() {
    let p = project("name = \"x\"\ntargets = [\"qemu/x86_64\", \"xen/x86_64\"]\n");
    let run = |args: &[&str]| Command::new(BIN).current_dir(p.path()).arg("run").args(args).output().unwrap();
    assert_error(
        &run(&["--plat", "qemu", "--xen-testbed"]),
        "--xen-testbed only applies to the xen platform, not qemu",
    );
    assert_error(&run(&["--plat", "qemu", "--xen-type", "pvh"]), "--xen-type only applies to the xen platform");
    assert_error(
        &run(&["--plat", "xen", "--accel", "tcg"]),
        "--accel only applies to the qemu, vmware and hyperv platforms",
    );
    assert_error(&run(&["--plat", "xen", "--cpus", "2"]), "--cpus only applies to the fc platform");
    let o = run(&["--plat", "xen", "--xen-type", "hvm"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
}

#[cfg_attr(
    unikit_no_xen_testbed,
    ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
)]
#[test]
fn test_bed_network_rules() {
    let p = project("name = \"x\"\ntargets = [\"xen/x86_64\"]\n");
    let run = |args: &[&str]| {
        Command::new(BIN).current_dir(p.path()).args(["run", "--xen-testbed"]).args(args).output().unwrap()
    };
    let err = assert_error(&run(&["--net", "user"]), "--net does not apply to xen");
    assert!(err.contains("hint: use -p HOST:GUEST with --xen-testbed"), "{err}");
    assert_error(
        &run(&["-p", "8080:80", "--ip", "10.9.9.2/24"]),
        "with -p in the Xen test bed the guest is 10.0.0.2/24:10.0.0.1 (leave --ip out)",
    );
}

#[test]
fn platforms_has_a_xen_row() {
    let o = Command::new(BIN).arg("platforms").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let row = out.lines().find(|l| l.starts_with("xen ")).unwrap_or_else(|| panic!("no xen row:\n{out}"));
    if is_dom0() {
        assert!(row.starts_with("xen      yes "), "{row}");
    } else if cfg!(unikit_no_xen_testbed) {
        assert!(row.contains("`--xen-testbed` is not available either"), "{row}");
    } else {
        assert!(
            row.starts_with("xen      no ") && row.contains("`--xen-testbed` runs xen images in Xen 4.17"),
            "{row}"
        );
    }
}

#[test]
fn build_for_xen_makes_a_xen_image() {
    let o = Command::new(BIN)
        .args(["build", "-q", "--plat", "xen", "-C"])
        .arg(repo().join("examples/hello"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("build/hello_xen-x86_64 ("), "{}", stdout(&o));
    let image = std::fs::read(repo().join("examples/hello/build/hello_xen-x86_64")).unwrap();
    // The same x86_64 VM image as qemu's, which Xen's PV loader reads through its ELF notes.
    assert!(image.starts_with(b"\x7fELF") && image.windows(4).any(|w| w == b"Xen\0"), "no Xen ELF note");
}

/// A fake dom0 in `dir`: an `xl` script that saves the config it is given
/// and acts as $FAKE_XL_MODE says, and a capabilities file saying
/// control_d. Returns (PATH, capabilities file).
fn fake_dom0(dir: &Path) -> (std::ffi::OsString, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let script = dir.join("xl");
    std::fs::write(
        &script,
        r#"#!/bin/sh
case "$1" in
create)
    if [ "$2" != -F ] || [ "$3" != -c ] || [ ! -f "$4" ]; then
        echo "fake xl: unexpected arguments: $*" >&2
        exit 2
    fi
    cp "$4" "$FAKE_XL_CONFIG"
    echo "Parsing config from $4" >&2
    case "$FAKE_XL_MODE" in
    marker)
        printf 'guest says hi
_unikit:exit=7\
'
        echo "Domain 1 has shut down, reason code 0 0x0" >&2 ;;
    crash)
        printf 'oops
'
        echo "Domain 1 has shut down, reason code 3 0x3" >&2 ;;
    overflow)
        echo "Domain 1 has shut down, reason code 3 0x3" >&2 ;;
    hang)
        echo ready
        while [ ! -f "$FAKE_XL_DESTROYED" ]; do sleep 0.1; done
        echo "Domain 1 has shut down, reason code 0 0x0" >&2 ;;
    esac
    exit 0 ;;
destroy)
    echo "$2" > "$FAKE_XL_DESTROYED"
    exit 0 ;;
dmesg)
    # What Xen 4.17 printed for a PV guest's stack overflow in the test bed.
    if [ "$FAKE_XL_MODE" = overflow ]; then
        echo "(XEN) Pagetable walk from 0000000000012e08:"
        echo "(XEN) domain_crash_sync called from entry.S: fault at ffff82d0403602d0 x86_64/entry.S#domain_crash_page_fault_6x8+0/0x4"
        echo "(XEN) Domain 1 (vcpu#0) crashed on cpu#0:"
        echo "(XEN) RIP:    e033:[<00000000001042be>]"
        echo "(XEN) rbp: 0000000000013038   rsp: 0000000000012e18   r8:  0000000000000000"
        echo "(XEN) cr3: 000000007b569000   cr2: 0000000000012f20"
    fi
    exit 0 ;;
esac
exit 2
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let caps = dir.join("capabilities");
    std::fs::write(&caps, "control_d\n").unwrap();
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    (std::env::join_paths(paths).unwrap(), caps)
}

/// `unikit run --plat xen ARGS` in `app` on a fake dom0 kept in `tmp`.
fn dom0_run(app: &Path, tmp: &Path, mode: &str, args: &[&str]) -> Command {
    let (path, caps) = fake_dom0(&tmp.join("fake-dom0"));
    let mut c = Command::new(BIN);
    c.current_dir(app)
        .env("PATH", path)
        .env("UNIKIT_XEN_CAPABILITIES", caps)
        .env("FAKE_XL_MODE", mode)
        .env("FAKE_XL_CONFIG", tmp.join("guest.cfg"))
        .env("FAKE_XL_DESTROYED", tmp.join("destroyed"))
        .args(["run", "--plat", "xen"])
        .args(args);
    c
}

#[test]
fn dom0_config_console_and_exit_code() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"xen/x86_64\"]\nenv = { FOO = \"bar\" }\n", APP_SPIN);
    let disk = tmp.path().join("d.img");
    std::fs::write(&disk, vec![0u8; 4096]).unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hi").unwrap();
    let o = dom0_run(
        &app,
        tmp.path(),
        "marker",
        &[
            "-q",
            "-m",
            "4100K",
            "--ip",
            "10.0.0.2/24:10.0.0.1",
            "--disk",
            disk.to_str().unwrap(),
            "--rootfs",
            www.to_str().unwrap(),
            "--",
            "a",
            "b c",
        ],
    )
    .output()
    .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert_eq!(stdout(&o), "guest says hi\n", "{err}");
    assert!(err.contains("xl sizes memory in whole MiB: -m 4100K is rounded up to 5M"), "{err}");
    let cfg = std::fs::read_to_string(tmp.path().join("guest.cfg")).unwrap();
    let image = app.join("build/fx_xen-x86_64").canonicalize().unwrap();
    let initrd = app.join("build/fx.rootfs.cpio").canonicalize().unwrap();
    let line = |k: &str| {
        cfg.lines()
            .find(|l| l.starts_with(&format!("{k} = ")))
            .unwrap_or_else(|| panic!("no {k} in:\n{cfg}"))
            .to_string()
    };
    assert!(line("name").starts_with("name = \"unikit-fx-"), "{cfg}");
    assert_eq!(line("type"), "type = \"pv\"");
    assert_eq!(
        std::path::Path::new(line("kernel").trim_start_matches("kernel = \"").trim_end_matches('"'))
            .canonicalize()
            .unwrap(),
        image
    );
    assert_eq!(
        std::path::Path::new(line("ramdisk").trim_start_matches("ramdisk = \"").trim_end_matches('"'))
            .canonicalize()
            .unwrap(),
        initrd
    );
    assert_eq!(line("memory"), "memory = 5");
    assert_eq!(line("vcpus"), "vcpus = 1");
    assert_eq!(line("cmdline"), r#"cmdline = "netdev.ip=10.0.0.2/24:10.0.0.1 unikit.quiet FOO=bar -- a \"b c\"""#);
    assert!(line("vif").starts_with("vif = [ \"mac=06:00:") && line("vif").ends_with(",bridge=xenbr0\" ]"), "{cfg}");
    assert_eq!(
        line("disk"),
        format!(
            "disk = [ \"format=raw,vdev=xvda,access=rw,target={}\" ]",
            std::path::absolute(&disk).unwrap().display()
        )
    );
    for k in ["on_poweroff", "on_reboot", "on_crash"] {
        assert_eq!(line(k), format!("{k} = \"destroy\""));
    }
    // -p needs the test bed's user network; on a dom0 it is refused.
    let o = dom0_run(&app, tmp.path(), "marker", &["-p", "8080:80"]).output().unwrap();
    assert_error(&o, "-p is not available on a Xen dom0");
}

#[test]
fn dom0_crash_is_reported_with_xls_words() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"xen/x86_64\"]\n", APP_SPIN);
    let o = dom0_run(&app, tmp.path(), "crash", &["-q"]).output().unwrap();
    let err = assert_error(&o, "error: guest stopped without reporting an exit code (the domain crashed)");
    assert!(err.contains("xl's messages:") && err.contains("Domain 1 has shut down, reason code 3 0x3"), "{err}");
    assert_eq!(stdout(&o), "oops\n");
    let kept =
        err.lines().find_map(|l| l.strip_prefix("unikit: the xl config and log are kept in ")).expect("kept folder");
    assert!(Path::new(kept).join("guest.cfg").is_file());
    std::fs::remove_dir_all(kept).unwrap();
}

/// A crash the guest could not report (a PV stack overflow): the report
/// comes from Xen's dump, read with `xl dmesg`.
#[test]
fn dom0_crash_without_a_report_is_explained_from_xl_dmesg() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"xen/x86_64\"]\n", APP_SPIN);
    let o = dom0_run(&app, tmp.path(), "overflow", &["-q"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(102), "{err}");
    assert!(
        err.contains("rip 0x1042be") && err.contains("fault address 0x12f20") && err.contains("STACK OVERFLOW"),
        "{err}"
    );
    if let Some(kept) = err.lines().find_map(|l| l.strip_prefix("unikit: the xl config and log are kept in ")) {
        std::fs::remove_dir_all(kept).unwrap();
    }
}

#[test]
fn dom0_sigterm_destroys_the_domain() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"xen/x86_64\"]\n", APP_SPIN);
    let mut child =
        dom0_run(&app, tmp.path(), "hang", &["-q"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{err}");
    assert!(err.contains("error: interrupted (signal 15, SIGTERM); the guest was stopped"), "{err}");
    let destroyed = std::fs::read_to_string(tmp.path().join("destroyed")).unwrap();
    assert!(destroyed.starts_with("unikit-fx-"), "xl destroy got {destroyed:?}");
}

/// SIGKILL cannot be caught: the run's reaper destroys the domain, and xl
/// (started with a parent-death signal) goes with the run.
#[test]
fn dom0_sigkill_destroys_the_domain_and_xl() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"xen/x86_64\"]\n", APP_SPIN);
    let mut child =
        dom0_run(&app, tmp.path(), "hang", &["-q"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    // xl's pid: the child of unikit running the fake `xl create`.
    let xl: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            ppid == Some(child.id()) && String::from_utf8_lossy(&cmd).contains("create")
        })
        .collect();
    assert_eq!(xl.len(), 1, "one `xl create` under unikit");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let destroyed = tmp.path().join("destroyed");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !destroyed.exists() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let name = std::fs::read_to_string(&destroyed).unwrap_or_default();
    assert!(name.starts_with("unikit-fx-"), "xl destroy got {name:?}");
    let gone = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map_or(true, |s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) == Some("Z"))
    };
    while !gone(xl[0]) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(xl[0]), "xl outlived unikit");
}

/// Boot tests on the Xen test bed, one at a time.
mod bed {
    use super::*;
    use std::sync::Mutex;

    /// Serializes the boots inside this test binary (`cargo test` runs
    /// tests on threads; nextest's test group does the same across processes).
    static BED: Mutex<()> = Mutex::new(());

    /// Generous: the bed boots in ~30 s, much slower while the machine is
    /// busy; the first run also downloads and assembles it.
    const LIMIT: Duration = Duration::from_secs(900);

    /// Run `unikit ARGS` to the end (killing its process group after LIMIT).
    fn unikit(args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().expect("cannot start unikit");
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > LIMIT {
                // SAFETY: signalling our own child's process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                panic!("unikit {args:?} did not finish within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let o = Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() };
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(!stdout(&o).contains("\x1b_unikit"), "a marker leaked to stdout:\n{}", stdout(&o));
        o
    }

    fn run(project: &str, args: &[&str]) -> Output {
        let dir = repo().join(project);
        let mut all = vec!["run", "-C", dir.to_str().unwrap(), "--plat", "xen", "--xen-testbed"];
        all.extend_from_slice(args);
        unikit(&all)
    }

    #[track_caller]
    fn expect(o: &Output, code: i32, needles: &[&str]) {
        let ctx = format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", o.status.code(), stdout(o), stderr(o));
        assert_eq!(o.status.code(), Some(code), "{ctx}");
        for n in needles {
            assert!(stdout(o).contains(n), "missing {n:?}\n{ctx}");
        }
    }

    fn lock() -> std::sync::MutexGuard<'static, ()> {
        BED.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn disk(dir: &Path, mib: u64) -> String {
        let img = dir.join("disk.img");
        std::fs::File::create(&img).unwrap().set_len(mib << 20).unwrap();
        img.to_str().unwrap().to_string()
    }

    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn linux_pv_domu_boots() {
        let _bed = lock();
        let tmp = TempDir::new().unwrap();
        let img = disk(tmp.path(), 1);
        let o = unikit(&["xen-testbed", "--linux", "--disk", &img, "--", "console=hvc0", "quiet", "hello=world"]);
        expect(&o, 0, &["Linux PV domU: console=hvc0 quiet hello=world", "xen devices: vbd-51712"]);
        let err = stderr(&o);
        assert!(err.contains("booting the Xen test bed") && err.contains("about 30 s"), "{err}");
        // The bed's own boot messages stay hidden.
        assert!(!stdout(&o).contains("(XEN)") && !stdout(&o).contains("unikit-dom0"), "{}", stdout(&o));
    }

    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn hello_arguments_and_exit_code() {
        let _bed = lock();
        let o = run("examples/hello", &["--", "one", "two words", "--exit", "3"]);
        expect(
            &o,
            3,
            &[
                "Hello from unikit on xen!",
                "argv[1] = \"one\"",
                "argv[2] = \"two words\"",
                "argv[3] = \"--exit\"",
                "argv[4] = \"3\"",
            ],
        );
        let o = run("examples/hello", &["-q"]);
        expect(&o, 0, &["Hello from unikit on xen!"]);
        assert!(!stdout(&o).contains("unikit 0."), "-q must silence the boot log:\n{}", stdout(&o));
    }

    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn hello_as_a_pvh_guest() {
        let _bed = lock();
        let o = run("examples/hello", &["--xen-type", "pvh", "-q", "--", "--exit", "4"]);
        expect(&o, 4, &["Hello from unikit on xen!"]);
    }

    /// A static Linux program (`--exec`) in a PVH guest, the form `--exec`
    /// takes on Xen. (Programs that take page faults do not run in this
    /// nested bed: user-mode faults arrive there with CR2 = 0.)
    #[cfg_attr(
        any(unikit_no_xen_testbed, unikit_no_musl),
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb; the program needs musl-gcc"
    )]
    #[test]
    fn linux_program_as_a_pvh_guest() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("hello");
        let st = Command::new("musl-gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&prog)
            .arg(repo().join("tests/exec/hello.c"))
            .status()
            .expect("cannot run musl-gcc");
        assert!(st.success());
        let _bed = lock();
        let o = unikit(&[
            "run",
            "--xen-testbed",
            "-q",
            "--exec",
            prog.to_str().unwrap(),
            "-e",
            "GREETING=from xen",
            "--",
            "6",
            "two words",
        ]);
        expect(&o, 6, &["hello from C", "argc=3", "argv[0]=/bin/hello", "argv[2]=two words", "GREETING=from xen"]);
    }

    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn kernel_tests_and_a_crash() {
        let _bed = lock();
        let o = run("tests/kernel-tests", &["-q"]);
        expect(&o, 0, &["kernel-tests: "]);
        let summary = stdout(&o).lines().find(|l| l.starts_with("kernel-tests: ")).unwrap_or_default().to_string();
        assert!(summary.ends_with(" passed, 0 failed"), "{}", stdout(&o));
        let o = run("tests/kernel-tests", &["-q", "--", "fault"]);
        expect(
            &o,
            102,
            &["CPU EXCEPTION in thread 'main': page fault (#PF) (vector 14)", "backtrace:", "__unikit_main+0x"],
        );
        assert!(
            stderr(&o).contains("unikit: guest exception (exit code 102)") || stdout(&o).contains("exit code 102"),
            "{}",
            stderr(&o)
        );
    }

    /// A PV guest cannot take a fault on an overflowed stack (Xen has no
    /// IST for PV); Xen crashes the domain and the CLI reports from Xen's dump.
    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn pv_stack_overflow_is_reported_from_xens_dump() {
        let _bed = lock();
        let o = run("tests/kernel-tests", &["-q", "--", "stack-overflow"]);
        assert_eq!(o.status.code(), Some(102), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("STACK OVERFLOW") && err.contains("kernel_tests::crash::recurse+0x"), "{err}");
    }

    /// The in-VM kernel tests as a PVH guest: hardware paging, the
    /// callback vector, pvclock and set_timer_op.
    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn kernel_tests_as_a_pvh_guest() {
        let _bed = lock();
        let o = run("tests/kernel-tests", &["--xen-type", "pvh"]);
        expect(&o, 0, &["PVH, pvclock", "kernel-tests: "]);
        assert!(stdout(&o).contains(" passed, 0 failed"), "{}", stdout(&o));
    }

    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn disk_survives_reboots() {
        let _bed = lock();
        let tmp = TempDir::new().unwrap();
        let img = disk(tmp.path(), 8);
        // The second boot is a PVH guest: its grant table comes from
        // XENMEM_add_to_physmap instead of the PV mapping.
        for (i, extra) in [(1, &["--", "--format"][..]), (2, &["--xen-type", "pvh"][..]), (3, &[][..])] {
            let mut args = vec!["-q", "--disk", img.as_str()];
            args.extend_from_slice(extra);
            let o = run("examples/counter", &args);
            expect(&o, 0, &[&format!("counter: boot {i}")]);
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// curl's output, when it succeeded.
    fn curl(args: &[&str]) -> Option<String> {
        let o = Command::new("curl").args(["-s", "--max-time", "60"]).args(args).output().expect("curl not installed");
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// examples/httpd running in the bed behind `-p`; its log in `log`.
    struct Httpd {
        child: std::process::Child,
        log: TempDir,
    }

    impl Httpd {
        fn log_text(&self) -> String {
            std::fs::read_to_string(self.log.path().join("run.log")).unwrap_or_default()
        }

        /// Ctrl-C (here SIGTERM) stops QEMU and with it the whole bed;
        /// returns the run's log after checking that it said so.
        fn stop(mut self) -> String {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let status = self.child.wait().unwrap();
            let text = self.log_text();
            assert_eq!(status.code(), Some(128 + 15), "{text}");
            assert!(text.contains("error: interrupted (signal 15, SIGTERM)"), "{text}");
            // dom0's relay complaints (clients that came before the guest listened) stay out of the console.
            assert!(!text.contains("nc: "), "{text}");
            text
        }
    }

    /// Starts httpd and waits for its index page: (run, base URL, page).
    fn start_httpd() -> (Httpd, String, String) {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let proj = repo().join("examples/httpd");
        let www = repo().join("examples/httpd/www");
        let log = TempDir::new().unwrap();
        let out = std::fs::File::create(log.path().join("run.log")).unwrap();
        let child = Command::new(BIN)
            .args([
                "run",
                "-q",
                "--xen-testbed",
                "-C",
                proj.to_str().unwrap(),
                "-p",
                &format!("{port}:80"),
                "--rootfs",
                www.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        let mut h = Httpd { child, log };
        let deadline = Instant::now() + LIMIT;
        let index = loop {
            if let Some(page) = curl(&[&format!("{base}/")]).filter(|p| !p.is_empty()) {
                break page;
            }
            if let Ok(Some(st)) = h.child.try_wait() {
                panic!("the run stopped ({st}) before httpd answered:\n{}", h.log_text());
            }
            if Instant::now() > deadline {
                // SAFETY: signalling our own child's process group.
                unsafe { libc::kill(-(h.child.id() as i32), libc::SIGKILL) };
                panic!("httpd did not answer within {LIMIT:?}:\n{}", h.log_text());
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        (h, base, index)
    }

    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn httpd_through_publish() {
        let _bed = lock();
        let (httpd, base, index) = start_httpd();
        let big = curl(&["-o", "/dev/null", "-w", "%{http_code} %{size_download}", &format!("{base}/static/64k.txt")]);
        let missing = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/no/such/file")]);
        let text = httpd.stop();
        assert!(index.contains("Hello from unikit!"), "{index}\n{text}");
        assert_eq!(big.as_deref(), Some("200 65536"), "{text}");
        assert_eq!(missing.as_deref(), Some("404"), "{text}");
    }

    /// Several clients at once through dom0's relay (a forked busybox nc
    /// per connection, slow under TCG) and the guest's vif.
    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[cfg_attr(
        not(unikit_no_xen_testbed),
        ignore = "KNOWN BUG, not fixed yet: in bursts of 8 connections through the bed, about 1 connection in 8 bursts is reset or stalls 30 s with a unikit guest (PV and PVH); a Linux PV guest in the same bed answers them all"
    )]
    #[test]
    fn httpd_parallel_clients() {
        let _bed = lock();
        let (httpd, base, _) = start_httpd();
        let urls: Vec<String> = (0..8).map(|i| format!("{base}/?client={i}")).collect();
        let mut args: Vec<&str> =
            vec!["-s", "--max-time", "120", "--parallel", "--parallel-max", "8", "-w", "%{http_code}\n"];
        for u in &urls {
            args.extend(["-o", "/dev/null", u.as_str()]);
        }
        let codes = Command::new("curl")
            .args(&args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let text = httpd.stop();
        assert_eq!(codes.lines().filter(|c| *c == "200").count(), 8, "{codes}\n{text}");
    }

    #[cfg_attr(
        unikit_no_xen_testbed,
        ignore = "SKIPPED: the Xen test bed needs qemu-system-x86_64, apt-get, apt-cache and dpkg-deb"
    )]
    #[test]
    fn a_kernel_xen_refuses_is_explained() {
        let _bed = lock();
        let tmp = TempDir::new().unwrap();
        let bogus = tmp.path().join("not-a-kernel");
        std::fs::write(&bogus, vec![0x90u8; 4096]).unwrap();
        let o = unikit(&["xen-testbed", bogus.to_str().unwrap()]);
        let err = assert_error(&o, "error: guest stopped without reporting an exit code (`xl create` failed");
        // The tail of the bed's messages says why, and the logs are kept.
        assert!(err.contains("xc_dom_find_loader: no loader found"), "{err}");
        let kept = err
            .lines()
            .find_map(|l| l.strip_prefix("unikit: the test bed's full log and the xl config are kept in "))
            .expect("kept dir");
        assert!(Path::new(kept).join("serial-noise.log").is_file(), "{err}");
        std::fs::remove_dir_all(kept).unwrap();
    }
}
