//! `unikit run --exec` / `unikit build --exec` end to end, without a guest
//! kernel: the real binary on bad programs and rootfs folders (one `error:`
//! line, exit 125, before anything is built), and a run and a build with a
//! stand-in loader project ($UNIKIT_EXEC_LOADER) and a stand-in QEMU, to
//! check what the guest is handed: the initrd's entries and the command line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

#[path = "../../../tests/common/mod.rs"]
mod common;
use common::{APP_SPIN, BIN, assert_error, fixture, stderr, stdout};

/// Runs unikit in `dir`; a loader that does not exist unless `loader` says
/// otherwise, so that nothing here can start a real build by mistake.
fn unikit(dir: &Path, loader: Option<&Path>, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .env("UNIKIT_EXEC_LOADER", loader.unwrap_or(Path::new("/nonexistent/unikit-exec-loader")))
        .args(args)
        .output()
        .expect("run unikit")
}

/// A host check failed: exit 125 and exactly one line, `error: <expected...>`.
#[track_caller]
fn one_error_line(o: &Output, expected: &str) {
    let err = assert_error(o, expected);
    assert_eq!(err.lines().count(), 1, "more than one line: {err}");
    assert!(stdout(o).is_empty(), "{}", stdout(o));
}

/// A minimal ELF64 header with one program header table of `phdrs`
/// (each 56 bytes), padded with `tail`.
fn elf(class: u8, e_type: u16, machine: u16, entry: u64, phdrs: &[[u8; 56]], tail: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', class, 1, 1, 0]);
    f[0x10..0x12].copy_from_slice(&e_type.to_le_bytes());
    f[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
    f[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
    f[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
    f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for p in phdrs {
        f.extend_from_slice(p);
    }
    f.extend_from_slice(tail);
    f
}

/// `PT_LOAD` of the first `size` bytes of the file at 0x400000.
fn load(size: u64) -> [u8; 56] {
    let mut p = [0u8; 56];
    p[0..4].copy_from_slice(&1u32.to_le_bytes());
    p[4..8].copy_from_slice(&5u32.to_le_bytes());
    p[16..24].copy_from_slice(&0x40_0000u64.to_le_bytes());
    p[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
    p[32..40].copy_from_slice(&size.to_le_bytes());
    p[40..48].copy_from_slice(&size.to_le_bytes());
    p[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
    p
}

/// A static x86_64 executable the host checks accept (it would not run).
fn static_exe() -> Vec<u8> {
    elf(2, 2, 62, 0x40_0078, &[load(0x80)], &[0xf4; 8])
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_file_and_not_a_regular_file() {
    let t = TempDir::new().unwrap();
    one_error_line(&unikit(t.path(), None, &["run", "--exec", "nope"]), "error: --exec nope: no such file");
    fs::create_dir(t.path().join("d")).unwrap();
    one_error_line(&unikit(t.path(), None, &["run", "--exec", "d"]), "error: --exec d: is a directory, not a program");
    one_error_line(
        &unikit(t.path(), None, &["build", "--exec", "/dev/null"]),
        "error: --exec /dev/null: not a regular file",
    );
}

#[test]
fn not_elf_or_truncated() {
    let t = TempDir::new().unwrap();
    write(t.path(), "text", b"hello\n");
    one_error_line(&unikit(t.path(), None, &["run", "--exec", "text"]), "error: --exec text: not an ELF file");
    write(t.path(), "script", b"#!/bin/sh\necho hi\n");
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "script"]),
        "error: --exec script: a script (#!/bin/sh), not an ELF program",
    );
    write(t.path(), "short", &static_exe()[..30]);
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "short"]),
        "error: --exec short: truncated ELF file (30 bytes, shorter than an ELF header)",
    );
    // A real program (this very tool), cut after its program headers.
    let me = fs::read(BIN).unwrap();
    write(t.path(), "cut", &me[..4096]);
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "cut"]),
        "error: --exec cut: truncated or corrupt ELF file: ",
    );
}

#[test]
fn wrong_class_or_machine_or_type() {
    let t = TempDir::new().unwrap();
    write(t.path(), "i386", &elf(1, 2, 3, 0x8048000, &[], &[0; 64]));
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "i386"]),
        "error: --exec i386: a 32-bit ELF program (i386, e_machine 3): only 64-bit x86_64 programs can be run",
    );
    write(t.path(), "arm64", &elf(2, 2, 183, 0x40_0078, &[load(0x80)], &[0; 8]));
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "arm64"]),
        "error: --exec arm64: an ELF program for AArch64, e_machine 183, not x86_64",
    );
    write(t.path(), "obj.o", &elf(2, 1, 62, 0, &[], &[]));
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "obj.o"]),
        "error: --exec obj.o: an object file (ET_REL), not a program",
    );
    write(t.path(), "lib.so", &elf(2, 3, 62, 0, &[load(0x80)], &[0; 8]));
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "lib.so"]),
        "error: --exec lib.so: a shared library (ET_DYN without an entry point), not a program",
    );
}

#[test]
fn dynamic_program_needs_its_interpreter_in_the_rootfs() {
    let t = TempDir::new().unwrap();
    // This tool is dynamically linked against the host's glibc.
    let interp = "/lib64/ld-linux-x86-64.so.2";
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", BIN]),
        &format!("dynamically linked (interpreter {interp}) and no rootfs given: pass --rootfs DIR with {interp}"),
    );
    fs::create_dir(t.path().join("root")).unwrap();
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", BIN, "--rootfs", "root"]),
        &format!("dynamically linked, and its interpreter {interp} is missing from the rootfs root"),
    );
}

#[test]
fn rootfs_must_be_a_directory() {
    let t = TempDir::new().unwrap();
    write(t.path(), "prog", &static_exe());
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "prog", "--rootfs", "prog"]),
        "error: --rootfs prog: not a directory",
    );
    one_error_line(
        &unikit(t.path(), None, &["build", "--exec", "prog", "--rootfs", "gone"]),
        "error: --rootfs gone: no such directory",
    );
    // The rootfs has another file where the program would go.
    write(t.path(), "root/bin/prog", b"");
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "prog", "--rootfs", "root"]),
        "error: --exec prog: the rootfs root already has a different file at /bin/prog",
    );
}

#[test]
fn unsupported_platforms_and_flags() {
    let t = TempDir::new().unwrap();
    write(t.path(), "prog", &static_exe());
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "prog", "--plat", "linuxu"]),
        "error: --exec is not supported on linuxu yet",
    );
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "prog", "--plat", "solo5"]),
        "error: --exec is not supported on solo5 yet (Solo5 hvt has no initrd to carry the program)",
    );
    // --tender means solo5.
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "prog", "--tender", "unikit-hvt"]),
        "error: --exec is not supported on solo5 yet",
    );
    one_error_line(
        &unikit(t.path(), None, &["build", "--exec", "prog", "--plat", "linuxu"]),
        "not supported on linuxu",
    );
    assert_error(&unikit(t.path(), None, &["run", "--exec", "prog", "-C", "."]), "cannot be used with");
    // clap's own error, with its usage lines.
    assert_error(
        &unikit(t.path(), None, &["run", "--exec", "prog", "-e", "1A=b"]),
        "error: invalid value '1A=b' for '--env <KEY=VALUE>': invalid env variable name '1A'",
    );
    assert_error(&unikit(t.path(), None, &["run", "--exec", "prog", "-e", "AB"]), "expected KEY=VALUE");
}

#[test]
fn missing_loader_project() {
    let t = TempDir::new().unwrap();
    write(t.path(), "prog", &static_exe());
    one_error_line(
        &unikit(t.path(), None, &["run", "--exec", "prog"]),
        "error: the loader project for --exec is missing: $UNIKIT_EXEC_LOADER is /nonexistent/unikit-exec-loader",
    );
}

#[test]
fn manifest_exec_errors_point_into_the_file() {
    let t = TempDir::new().unwrap();
    fs::write(t.path().join("unikit.toml"), "name = \"app\"\nexec = \"bin/app\"\n").unwrap();
    one_error_line(&unikit(t.path(), None, &["run"]), "error: ./unikit.toml:2:8: exec \"bin/app\": no such file");
    write(t.path(), "bin/app", b"MZ not elf");
    one_error_line(&unikit(t.path(), None, &["build"]), "error: ./unikit.toml:2:8: exec \"bin/app\": not an ELF file");
    write(t.path(), "bin/app", &static_exe());
    fs::write(t.path().join("unikit.toml"), "name = \"app\"\nexec = \"bin/app\"\nrootfs = \"bin/app\"\n").unwrap();
    one_error_line(&unikit(t.path(), None, &["run"]), "error: ./unikit.toml:3:10: rootfs \"bin/app\": not a directory");
    fs::write(t.path().join("unikit.toml"), "name = \"app\"\nexec = \"bin/app\"\ntargets = [\"solo5/x86_64\"]\n")
        .unwrap();
    one_error_line(&unikit(t.path(), None, &["run"]), "./unikit.toml:3:12: target 'solo5/x86_64': Linux programs");
}

/// The stand-in loader: a buildable project named like crates/exec.
fn loader() -> (TempDir, PathBuf) {
    // Its memory is not --exec's default (64M): the CLI decides that.
    fixture("name = \"exec\"\ntargets = [\"qemu/x86_64\", \"fc/x86_64\", \"xen/x86_64\"]\nmemory = \"16M\"\n", APP_SPIN)
}

/// A fake `qemu-system-x86_64` that records its arguments, keeps a copy of
/// its initrd and exits with the guest's code 7 through the exit marker.
fn fake_qemu(dir: &Path) -> std::ffi::OsString {
    let script = dir.join("qemu-system-x86_64");
    fs::write(
        &script,
        r#"#!/bin/sh
printf '%s\n' "$@" > "$FAKE_QEMU_ARGS"
prev=
for a in "$@"; do
    [ "$prev" = "-initrd" ] && cp "$a" "$FAKE_QEMU_INITRD"
    prev=$a
done
printf 'program ran\n'
printf '\033_unikit:exit=7\033\\'
exit 0
"#,
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).unwrap()
}

/// (name, mode, size) of each entry of a cpio newc archive.
fn cpio_entries(a: &[u8]) -> Vec<(String, u32, usize)> {
    let hex = |b: &[u8]| usize::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let h = &a[at..at + 110];
        assert_eq!(&h[..6], b"070701");
        let (mode, size, namesize) = (hex(&h[14..22]), hex(&h[54..62]), hex(&h[94..102]));
        let name = String::from_utf8(a[at + 110..at + 110 + namesize - 1].to_vec()).unwrap();
        if name == "TRAILER!!!" {
            return out;
        }
        let data_at = (at + 110 + namesize).div_ceil(4) * 4;
        out.push((name, mode as u32, size));
        at = (data_at + size).div_ceil(4) * 4;
    }
}

#[test]
fn run_hands_the_guest_the_program_its_args_and_env() {
    let (_l, loader_dir) = loader();
    let t = TempDir::new().unwrap();
    let prog = write(t.path(), "hello", &static_exe());
    write(t.path(), "root/etc/motd", b"hi\n");
    fs::create_dir_all(t.path().join("root/tmp")).unwrap();
    let path = fake_qemu(t.path());
    let args_file = t.path().join("qemu-args");
    let initrd_copy = t.path().join("initrd.cpio");
    let o = Command::new(BIN)
        .current_dir(t.path())
        .env("UNIKIT_EXEC_LOADER", &loader_dir)
        .env("PATH", &path)
        .env("FAKE_QEMU_ARGS", &args_file)
        .env("FAKE_QEMU_INITRD", &initrd_copy)
        .args(["run", "-q", "--accel", "tcg", "--exec", s(&prog), "--rootfs", "root", "-e", "GREETING=hi there"])
        .args(["-e", "B=2", "--", "3", "two words"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "program ran\n");
    let argv = fs::read_to_string(&args_file).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    // --exec's default memory, the loader image, and the command line.
    assert!(argv.windows(2).any(|w| w == ["-m", "64M"]), "{argv:?}");
    let kernel = argv.windows(2).find(|w| w[0] == "-kernel").map(|w| w[1]).unwrap();
    assert!(kernel.ends_with("/unikit/exec/exec_qemu-x86_64"), "{kernel}");
    assert_eq!(argv.last(), Some(&"unikit.quiet B=2 \"GREETING=hi there\" -- /bin/hello 3 \"two words\""));
    // The initrd: the rootfs, then /bin (missing there) and the program.
    let initrd = argv.windows(2).find(|w| w[0] == "-initrd").map(|w| w[1]).unwrap();
    assert!(!Path::new(initrd).exists(), "the run's initrd is removed after it: {initrd}");
    let a = fs::read(&initrd_copy).unwrap();
    let names: Vec<(String, u32, usize)> = cpio_entries(&a);
    let names: Vec<(&str, u32)> = names.iter().map(|(n, m, _)| (n.as_str(), *m & 0o170000)).collect();
    assert_eq!(
        names,
        [("etc", 0o040000), ("etc/motd", 0o100000), ("tmp", 0o040000), ("bin", 0o040000), ("bin/hello", 0o100000)]
    );
    assert_eq!(cpio_entries(&a)[4].2, static_exe().len());

    // A program inside the rootfs keeps its path there; -m wins.
    let inner = write(t.path(), "root/usr/sbin/server", &static_exe());
    let o = Command::new(BIN)
        .current_dir(t.path())
        .env("UNIKIT_EXEC_LOADER", &loader_dir)
        .env("PATH", &path)
        .env("FAKE_QEMU_ARGS", &args_file)
        .env("FAKE_QEMU_INITRD", &initrd_copy)
        .args(["run", "-q", "--accel", "tcg", "-m", "32M", "--exec", s(&inner), "--rootfs", "root"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let argv = fs::read_to_string(&args_file).unwrap();
    assert!(argv.contains("\n-m\n32M\n"), "{argv}");
    assert!(argv.ends_with("unikit.quiet -- /usr/sbin/server\n"), "{argv}");
    let names: Vec<String> = cpio_entries(&fs::read(&initrd_copy).unwrap()).into_iter().map(|e| e.0).collect();
    assert!(names.contains(&"usr/sbin/server".to_string()) && !names.iter().any(|n| n.starts_with("bin")), "{names:?}");
}

#[test]
fn build_writes_image_initrd_and_command_line() {
    let (_l, loader_dir) = loader();
    let t = TempDir::new().unwrap();
    write(t.path(), "my-prog", &static_exe());
    let o = unikit(
        t.path(),
        Some(&loader_dir),
        &["build", "-q", "--exec", "my-prog", "--plat", "qemu", "-e", "GREETING=hi", "--", "5"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = t.path().join("build");
    for f in ["my-prog_qemu-x86_64", "my-prog_qemu-x86_64.sym", "my-prog_qemu-x86_64.initrd"] {
        assert!(out.join(f).is_file(), "{f} missing: {}", stdout(&o));
    }
    assert_eq!(fs::read_to_string(out.join("my-prog_qemu-x86_64.cmdline")).unwrap(), "GREETING=hi -- /bin/my-prog 5\n");
    let names: Vec<String> =
        cpio_entries(&fs::read(out.join("my-prog_qemu-x86_64.initrd")).unwrap()).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["bin", "bin/my-prog"]);
    assert!(stdout(&o).contains("my-prog_qemu-x86_64.initrd (the initrd)"), "{}", stdout(&o));

    // A project whose manifest names the program: its name, its folder, every loader target.
    fs::write(t.path().join("unikit.toml"), "name = \"app\"\nexec = \"my-prog\"\nargs = [\"x\"]\n").unwrap();
    let o = unikit(t.path(), Some(&loader_dir), &["build", "-q", "--out", "images"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for p in ["qemu", "fc", "xen"] {
        let note = t.path().join(format!("images/app_{p}-x86_64.cmdline"));
        assert_eq!(fs::read_to_string(&note).unwrap(), "-- /bin/my-prog x\n", "{}", note.display());
    }
    // -e and ARGS mean nothing to an app's build.
    fs::write(t.path().join("unikit.toml"), "name = \"a\"\ntargets = [\"qemu/x86_64\"]\n").unwrap();
    one_error_line(
        &unikit(t.path(), Some(&loader_dir), &["build", "-e", "A=1"]),
        "-e and -- ARGS only apply to `unikit build --exec`",
    );
}

/// Firecracker gets the same: the loader image, the initrd, the command line.
#[test]
#[cfg_attr(
    unikit_no_kvm,
    ignore = "SKIPPED: /dev/kvm is not usable on this host (unikit checks it before starting Firecracker)"
)]
fn run_on_firecracker_hands_over_the_same() {
    let (_l, loader_dir) = loader();
    let t = TempDir::new().unwrap();
    let prog = write(t.path(), "hello", &static_exe());
    let fc = t.path().join("firecracker");
    fs::write(
        &fc,
        r#"#!/bin/sh
cp "$3" "$FAKE_FC_CONFIG"
rd=$(sed -n 's/.*"initrd_path": *"\([^"]*\)".*/\1/p' "$3")
cp "$rd" "$FAKE_FC_INITRD"
printf '\033_unikit:exit=4\033\\\r\n'
exit 0
"#,
    )
    .unwrap();
    fs::set_permissions(&fc, fs::Permissions::from_mode(0o755)).unwrap();
    let (config, initrd) = (t.path().join("config.json"), t.path().join("initrd"));
    let o = Command::new(BIN)
        .current_dir(t.path())
        .env("UNIKIT_EXEC_LOADER", &loader_dir)
        .env("FAKE_FC_CONFIG", &config)
        .env("FAKE_FC_INITRD", &initrd)
        .args(["run", "-q", "--firecracker", s(&fc), "--exec", s(&prog), "-e", "K=v", "--", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    let boot = &cfg["boot-source"];
    assert!(boot["kernel_image_path"].as_str().unwrap().ends_with("/unikit/exec/exec_fc-x86_64"), "{boot}");
    assert!(boot["boot_args"].as_str().unwrap().ends_with("unikit.quiet K=v -- /bin/hello x"), "{boot}");
    assert_eq!(cfg["machine-config"]["mem_size_mib"], 64, "{cfg}");
    let names: Vec<String> = cpio_entries(&fs::read(&initrd).unwrap()).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["bin", "bin/hello"]);
}

/// And Xen (a fake dom0): the guest type asked for is passed on, the initrd
/// is the domain's ramdisk.
#[test]
fn run_on_xen_hands_over_the_same() {
    let (_l, loader_dir) = loader();
    let t = TempDir::new().unwrap();
    let prog = write(t.path(), "hello", &static_exe());
    let xl = t.path().join("xl");
    fs::write(
        &xl,
        r#"#!/bin/sh
[ "$1" = create ] || exit 2
cp "$4" "$FAKE_XL_CONFIG"
rd=$(sed -n 's/^ramdisk = "\(.*\)"$/\1/p' "$4")
cp "$rd" "$FAKE_XL_INITRD"
printf 'guest\n\033_unikit:exit=6\033\\\n'
echo "Domain 1 has shut down, reason code 0 0x0" >&2
exit 0
"#,
    )
    .unwrap();
    fs::set_permissions(&xl, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(t.path().join("capabilities"), "control_d\n").unwrap();
    let mut paths = vec![t.path().to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let (config, initrd) = (t.path().join("guest.cfg"), t.path().join("initrd"));
    let o = Command::new(BIN)
        .current_dir(t.path())
        .env("PATH", std::env::join_paths(paths).unwrap())
        .env("UNIKIT_XEN_CAPABILITIES", t.path().join("capabilities"))
        .env("UNIKIT_EXEC_LOADER", &loader_dir)
        .env("FAKE_XL_CONFIG", &config)
        .env("FAKE_XL_INITRD", &initrd)
        .args(["run", "-q", "--plat", "xen", "--exec", s(&prog), "--", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    // PV guests have no user mode: refused before anything runs.
    let pv = Command::new(BIN)
        .current_dir(t.path())
        .env(
            "PATH",
            std::env::join_paths(
                std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).chain([t.path().to_path_buf()]),
            )
            .unwrap(),
        )
        .env("UNIKIT_XEN_CAPABILITIES", t.path().join("capabilities"))
        .env("UNIKIT_EXEC_LOADER", &loader_dir)
        .args(["run", "-q", "--plat", "xen", "--xen-type", "pv", "--exec", s(&prog)])
        .output()
        .unwrap();
    assert_eq!(pv.status.code(), Some(125), "{}", stderr(&pv));
    assert!(stderr(&pv).contains("PV guests cannot run Linux programs yet"), "{}", stderr(&pv));
    let cfg = fs::read_to_string(&config).unwrap();
    assert!(cfg.contains("type = \"pvh\"\n"), "{cfg}");
    assert!(cfg.contains("memory = 64\n"), "{cfg}");
    assert!(cfg.contains("cmdline = \"unikit.quiet -- /bin/hello x\"\n"), "{cfg}");
    assert!(
        cfg.lines().any(|l| l.starts_with("kernel = \"") && l.ends_with("/unikit/exec/exec_xen-x86_64\"")),
        "{cfg}"
    );
    let names: Vec<String> = cpio_entries(&fs::read(&initrd).unwrap()).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["bin", "bin/hello"]);
}
