//! Boot tests: build real images with the real `unikit` binary and boot them
//! on every platform this machine can run, checking the console output and
//! the exit code the host sees.
//!
//! KVM tests are compiled as ignored ("skipped") where /dev/kvm is not
//! usable (see crates/cli/build.rs); TCG and linuxu tests always run.
use std::path::PathBuf;
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn unikit(project: &str, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_unikit"))
        .arg("run")
        .arg("-C")
        .arg(repo().join(project))
        .args(args)
        .output()
        .expect("cannot start unikit");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked"), "the CLI panicked:\n{}", r.stderr);
    r
}

impl Run {
    #[track_caller]
    fn expect(&self, code: i32, needles: &[&str]) -> &Self {
        let ctx = format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr);
        assert_eq!(self.code, code, "wrong exit code\n{ctx}");
        for n in needles {
            assert!(self.stdout.contains(n), "missing {n:?} in the console\n{ctx}");
        }
        assert!(!self.stdout.contains("\x1b_unikit:exit"), "exit marker leaked to stdout\n{ctx}");
        self
    }
}

/// `unikit run` arguments selecting a platform (and QEMU accelerator).
const KVM: &[&str] = &["--plat", "qemu", "--accel", "kvm"];
const TCG: &[&str] = &["--plat", "qemu", "--accel", "tcg"];
const LINUXU: &[&str] = &["--plat", "linuxu"];

fn with(plat: &[&str], rest: &[&str]) -> Vec<String> {
    plat.iter().chain(rest).map(|s| s.to_string()).collect()
}

fn hello(plat: &[&str], banner: &str, hypervisor: &str) {
    let args = with(plat, &["--", "one", "two words", "--exit", "3"]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    unikit("examples/hello", &argv).expect(
        3,
        &[
            &format!("Hello from unikit on {banner}!"),
            &format!("(hypervisor: {hypervisor})"),
            "argv[1] = \"one\"",
            "argv[2] = \"two words\"",
            "argv[3] = \"--exit\"",
            "argv[4] = \"3\"",
        ],
    );
    let args = with(plat, &["-q"]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = unikit("examples/hello", &argv);
    r.expect(0, &[&format!("Hello from unikit on {banner}!")]);
    assert!(!r.stdout.contains("unikit 0."), "-q must silence the boot log:\n{}", r.stdout);
}

fn kernel_tests(plat: &[&str]) {
    let args = with(plat, &["-q"]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = unikit("tests/kernel-tests", &argv);
    r.expect(0, &["kernel-tests: 17 passed, 0 failed"]);
    assert!(!r.stdout.contains("FAILED"));
}

fn crash(plat: &[&str], mode: &str, code: i32, needles: &[&str]) {
    let args = with(plat, &["-q", "--", mode]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = unikit("tests/kernel-tests", &argv);
    r.expect(code, needles);
    assert!(r.stdout.contains("backtrace:") || mode == "deadlock", "no backtrace:\n{}", r.stdout);
}

fn panics(plat: &[&str]) {
    // Backtraces are symbolized by `unikit run` from the image's .sym file.
    crash(
        plat,
        "panic",
        101,
        &[
            "PANIC in thread 'main': deliberate panic from kernel-tests",
            "#0  0x",
            "__unikit_main+0x",
            "unikit_kernel::boot::start+0x",
        ],
    );
}

fn page_fault(plat: &[&str]) {
    crash(
        plat,
        "fault",
        102,
        &[
            "CPU EXCEPTION in thread 'main': page fault (#PF) (vector 14)",
            "fault address (cr2) 0x0000000000000010: write",
            "rip 0x",
        ],
    );
}

fn invalid_opcode(plat: &[&str]) {
    crash(plat, "ud2", 102, &["invalid opcode (#UD) (vector 6)", "(faulting instruction)"]);
}

fn stack_overflow(plat: &[&str]) {
    crash(
        plat,
        "stack-overflow",
        102,
        &[
            "CPU EXCEPTION in thread 'deep': page fault (#PF)",
            "STACK OVERFLOW: thread 'deep' ran past the bottom of its stack into the guard page",
        ],
    );
}

fn deadlock(plat: &[&str]) {
    crash(plat, "deadlock", 103, &["DEADLOCK: every thread is blocked"]);
}

fn threads(plat: &[&str]) {
    let args = with(plat, &["-q"]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    unikit("examples/threads", &argv).expect(0, &["wake order [1, 2, 0]", "threads: ok"]);
}

/// hello on QEMU microvm (Firecracker's shape: no PCI, virtio-mmio, no
/// firmware tables), through `unikit run`.
fn hello_microvm(accel: &[&str]) {
    let args = with(accel, &["--machine", "microvm", "-q", "--", "x", "--exit", "5"]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    unikit("examples/hello", &argv).expect(5, &["Hello from unikit on kvm!", "argv[1] = \"x\""]);
}

#[test]
fn tcg_microvm_hello() {
    hello_microvm(TCG);
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn kvm_microvm_hello() {
    hello_microvm(KVM);
}

/// Without QEMU's isa-debug-exit (Firecracker has none, and microvm has no
/// i8042 to reset through either) the guest must still stop the VM and
/// report its exit code on the console.
#[test]
fn microvm_stops_without_an_exit_device() {
    let st = Command::new(env!("CARGO_BIN_EXE_unikit"))
        .args(["build", "-q", "--plat", "qemu", "-C"])
        .arg(repo().join("examples/hello"))
        .status()
        .unwrap();
    assert!(st.success());
    let image = repo().join("examples/hello/build/hello_qemu-x86_64");
    let out = Command::new("timeout")
        .args([
            "60",
            "qemu-system-x86_64",
            "-M",
            "microvm,acpi=off",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .args(["-no-reboot", "-m", "16M", "-serial", "stdio", "-accel", "tcg", "-cpu", "max", "-kernel"])
        .arg(&image)
        .args(["-append", "unikit.quiet -- --exit 7"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "QEMU did not stop by itself:\n{stdout}");
    assert!(stdout.contains("\x1b_unikit:exit=7\x1b\\"), "no exit marker:\n{stdout}");
}

macro_rules! on_every_platform {
    ($($name:ident),* $(,)?) => {
        mod kvm {
            $(
                #[test]
                #[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
                fn $name() { super::$name(super::KVM) }
            )*
            #[test]
            #[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
            fn hello() { super::hello(super::KVM, "kvm", "KVM") }
        }
        mod tcg {
            $( #[test] fn $name() { super::$name(super::TCG) } )*
            #[test]
            fn hello() { super::hello(super::TCG, "kvm", "QEMU TCG") }
        }
        mod linuxu {
            $( #[test] fn $name() { super::$name(super::LINUXU) } )*
            #[test]
            fn hello() { super::hello(super::LINUXU, "linuxu", "none (Linux process)") }
        }
    };
}

on_every_platform!(kernel_tests, panics, page_fault, invalid_opcode, stack_overflow, deadlock, threads);

#[test]
fn tcg_boots_in_small_memory() {
    unikit("examples/hello", &["--plat", "qemu", "--accel", "tcg", "-m", "4M", "-q"])
        .expect(0, &["Hello from unikit on kvm!"]);
}

#[test]
fn qemu_out_of_memory_is_reported() {
    // Far too little RAM for the heap: the guest must say so and stop, not hang.
    let r = unikit("tests/kernel-tests", &["--plat", "qemu", "--accel", "tcg", "-m", "2M", "-q"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
}

#[test]
fn tcg_seabios() {
    // SeaBIOS leaves the legacy PIC and PIT running (IRQ0 on vector 8):
    // the kernel must tame them. A sleep gives the PIT time to fire.
    unikit("examples/threads", &["--plat", "qemu", "--accel", "tcg", "--firmware", "seabios", "-q"])
        .expect(0, &["threads: ok"]);
}

/// Boots hello with `-m SIZE` under `firmware`, killed after 60 s: either the
/// CLI refuses the size up front or the guest boots and exits 0. A silent
/// reset (QEMU's -no-reboot exit), a hang or a crash fails.
fn boots_or_is_refused(firmware: &str, size: &str) {
    let out = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_unikit"))
        .args(["run", "-C"])
        .arg(repo().join("examples/hello"))
        .args(["--plat", "qemu", "--accel", "tcg", "--firmware", firmware, "-m", size, "-q"])
        .output()
        .expect("cannot start unikit");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let ctx = format!("-m {size} under {firmware}: {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}", out.status);
    match out.status.code() {
        Some(0) => assert!(stdout.contains("Hello from unikit"), "{ctx}"),
        Some(125) => assert!(stderr.contains("is too small"), "{ctx}"),
        _ => panic!("neither booted nor refused: {ctx}"),
    }
}

#[test]
fn tcg_every_small_memory_size_boots_or_is_refused() {
    // Issue 11.6: under SeaBIOS, 1344K-1472K reset and 1536K hung (the PVH
    // loader left SeaBIOS's POST data in .bss, which the stub now zeroes).
    for firmware in ["seabios", "qboot"] {
        for kib in (1280..=2048).step_by(64) {
            boots_or_is_refused(firmware, &format!("{kib}K"));
        }
        boots_or_is_refused(firmware, "3G");
    }
}
