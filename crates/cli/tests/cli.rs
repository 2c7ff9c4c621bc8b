//! End-to-end tests of the `unikit` binary. They need no guest kernel: the
//! projects here depend on a tiny stand-in `unikit` crate, and QEMU is
//! replaced by a shell script where its behaviour matters.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

#[path = "../../../tests/common/mod.rs"]
mod common;
use common::{BIN, assert_error, fixture, stderr, stdout};

fn unikit(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir).args(args).output().expect("run unikit")
}

fn unikit_with_path(dir: &Path, path: &std::ffi::OsStr, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(dir).env("PATH", path).args(args).output().expect("run unikit")
}

/// A folder with only a `unikit.toml`.
fn project(manifest: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("unikit.toml"), manifest).unwrap();
    dir
}

const APP_MAIN: &str = r#"#![no_std]
#![no_main]
#[no_mangle]
pub extern "C" fn _start() -> ! {
    unikit::write(b"hello from fixture\n");
    unikit::exit(7)
}
"#;

/// A folder with a fake `qemu-system-x86_64` that records its arguments and
/// behaves according to `$FAKE_QEMU_MODE`; returns (dir, PATH with it first).
fn fake_qemu() -> (TempDir, std::ffi::OsString) {
    let bin = TempDir::new().unwrap();
    let script = bin.path().join("qemu-system-x86_64");
    fs::write(
        &script,
        r#"#!/bin/sh
printf '%s\n' "$@" > "$FAKE_QEMU_ARGS"
case "$FAKE_QEMU_MODE" in
marker)
    printf 'booting\n'
    printf 'bye\033_unikit:exit=3'
    sleep 0.2
    printf ';reason=panic\033\\\n'
    printf 'after\n'
    exit 7 ;;
nomarker)
    printf 'no marker here\n'
    exit 9 ;;
backtrace)
    printf 'backtrace:\r\n  #1  0x%s\r\n' "$FAKE_QEMU_ADDR"
    printf '\033_unikit:exit=102;reason=exception\033\\\r\n'
    exit 1 ;;
*)
    printf 'quiet\n'
    exit 0 ;;
esac
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut paths = vec![bin.path().to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let path = std::env::join_paths(paths).unwrap();
    (bin, path)
}

const QEMU_LINUXU: &str = "name = \"fx\"\ntargets = [\"qemu/x86_64\", \"linuxu/x86_64\"]\n";

#[test]
fn platforms_lists_all_seven() {
    let tmp = TempDir::new().unwrap();
    let o = unikit(tmp.path(), &["platforms"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for name in ["linuxu", "qemu", "fc", "xen", "solo5", "vmware", "hyperv"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} missing in:\n{out}");
    }
    assert!(out.contains("--testbed"), "{out}");
}

#[test]
fn malformed_toml() {
    let p = project("name = \"x\ntargets = [\"qemu/x86_64\"]\n");
    let err = assert_error(&unikit(p.path(), &["build"]), "unikit.toml:1:");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unknown_key() {
    let p = project("name = \"x\"\ntargets = [\"qemu/x86_64\"]\nbogus = 1\n");
    assert_error(&unikit(p.path(), &["run"]), "unikit.toml:3:1: unknown field `bogus`");
}

#[test]
fn bad_target_and_memory_in_manifest() {
    let p = project("name = \"x\"\ntargets = [\"qemu-x86_64\"]\n");
    assert_error(&unikit(p.path(), &["build"]), "invalid target 'qemu-x86_64'");
    let p = project("name = \"x\"\ntargets = [\"qemu/x86_64\"]\nmemory = \"lots\"\n");
    assert_error(&unikit(p.path(), &["build"]), "unikit.toml:3:10: invalid memory size 'lots'");
}

#[test]
fn missing_manifest() {
    let tmp = TempDir::new().unwrap();
    let err = assert_error(&unikit(tmp.path(), &["build"]), "no unikit.toml in .");
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn unknown_platform() {
    let p = project(QEMU_LINUXU);
    assert_error(
        &unikit(p.path(), &["run", "--plat", "foo"]),
        "error: unknown platform 'foo' (known: linuxu, qemu, fc, xen, solo5, vmware, hyperv)",
    );
}

#[test]
fn a_platform_this_host_cannot_run() {
    // Hyper-V runs on Windows: the run says so and names the test bed.
    let p = project("name = \"x\"\ntargets = [\"hyperv/x86_64\"]\n");
    let err = assert_error(&unikit(p.path(), &["run", "--plat", "hyperv"]), "Hyper-V runs on Windows");
    assert!(err.contains("--testbed"), "{err}");
    // No target this host can run, and none asked for.
    assert_error(&unikit(p.path(), &["run"]), "none of the targets in unikit.toml can run on this host");
}

#[test]
fn platform_not_in_manifest() {
    let p = project("name = \"x\"\ntargets = [\"qemu/x86_64\"]\n");
    assert_error(
        &unikit(p.path(), &["build", "--plat", "linuxu"]),
        "target linuxu/x86_64 is not listed in unikit.toml",
    );
}

#[test]
fn bad_memory_flag() {
    let p = project(QEMU_LINUXU);
    assert_error(&unikit(p.path(), &["run", "-m", "lots"]), "invalid memory size 'lots'");
    assert_error(&unikit(p.path(), &["run", "-m", "0"]), "must be positive");
}

#[test]
fn bad_flag() {
    let p = project(QEMU_LINUXU);
    assert_error(&unikit(p.path(), &["run", "--accel", "hvf"]), "error:");
    assert_error(&unikit(p.path(), &["frobnicate"]), "error:");
}

#[test]
fn missing_qemu() {
    let p = project(QEMU_LINUXU);
    let empty = TempDir::new().unwrap();
    let o = unikit_with_path(p.path(), empty.path().as_os_str(), &["run", "--plat", "qemu"]);
    let err = assert_error(&o, "error: qemu-system-x86_64 not found");
    assert!(err.contains("hint: install it with: apt-get install qemu-system-x86"), "{err}");

    let only_qemu = project("name = \"x\"\ntargets = [\"qemu/x86_64\"]\n");
    let o = unikit_with_path(only_qemu.path(), empty.path().as_os_str(), &["run"]);
    assert_error(&o, "none of the targets in unikit.toml can run on this host");
}

#[test]
fn missing_cargo_toml() {
    let p = project(QEMU_LINUXU);
    assert_error(&unikit(p.path(), &["build", "--plat", "linuxu"]), "no Cargo.toml in .");
}

#[test]
fn compile_error_is_shown_then_our_line() {
    let (_tmp, app) = fixture(QEMU_LINUXU, "fn main( {\n");
    for quiet in [false, true] {
        let mut args = vec!["build", "--plat", "linuxu"];
        if quiet {
            args.push("-q");
        }
        let err = assert_error(&unikit(&app, &args), "error: building fx for linuxu/x86_64 failed");
        let compiler = err.find("src/main.rs").unwrap_or_else(|| panic!("compiler output missing: {err}"));
        let ours = err.find("error: building fx").unwrap();
        assert!(compiler < ours, "{err}");
    }
}

#[test]
fn build_every_supported_target() {
    let (_tmp, app) =
        fixture("name = \"fx\"\ntargets = [\"linuxu/x86_64\", \"xen/x86_64\", \"kvm/x86_64\"]\n", APP_MAIN);
    let o = unikit(&app, &["build"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("built ./build/fx_linuxu-x86_64 ("), "{out}");
    assert!(out.contains("built ./build/fx_qemu-x86_64 ("), "{out}");
    // xen boots the same image as qemu (its Xen PV notes).
    assert!(out.contains("built ./build/fx_xen-x86_64 ("), "{out}");
    assert!(app.join("build/fx_linuxu-x86_64").is_file());
    assert!(app.join("build/fx_qemu-x86_64").is_file());
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn run_linuxu_exit_code_and_output() {
    let (_tmp, app) = fixture(QEMU_LINUXU, APP_MAIN);
    let o = unikit(&app, &["run", "--plat", "linuxu", "-q"]);
    assert_eq!(stdout(&o), "hello from fixture\n");
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn run_qemu_strips_marker_and_reports_panic() {
    let manifest = "name = \"fx\"\ntargets = [\"qemu/x86_64\"]\nenv = { A = \"1\" }\nmemory = \"16M\"\n";
    let (_tmp, app) = fixture(manifest, APP_MAIN);
    let (_bin, path) = fake_qemu();
    let args_file = app.join("qemu-args");
    let o = Command::new(BIN)
        .current_dir(&app)
        .env("PATH", &path)
        .env("FAKE_QEMU_MODE", "marker")
        .env("FAKE_QEMU_ARGS", &args_file)
        .args(["run", "-q", "--accel", "tcg", "-m", "32M", "--", "x", "y z"])
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "booting\nbyeafter\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("unikit: guest panic (exit code 3)"), "{}", stderr(&o));
    let argv = fs::read_to_string(&args_file).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert!(argv.windows(2).any(|w| w == ["-m", "32M"]), "{argv:?}");
    assert!(argv.windows(4).any(|w| w == ["-accel", "tcg", "-cpu", "max"]), "{argv:?}");
    assert!(argv.windows(2).any(|w| w == ["-kernel", "./build/fx_qemu-x86_64"]), "{argv:?}");
    assert_eq!(argv.last(), Some(&"unikit.quiet A=1 -- x \"y z\""), "{argv:?}");
}

#[test]
fn run_qemu_without_marker() {
    let (_tmp, app) = fixture(QEMU_LINUXU, APP_MAIN);
    let (_bin, path) = fake_qemu();
    let run = |mode: &str| {
        Command::new(BIN)
            .current_dir(&app)
            .env("PATH", &path)
            .env("FAKE_QEMU_MODE", mode)
            .env("FAKE_QEMU_ARGS", app.join("qemu-args"))
            .args(["run", "--plat", "qemu", "-q", "--accel", "tcg"])
            .output()
            .unwrap()
    };
    let o = run("nomarker");
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: no exit marker"), "{}", stderr(&o));
    let o = run("zero");
    assert_eq!(stdout(&o), "quiet\n");
    assert_error(&o, "error: guest stopped without reporting an exit code (qemu exit status 0)");
}

/// Prints a backtrace whose addresses are in its own `fixture::deep::crash_site`.
const APP_BACKTRACE: &str = r#"#![no_std]
#![no_main]
mod deep {
    #[inline(never)]
    pub fn crash_site(x: usize) -> usize {
        core::hint::black_box(x).wrapping_mul(3) ^ 0x55
    }
}
fn hex(addr: usize) {
    let mut b = [0u8; 16];
    for (i, d) in b.iter_mut().enumerate() {
        *d = b"0123456789abcdef"[(addr >> (60 - 4 * i)) & 0xf];
    }
    unikit::write(&b);
}
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let f = deep::crash_site as usize;
    core::hint::black_box(deep::crash_site(1));
    unikit::write(b"backtrace:\n  #0  0x");
    hex(f + 2);
    unikit::write(b" (faulting instruction)\n  #1  0x");
    hex(f + 1);
    unikit::write(b"\n  #2  0x0000000000000010\ndone\n");
    unikit::exit(102)
}
"#;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn run_annotates_backtraces() {
    let (_tmp, app) = fixture(QEMU_LINUXU, APP_BACKTRACE);
    let o = unikit(&app, &["run", "--plat", "linuxu", "-q"]);
    assert_eq!(o.status.code(), Some(102), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[1].ends_with(" (faulting instruction) fixture::deep::crash_site+0x2"), "{out}");
    assert!(lines[2].ends_with(" fixture::deep::crash_site+0x1"), "{out}");
    assert_eq!(lines[3], "  #2  0x0000000000000010", "{out}");
    assert_eq!(lines[4], "done");
    // The image is stripped; its symbols are next to it.
    let image = fs::read(app.join("build/fx_linuxu-x86_64")).unwrap();
    let sym = fs::read(app.join("build/fx_linuxu-x86_64.sym")).unwrap();
    assert!(image.len() < sym.len());
    assert_eq!(image[0x28..0x30], [0; 8], "e_shoff");
    assert!(!image.windows(10).any(|w| w == b"crash_site"));
    assert!(sym.windows(10).any(|w| w == b"crash_site"));

    // On a VM console (`\r\n`, exit marker): the return address into
    // crash_site in the qemu image (linked without page-aligned file
    // offsets, so at its own address), from that image's symbols.
    let linuxu_addr = u64::from_str_radix(&lines[2]["  #1  0x".len().."  #1  0x".len() + 16], 16).unwrap();
    let linuxu_site = symbol(&sym, "crash_site").expect("crash_site in the linuxu symbols");
    let o = unikit(&app, &["build", "--plat", "qemu", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let qemu_sym = fs::read(app.join("build/fx_qemu-x86_64.sym")).unwrap();
    let qemu_site = symbol(&qemu_sym, "crash_site").expect("crash_site in the qemu symbols");
    let addr = format!("{:016x}", qemu_site + (linuxu_addr - linuxu_site));
    let addr = addr.as_str();
    let (_bin, path) = fake_qemu();
    let o = Command::new(BIN)
        .current_dir(&app)
        .env("PATH", &path)
        .env("FAKE_QEMU_MODE", "backtrace")
        .env("FAKE_QEMU_ADDR", addr)
        .env("FAKE_QEMU_ARGS", app.join("qemu-args"))
        .args(["run", "--plat", "qemu", "-q", "--accel", "tcg"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(102), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("backtrace:\r\n  #1  0x{addr} fixture::deep::crash_site+0x1\r\n"));
}

#[test]
fn platforms_survives_a_closed_stdout() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_unikit"))
        .arg("platforms")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// The value of the first ELF64 symbol whose name contains `needle`.
fn symbol(elf: &[u8], needle: &str) -> Option<u64> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum) = (u64_at(0x28) as usize, u16_at(0x3a), u16_at(0x3c));
    let sh = |i: usize| shoff + i * shentsize;
    let symtab = (0..shnum).find(|&i| u32_at(sh(i) + 4) == 2)?;
    let strtab = sh(u32_at(sh(symtab) + 40) as usize);
    let (str_off, sym_off, sym_size) =
        (u64_at(strtab + 24) as usize, u64_at(sh(symtab) + 24) as usize, u64_at(sh(symtab) + 32) as usize);
    (sym_off..sym_off + sym_size).step_by(24).find_map(|s| {
        let name_at = str_off + u32_at(s) as usize;
        let end = elf[name_at..].iter().position(|&b| b == 0)?;
        let name = std::str::from_utf8(&elf[name_at..name_at + end]).ok()?;
        name.contains(needle).then(|| u64_at(s + 8))
    })
}
