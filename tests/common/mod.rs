//! What the CLI's end-to-end tests share (crates/cli/tests/cli.rs,
//! tests/fc.rs, tests/xen.rs): the `unikit` binary, output helpers, and a
//! buildable project against a stand-in `unikit` crate, so that the CLI's
//! build path runs without a guest kernel.
#![allow(dead_code)] // each test binary uses its own part

use std::fs;
use std::path::PathBuf;
use std::process::Output;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_unikit");

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure: exit 125, an `error:` line, and no panic.
#[track_caller]
pub fn assert_error(o: &Output, expected: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(125), "stderr: {err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "no error line in: {err}");
    assert!(err.contains(expected), "expected {expected:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

const STUB_CARGO: &str = r#"[package]
name = "unikit"
version = "0.0.0"
edition = "2021"

[features]
plat-kvm = []
plat-linuxu = []
"#;

/// Puts `unikit-<k>.ld` on the link search path, as the real platform crates do.
const STUB_BUILD: &str = r#"fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    for k in ["kvm", "linuxu"] {
        std::fs::write(format!("{out}/unikit-{k}.ld"), "ENTRY(_start)\n").unwrap();
    }
    println!("cargo:rustc-link-search=native={out}");
}
"#;

/// `write` and `exit` as Linux system calls (what a linuxu image can run).
const STUB_LIB: &str = r#"#![no_std]
use core::arch::asm;

pub fn write(s: &[u8]) {
    unsafe { asm!("syscall", inlateout("rax") 1usize => _, in("rdi") 1usize, in("rsi") s.as_ptr(),
                  in("rdx") s.len(), lateout("rcx") _, lateout("r11") _) };
}

pub fn exit(code: i32) -> ! {
    unsafe { asm!("syscall", in("rax") 231usize, in("rdi") code as usize, options(noreturn)) }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { exit(101) }
"#;

/// An app that only spins: enough for tests that check what the CLI does
/// around the guest (configs, fake hypervisors).
pub const APP_SPIN: &str =
    "#![no_std]\n#![no_main]\nextern crate unikit;\n#[no_mangle]\npub extern \"C\" fn _start() -> ! { loop {} }\n";

/// A buildable project (`<tmp>/app`) against the stand-in `unikit` crate.
pub fn fixture(manifest: &str, main_rs: &str) -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let stub = tmp.path().join("unikit");
    fs::create_dir_all(stub.join("src")).unwrap();
    fs::write(stub.join("Cargo.toml"), STUB_CARGO).unwrap();
    fs::write(stub.join("build.rs"), STUB_BUILD).unwrap();
    fs::write(stub.join("src/lib.rs"), STUB_LIB).unwrap();
    let app = tmp.path().join("app");
    fs::create_dir_all(app.join("src")).unwrap();
    fs::write(
        app.join("Cargo.toml"),
        "[package]\nname = \"fixture\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         [dependencies]\nunikit = { path = \"../unikit\" }\n[workspace]\n",
    )
    .unwrap();
    fs::write(app.join("src/main.rs"), main_rs).unwrap();
    fs::write(app.join("unikit.toml"), manifest).unwrap();
    (tmp, app)
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `unikit ARGS`, checked not to have panicked.
pub fn unikit_args(args: &[&str]) -> Output {
    let o = std::process::Command::new(BIN).args(args).output().expect("cannot start unikit");
    assert!(!stderr(&o).contains("panicked"), "the CLI panicked:\n{}", stderr(&o));
    o
}

/// A guest run's exit code and console lines; the exit marker never
/// leaks, and a firmware-booted guest powered off through its ACPI tables.
#[track_caller]
pub fn expect_console(o: &Output, code: i32, needles: &[&str]) {
    let ctx = format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", o.status.code(), stdout(o), stderr(o));
    assert_eq!(o.status.code(), Some(code), "wrong exit code\n{ctx}");
    for n in needles {
        assert!(stdout(o).contains(n), "missing {n:?} in the console\n{ctx}");
    }
    assert!(!stdout(o).contains("_unikit:exit"), "exit marker leaked to stdout\n{ctx}");
    assert!(!stdout(o).contains("ACPI power-off:"), "ACPI power-off failed\n{ctx}");
}
