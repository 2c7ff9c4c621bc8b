//! Host-side reliability of `unikit run` without a guest kernel (issue 11):
//! signalling only the CLI's PID takes its VMM (and network namespace) with
//! it, whatever the signal. The VMMs here are the stand-in project's linuxu
//! process and shell-script stand-ins for QEMU and Firecracker that spin
//! (`exec sleep`), so the process that must go is the "VMM" itself.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

#[path = "../../../tests/common/mod.rs"]
mod common;
use common::{APP_SPIN, BIN, fixture};

/// Children of `pid` (from /proc/*/stat).
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if rest.split_whitespace().nth(1).and_then(|s| s.parse::<u32>().ok()) == Some(pid) {
            v.push(p);
        }
    }
    v
}

/// A live process (not a zombie).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

/// Waits until `unikit` has a child whose command line contains `needle`.
fn wait_for_vmm(unikit: &mut Child, needle: &str) -> u32 {
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        if let Some(p) = children(unikit.id()).into_iter().find(|&p| cmdline(p).contains(needle)) {
            return p;
        }
        if let Ok(Some(s)) = unikit.try_wait() {
            panic!("unikit ended ({s}) before its VMM ({needle}) was seen");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no VMM ({needle}) under unikit");
}

/// Sends `sig` to `pid` only (not its process group).
fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with integers.
    #[allow(unsafe_code)]
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

#[track_caller]
fn assert_gone(pid: u32, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = alive(pid);
    if left {
        // Do not leave it behind for the next test.
        signal(pid, libc::SIGKILL);
    }
    assert!(!left, "{what} ({pid}: {}) outlived unikit", cmdline(pid));
}

const SIGNALS: [(i32, &str); 4] =
    [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT"), (libc::SIGHUP, "SIGHUP"), (libc::SIGKILL, "SIGKILL")];

/// Starts `unikit run ARGS` in `app`, waits for its VMM, signals only the
/// CLI, and checks the VMM goes too. Returns unikit's exit status.
fn signal_run(app: &Path, path: Option<&std::ffi::OsStr>, args: &[&str], vmm: &str, sig: i32) -> (u32, i32) {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(app).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let mut unikit = cmd.spawn().unwrap();
    let pid = wait_for_vmm(&mut unikit, vmm);
    signal(unikit.id(), sig);
    let status = unikit.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_gone(pid, vmm);
    (pid, status.code().unwrap_or(128 + status.signal().unwrap_or(0)))
}

/// A folder with a stand-in `name` that only spins; PATH with it first.
fn fake_vmm(name: &str) -> (TempDir, std::ffi::OsString) {
    let bin = TempDir::new().unwrap();
    let script = bin.path().join(name);
    fs::write(&script, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut paths = vec![bin.path().to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    (bin, std::env::join_paths(paths).unwrap())
}

#[test]
fn linuxu_process_goes_with_the_cli_on_any_signal() {
    let (_tmp, app) = fixture("name = \"fx\"\ntargets = [\"linuxu/x86_64\"]\n", APP_SPIN);
    for (sig, name) in SIGNALS {
        let (_, code) = signal_run(&app, None, &["run", "--plat", "linuxu", "-q"], "fx_linuxu", sig);
        if sig != libc::SIGKILL {
            // Passed on: the guest ends by that signal and unikit says so.
            assert_eq!(code, 128 + sig, "{name}");
        }
    }
}

#[test]
fn qemu_goes_with_the_cli_on_any_signal() {
    let (_tmp, app) = fixture("name = \"fx\"\ntargets = [\"qemu/x86_64\"]\n", APP_SPIN);
    let (_bin, path) = fake_vmm("qemu-system-x86_64");
    for (sig, name) in SIGNALS {
        let (_, code) =
            signal_run(&app, Some(&path), &["run", "--plat", "qemu", "--accel", "tcg", "-q"], "sleep 1000", sig);
        if sig != libc::SIGKILL {
            assert_eq!(code, 128 + sig, "{name}");
        }
    }
}

fn netns_list() -> String {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `-p` on fc: Firecracker, the namespace and the published port all go
/// with the CLI (the namespace through the reaper when the CLI is SIGKILLed).
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host (run --plat fc checks it)")]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
#[test]
fn firecracker_namespace_and_port_go_with_the_cli_on_any_signal() {
    let (_tmp, app) = fixture("name = \"fx\"\ntargets = [\"fc/x86_64\"]\n", APP_SPIN);
    let (_bin, path) = fake_vmm("firecracker");
    for (sig, name) in SIGNALS {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let publish = format!("{port}:80");
        let mut unikit = Command::new(BIN)
            .current_dir(&app)
            .env("PATH", &path)
            .args(["run", "--plat", "fc", "-q", "-p", &publish])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ns = format!("unikit-fc-{}", unikit.id());
        let vmm = wait_for_vmm(&mut unikit, "sleep 1000");
        assert!(netns_list().contains(&ns), "{name}");
        assert!(!port_free(port), "{name}: the port is published");
        signal(unikit.id(), sig);
        let _ = unikit.wait().unwrap();
        assert_gone(vmm, "firecracker");
        let until = Instant::now() + Duration::from_secs(10);
        while (netns_list().contains(&ns) || !port_free(port)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!netns_list().contains(&ns), "{name}: namespace {ns} left behind");
        assert!(port_free(port), "{name}: port {port} still taken");
    }
}

fn run_in(app: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .current_dir(app)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // None of these may hang: a FIFO manifest used to block forever.
    let until = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("unikit {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    #[allow(unsafe_code)]
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(r, 0, "mkfifo {}", path.display());
}

#[test]
fn manifests_that_are_not_small_regular_files_are_refused_unread() {
    let d = TempDir::new().unwrap();
    let m = d.path().join("unikit.toml");
    mkfifo(&m);
    common::assert_error(&run_in(d.path(), &["run"]), "not a regular file");
    fs::remove_file(&m).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &m).unwrap();
    common::assert_error(&run_in(d.path(), &["build"]), "not a regular file");
    fs::remove_file(&m).unwrap();
    let mut big = String::from("name = \"x\"\ntargets = [\"linuxu/x86_64\"]\n");
    big.push_str(&"# padding\n".repeat(110_000));
    fs::write(&m, big).unwrap();
    common::assert_error(&run_in(d.path(), &["run"]), "over the limit of 1048576 bytes");
}

#[test]
fn kernel_args_that_break_the_command_line_are_refused() {
    for (arg, needle) in
        [("--", "'--' ends the kernel options"), ("A=1", "environment variable"), ("a b", "whitespace")]
    {
        let (_tmp, app) =
            fixture(&format!("name = \"fx\"\ntargets = [\"linuxu/x86_64\"]\nkernel_args = [{arg:?}]\n"), APP_SPIN);
        let err = common::assert_error(&run_in(&app, &["run", "--plat", "linuxu"]), needle);
        assert!(err.contains("unikit.toml:3:"), "points at the line: {err}");
    }
}

const APP_EXIT0: &str =
    "#![no_std]\n#![no_main]\n#[no_mangle]\npub extern \"C\" fn _start() -> ! { unikit::exit(0) }\n";

#[test]
fn rootfs_special_files_warned_and_trailer_refused() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"linuxu/x86_64\"]\n", APP_EXIT0);
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("index.html"), "hi").unwrap();
    mkfifo(&root.join("pipe"));
    let o = run_in(&app, &["run", "--plat", "linuxu", "-q", "--rootfs", root.to_str().unwrap()]);
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("special file") && err.contains("pipe"), "{err}");
    let cpio = fs::read(app.join("build/fx.rootfs.cpio")).unwrap();
    assert!(String::from_utf8_lossy(&cpio).contains("index.html\0"));
    fs::write(root.join("TRAILER!!!"), "x").unwrap();
    let o = run_in(&app, &["run", "--plat", "linuxu", "-q", "--rootfs", root.to_str().unwrap()]);
    common::assert_error(&o, "a file named TRAILER!!! cannot be carried");
}

/// What made QEMU refuse to start is said before it starts (or in QEMU's
/// own words), never "guest stopped without reporting an exit code".
#[test]
fn vmm_refusals_are_explained() {
    if !Path::new("/usr/bin/qemu-system-x86_64").exists() && which_qemu().is_none() {
        panic!("qemu-system-x86_64 is needed for this test");
    }
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"qemu/x86_64\"]\n", APP_SPIN);
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "--plat", "qemu", "--accel", "tcg", "-q"];
        a.extend_from_slice(extra);
        let o = run_in(&app, &a);
        assert!(!common::stderr(&o).contains("guest stopped without reporting"), "{}", common::stderr(&o));
        o
    };
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let e = common::assert_error(&run(&["-p", &format!("{port}:80")]), "cannot listen on 127.0.0.1");
    assert!(e.contains("hint: "), "{e}");
    drop(held);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    common::assert_error(&run(&["-p", &format!("{free}:80"), "-p", &format!("{free}:81")]), "is already published");
    let disk = tmp.path().join("d.img");
    fs::write(&disk, vec![0u8; 4096]).unwrap();
    let link = tmp.path().join("same.img");
    fs::hard_link(&disk, &link).unwrap();
    common::assert_error(
        &run(&["--disk", disk.to_str().unwrap(), "--disk", link.to_str().unwrap()]),
        "the same disk is already attached",
    );
    common::assert_error(&run(&["--net", "tap:lo"]), "'lo' is a network interface but not a tap device");
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = ["MemTotal:", "SwapTotal:"]
        .iter()
        .filter_map(|k| {
            meminfo.lines().find_map(|l| l.strip_prefix(k)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        })
        .sum();
    let too_much = format!("{}M", (kib >> 10) * 2 + 1);
    common::assert_error(&run(&["-m", &too_much]), "is more than this host has");
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("big"), vec![7u8; 15 << 20]).unwrap();
    common::assert_error(&run(&["-m", "16M", "--rootfs", root.to_str().unwrap()]), "does not fit in -m 16M");
    // Past the checks, QEMU's own refusal (the stand-in image has no PVH
    // note) is shown as QEMU's, with its message.
    let o = run(&[]);
    let e = common::assert_error(&o, "error: qemu-system-x86_64 could not run the guest (exit status 1): ");
    assert!(e.contains("hint: "), "{e}");
}

fn which_qemu() -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|p| p.join("qemu-system-x86_64")).find(|p| p.is_file())
}

/// fc's `-p` goes through our relay: a taken or doubled host port is refused
/// before the build, as on qemu.
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host (run --plat fc checks it)")]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
#[test]
fn firecracker_publish_refusals_are_explained() {
    let (_tmp, app) = fixture("name = \"fx\"\ntargets = [\"fc/x86_64\"]\n", APP_SPIN);
    let (_bin, path) = fake_vmm("firecracker");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let run = |args: &[&str]| {
        let o = Command::new(BIN).current_dir(&app).env("PATH", &path).args(args).output().unwrap();
        assert!(!app.join("build").exists(), "refused before the build");
        o
    };
    common::assert_error(
        &run(&["run", "--plat", "fc", "-q", "-p", &format!("{port}:80")]),
        "cannot listen on 127.0.0.1",
    );
    drop(held);
    common::assert_error(
        &run(&["run", "--plat", "fc", "-q", "-p", &format!("{port}:80"), "-p", &format!("{port}:81")]),
        "is already published",
    );
}
