//! The Firecracker platform (`--plat fc`) end to end.
//!
//! - Without a `firecracker` binary, `run` and `platforms` say so and how to
//!   get one (always run).
//! - A fake `firecracker` script on PATH checks the arguments and the JSON
//!   config that `unikit run --plat fc` writes, and prints an exit marker
//!   (needs /dev/kvm only because `run --plat fc` checks it first; the
//!   `-p` test also needs root and iproute2 for the network namespace).
//! - Real boots run only where a `firecracker` binary was found at build
//!   time ($UNIKIT_FIRECRACKER or PATH, see crates/cli/build.rs); elsewhere
//!   they are reported as ignored with the reason.
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

mod common;
use common::{APP_SPIN, BIN, assert_error, fixture, stderr, stdout};

fn run_in(dir: &Path, path: &std::ffi::OsStr, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir).env("PATH", path).args(args).output().expect("run unikit")
}

/// A fake `firecracker` that checks its arguments, saves them and the
/// config, and behaves according to `$FAKE_FC_MODE`. Returns (dir, PATH).
fn fake_firecracker() -> (TempDir, std::ffi::OsString) {
    let bin = TempDir::new().unwrap();
    let script = bin.path().join("firecracker");
    fs::write(
        &script,
        r#"#!/bin/sh
if [ "$1" != --no-api ] || [ "$2" != --config-file ] || [ ! -f "$3" ] || [ "$4" != --log-path ] || [ "$6" != --level ]; then
    echo "fake firecracker: unexpected arguments: $*" >&2
    exit 153
fi
printf '%s\n' "$@" > "$FAKE_FC_ARGS"
cp "$3" "$FAKE_FC_CONFIG"
case "$FAKE_FC_MODE" in
marker)
    printf 'booting\n'
    printf '\033_unikit:exit=5\033\\\r\n'
    exit 0 ;;
nomarker)
    echo 'fake: the vCPU said no' >> "$5"
    printf 'no marker\n'
    exit 1 ;;
netns)
    { ip netns identify $$; ip -4 -o addr show dev tap0; } > "$FAKE_FC_NETNS"
    if ! command -v python3 >/dev/null; then
        printf 'nopython\n\033_unikit:exit=0\033\\\n'
        exit 0
    fi
    # Play the guest: 172.16.0.2 on the namespace's loopback, port 8000.
    ip addr add 172.16.0.2/32 dev lo
    python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("172.16.0.2", 8000)); s.listen(1)
print("ready", flush=True)
c, a = s.accept(); d = c.recv(100); c.sendall(b"pong:" + d + b":" + a[0].encode()); c.close()
'
    printf '\033_unikit:exit=0\033\\\n'
    exit 0 ;;
esac
exit 2
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut paths = vec![bin.path().to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    (bin, std::env::join_paths(paths).unwrap())
}

#[test]
fn without_firecracker_run_and_platforms_explain() {
    let p = TempDir::new().unwrap();
    fs::write(p.path().join("unikit.toml"), "name = \"x\"\ntargets = [\"fc/x86_64\"]\n").unwrap();
    let empty = TempDir::new().unwrap();
    let path = empty.path().as_os_str();

    let err = assert_error(&run_in(p.path(), path, &["run", "--plat", "fc"]), "error: firecracker not found on PATH");
    for needle in [
        "hint: ",
        "https://github.com/firecracker-microvm/firecracker/releases",
        "--firecracker PATH",
        "cargo build --release -p firecracker",
        "unikit run --plat qemu --machine microvm",
    ] {
        assert!(err.contains(needle), "{needle:?} missing in: {err}");
    }

    let err = assert_error(
        &run_in(p.path(), path, &["run", "--plat", "fc", "--firecracker", "/nonexistent/firecracker"]),
        "--firecracker /nonexistent/firecracker: no such file",
    );
    assert!(err.contains("hint: download a release binary"), "{err}");

    // --firecracker alone selects fc.
    assert_error(
        &run_in(p.path(), path, &["run", "--firecracker", "/nonexistent/fc"]),
        "--firecracker /nonexistent/fc: no such file",
    );

    // Without --plat: no target can run, and fc says why.
    let err =
        assert_error(&run_in(p.path(), path, &["run"]), "none of the targets in unikit.toml can run on this host");
    assert!(err.contains("fc/x86_64: firecracker not found"), "{err}");

    let o = run_in(p.path(), path, &["platforms"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let fc = out.lines().find(|l| l.starts_with("fc ")).unwrap_or_else(|| panic!("no fc row:\n{out}"));
    assert!(fc.starts_with("fc       no "), "{fc}");
    assert!(
        fc.contains("firecracker not on PATH") && fc.contains("releases") && fc.contains("--machine microvm"),
        "{fc}"
    );
}

#[test]
fn fc_only_flags_and_fc_network_rules() {
    let p = TempDir::new().unwrap();
    fs::write(p.path().join("unikit.toml"), "name = \"x\"\ntargets = [\"qemu/x86_64\", \"fc/x86_64\"]\n").unwrap();
    let (_bin, path) = fake_firecracker();
    assert_error(
        &run_in(p.path(), &path, &["run", "--plat", "qemu", "--cpus", "2"]),
        "--cpus only applies to the fc platform",
    );
    assert_error(
        &run_in(p.path(), &path, &["run", "--plat", "qemu", "--firecracker", "/x"]),
        "--firecracker only applies to the fc platform",
    );
    assert_error(
        &run_in(p.path(), &path, &["run", "--plat", "fc", "--machine", "microvm"]),
        "--machine only applies to the qemu platform",
    );
    let err = assert_error(&run_in(p.path(), &path, &["run", "--plat", "fc", "--net", "user"]), "Firecracker has none");
    assert!(err.contains("hint: use -p HOST:GUEST"), "{err}");
    let err = assert_error(
        &run_in(p.path(), &path, &["run", "--plat", "fc", "--net", "tap:nosuchtap9"]),
        "no network interface 'nosuchtap9'",
    );
    assert!(err.contains("ip tuntap add dev nosuchtap9 mode tap"), "{err}");
    assert_error(
        &run_in(p.path(), &path, &["run", "--plat", "fc", "-p", "8080:80", "--net", "tap:lo"]),
        "makes its own tap",
    );
    assert_error(
        &run_in(p.path(), &path, &["run", "--plat", "fc", "-p", "8080:80", "--ip", "10.0.0.2/24"]),
        "leave --ip out",
    );
    assert_error(&run_in(p.path(), &path, &["run", "--plat", "fc", "--cpus", "40"]), "error:");
}

#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host (run --plat fc checks it)")]
#[test]
fn odd_vcpu_counts_are_refused() {
    let p = TempDir::new().unwrap();
    fs::write(p.path().join("unikit.toml"), "name = \"x\"\ntargets = [\"fc/x86_64\"]\n").unwrap();
    let (_bin, path) = fake_firecracker();
    assert_error(&run_in(p.path(), &path, &["run", "--plat", "fc", "--cpus", "3"]), "1 or an even number");
}

#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host (run --plat fc checks it)")]
#[test]
fn config_file_and_marker_through_a_fake_firecracker() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"fc/x86_64\"]\nenv = { FOO = \"bar\" }\n", APP_SPIN);
    let disk = tmp.path().join("d.img");
    fs::write(&disk, vec![0u8; 4096]).unwrap();
    let www = tmp.path().join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("index.html"), "hi").unwrap();
    let (_bin, path) = fake_firecracker();
    let config = tmp.path().join("config.json");
    let args = tmp.path().join("args");
    let o = Command::new(BIN)
        .current_dir(&app)
        .env("PATH", &path)
        .env("FAKE_FC_MODE", "marker")
        .env("FAKE_FC_CONFIG", &config)
        .env("FAKE_FC_ARGS", &args)
        .args(["run", "--plat", "fc", "-q", "-m", "2560K", "--cpus", "2", "--net", "tap:lo"])
        .arg("--disk")
        .arg(&disk)
        .arg("--rootfs")
        .arg(&www)
        .args(["--ip", "10.0.0.2/24:10.0.0.1", "--", "a", "b c"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert_eq!(stdout(&o), "booting\n", "{err}");
    assert!(err.contains("-m 2560K is rounded up to 3M"), "{err}");

    let argv = fs::read_to_string(&args).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv.len(), 7, "{argv:?}");
    assert!(argv[2].ends_with("/config.json") && argv[4].ends_with("/firecracker.log"), "{argv:?}");
    assert_eq!(argv[6], "Warning");
    // The run folder is removed after a run with a marker.
    assert!(!Path::new(argv[2]).exists(), "{argv:?}");

    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    let image = app.join("build/fx_fc-x86_64").canonicalize().unwrap();
    assert_eq!(Path::new(v["boot-source"]["kernel_image_path"].as_str().unwrap()).canonicalize().unwrap(), image);
    assert_eq!(v["boot-source"]["boot_args"], "netdev.ip=10.0.0.2/24:10.0.0.1 unikit.quiet FOO=bar -- a \"b c\"");
    let initrd = v["boot-source"]["initrd_path"].as_str().unwrap();
    assert!(
        initrd.starts_with('/') && initrd.ends_with("/build/fx.rootfs.cpio") && Path::new(initrd).is_file(),
        "{initrd}"
    );
    assert_eq!(v["machine-config"], serde_json::json!({"vcpu_count": 2, "mem_size_mib": 3, "smt": false}));
    assert_eq!(
        v["drives"],
        serde_json::json!([{"drive_id": "disk0", "is_root_device": false,
                            "path_on_host": disk.to_str().unwrap(), "is_read_only": false}])
    );
    let nics = v["network-interfaces"].as_array().unwrap();
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0]["iface_id"], "net0");
    assert_eq!(nics[0]["host_dev_name"], "lo");
    assert!(nics[0]["guest_mac"].as_str().unwrap().starts_with("06:00:"), "{nics:?}");
}

#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host (run --plat fc checks it)")]
#[test]
fn firecracker_failing_without_marker_is_reported() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"fc/x86_64\"]\n", APP_SPIN);
    let (_bin, path) = fake_firecracker();
    let args = tmp.path().join("args");
    let o = Command::new(BIN)
        .current_dir(&app)
        .env("PATH", &path)
        .env("FAKE_FC_MODE", "nomarker")
        .env("FAKE_FC_CONFIG", tmp.path().join("config.json"))
        .env("FAKE_FC_ARGS", &args)
        .args(["run", "--plat", "fc", "-q"])
        .output()
        .unwrap();
    let err = assert_error(&o, "error: guest stopped without reporting an exit code (firecracker exit status 1)");
    assert!(err.contains("fake: the vCPU said no"), "the log is shown: {err}");
    assert!(err.contains("the Firecracker config is kept in"), "{err}");
    assert_eq!(stdout(&o), "no marker\n");
    let argv = fs::read_to_string(&args).unwrap();
    let run_dir = Path::new(argv.lines().nth(2).unwrap()).parent().unwrap().to_path_buf();
    assert!(run_dir.join("config.json").is_file());
    fs::remove_dir_all(run_dir).unwrap();
}

fn netns_list() -> String {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host (run --plat fc checks it)")]
#[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
#[test]
fn publish_makes_a_namespace_with_a_tap_and_relays() {
    let (tmp, app) = fixture("name = \"fx\"\ntargets = [\"fc/x86_64\"]\n", APP_SPIN);
    let (_bin, path) = fake_firecracker();
    let info = tmp.path().join("netns");
    let config = tmp.path().join("config.json");
    let port = free_port();
    let mut child = Command::new(BIN)
        .current_dir(&app)
        .env("PATH", &path)
        .env("FAKE_FC_MODE", "netns")
        .env("FAKE_FC_CONFIG", &config)
        .env("FAKE_FC_ARGS", tmp.path().join("args"))
        .env("FAKE_FC_NETNS", &info)
        .args(["run", "--plat", "fc", "-q", "-p", &format!("{port}:8000")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ns = format!("unikit-fc-{}", child.id());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let listed = netns_list();
    let reply = if first == "ready" {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"ping").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        Some(r)
    } else {
        None
    };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}\n{rest:?}");

    let info = fs::read_to_string(&info).unwrap();
    assert!(info.starts_with(&format!("{ns}\n")), "firecracker runs in the run's namespace: {info}");
    assert!(info.contains("tap0") && info.contains("172.16.0.1/30"), "{info}");
    assert!(listed.contains(&ns), "{listed}");
    assert!(!netns_list().contains(&ns), "the namespace is removed at exit");
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(v["network-interfaces"][0]["host_dev_name"], "tap0");
    assert!(v["boot-source"]["boot_args"].as_str().unwrap().starts_with("netdev.ip=172.16.0.2/30:172.16.0.1 "), "{v}");
    match reply {
        // The fake guest shares the namespace, so the source may be either end.
        Some(r) => assert!(r.starts_with("pong:ping:172.16.0."), "{r}"),
        None => assert_eq!(first, "nopython", "{err}"),
    }
}

/// Real Firecracker boots (only where a binary was found at build time).
mod real {
    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn run(project: &str, args: &[&str]) -> Output {
        let o = Command::new(BIN)
            .arg("run")
            .arg("-C")
            .arg(repo().join(project))
            .args(["--plat", "fc", "--firecracker", env!("UNIKIT_TEST_FIRECRACKER")])
            .args(args)
            .output()
            .unwrap();
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(!stdout(&o).contains("\x1b_unikit:exit"), "marker leaked:\n{}", stdout(&o));
        o
    }

    #[cfg_attr(
        unikit_no_firecracker,
        ignore = "SKIPPED: no firecracker binary ($UNIKIT_FIRECRACKER or PATH at build time)"
    )]
    #[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
    #[test]
    fn hello_exit_code() {
        let o = run("examples/hello", &["--", "one", "--exit", "3"]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(3), "{out}\n{}", stderr(&o));
        assert!(out.contains("Hello from unikit on kvm!") && out.contains("argv[1] = \"one\""), "{out}");
    }

    #[cfg_attr(
        unikit_no_firecracker,
        ignore = "SKIPPED: no firecracker binary ($UNIKIT_FIRECRACKER or PATH at build time)"
    )]
    #[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
    #[test]
    fn hello_quiet_exits_zero() {
        let o = run("examples/hello", &["-q"]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
        assert!(out.contains("Hello from unikit on kvm!") && !out.contains("unikit 0."), "{out}");
    }

    #[cfg_attr(
        unikit_no_firecracker,
        ignore = "SKIPPED: no firecracker binary ($UNIKIT_FIRECRACKER or PATH at build time)"
    )]
    #[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
    #[cfg_attr(unikit_no_netns, ignore = "SKIPPED: creating network namespaces needs root and iproute2")]
    #[test]
    fn httpd_through_publish() {
        let port = free_port();
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("-C")
            .arg(repo().join("examples/httpd"))
            .args(["--plat", "fc", "--firecracker", env!("UNIKIT_TEST_FIRECRACKER"), "-q", "-p", &format!("{port}:80")])
            .arg("--rootfs")
            .arg(repo().join("examples/httpd/www"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ns = format!("unikit-fc-{}", child.id());
        let mut page = String::new();
        for _ in 0..600 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
                let _ = s.read_to_string(&mut page);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SIGTERM goes on to Firecracker; the run then removes its namespace.
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(page.starts_with("HTTP/1.1 200") && page.contains("Hello from unikit!"), "{page}\n{err}");
        assert_eq!(status.code(), Some(128 + 15), "{err}");
        assert!(err.contains("firecracker was killed by signal 15, SIGTERM"), "{err}");
        assert!(!netns_list().contains(&ns), "namespace left behind");
    }

    #[cfg_attr(
        unikit_no_firecracker,
        ignore = "SKIPPED: no firecracker binary ($UNIKIT_FIRECRACKER or PATH at build time)"
    )]
    #[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
    #[test]
    fn kernel_tests_and_a_crash() {
        let o = run("tests/kernel-tests", &["-q"]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        assert!(stdout(&o).contains("kernel-tests: 17 passed, 0 failed"), "{}", stdout(&o));
        let o = run("tests/kernel-tests", &["-q", "--", "fault"]);
        assert_eq!(o.status.code(), Some(102), "{}", stdout(&o));
        assert!(stdout(&o).contains("page fault (#PF)"), "{}", stdout(&o));
    }

    #[cfg_attr(
        unikit_no_firecracker,
        ignore = "SKIPPED: no firecracker binary ($UNIKIT_FIRECRACKER or PATH at build time)"
    )]
    #[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
    #[test]
    fn disk_survives_reboots() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        std::fs::File::create(&img).unwrap().set_len(8 << 20).unwrap();
        let img = img.to_str().unwrap();
        for (i, extra) in [(1, &["--", "--format"][..]), (2, &[][..])] {
            let mut args = vec!["-q", "--disk", img];
            args.extend_from_slice(extra);
            let o = run("examples/counter", &args);
            assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
            assert!(stdout(&o).contains(&format!("counter: boot {i}")), "{}", stdout(&o));
        }
    }
}
