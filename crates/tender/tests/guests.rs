//! The tender against real KVM with hand-assembled guests
//! (`unikit_hvt::testguest`): output, exit status, hostile hypercall
//! arguments, unexpected VM exits and refused executables. Skipped, with
//! the reason, where /dev/kvm is unusable.

use std::path::PathBuf;
use std::process::{Command, Output};

use unikit_hvt::testguest::*;

fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm: {e}"))
}

macro_rules! need_kvm {
    () => {
        if let Err(why) = kvm_usable() {
            eprintln!("skipped: KVM is not usable here ({why})");
            return;
        }
    };
}

fn write(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

fn tender(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unikit-hvt")).args(args).output().unwrap()
}

fn run(image: &[u8], extra: &[&str]) -> (i32, String, String) {
    let (_d, p) = write("guest.hvt", image);
    let mut a: Vec<&std::ffi::OsStr> = vec!["--mem=2".as_ref()];
    a.push(p.as_os_str());
    a.extend(extra.iter().map(std::ffi::OsStr::new));
    let o = tender(&a);
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.code().is_some(), "killed by a signal ({:?}): {err}", o.status);
    (o.status.code().unwrap(), out, err)
}

#[test]
fn hello_prints_and_exits_with_the_guests_status() {
    need_kvm!();
    let (code, out, err) = run(&hello(b"hello from a hand-made guest\n", 7), &["a", "b"]);
    assert_eq!((code, out.as_str(), err.as_str()), (7, "hello from a hand-made guest\n", ""));
    // Negative statuses become the low byte, as exit(3) does.
    let (code, _, _) = run(&hello(b"", -1), &[]);
    assert_eq!(code, 255);
}

#[test]
fn bad_buffer_pointer_is_refused() {
    need_kvm!();
    let (code, out, err) = run(&bad_puts(0x7fff_0000_0000, 16), &[]);
    assert_eq!(code, 121);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "unikit-hvt: guest passed an invalid puts buffer (16 bytes at 0x7fff00000000, outside guest memory; guest memory is 0x200000 bytes)\n"
    );
    // A length that makes the end wrap around.
    let (code, _, err) = run(&bad_puts(MESSAGE, u64::MAX - 0x100), &[]);
    assert_eq!(code, 121);
    assert!(err.contains("invalid puts buffer"), "{err}");
}

#[test]
fn bad_struct_pointer_is_refused() {
    need_kvm!();
    for (nr, name) in [
        (1u16, "walltime"),
        (2, "puts"),
        (3, "poll"),
        (4, "block_write"),
        (5, "block_read"),
        (6, "net_write"),
        (7, "net_read"),
        (8, "halt"),
    ] {
        let (code, _, err) = run(&bad_struct(nr, 0xffff_fff0), &[]);
        assert_eq!(code, 121, "{name}: {err}");
        assert!(
            err.starts_with(&format!(
                "unikit-hvt: guest passed an invalid {name} argument pointer (struct at 0xfffffff0"
            )),
            "{err}"
        );
    }
    // Writing results into the guest's read-only text is refused too.
    let (code, _, err) = run(&bad_struct(1, CODE as u32), &[]);
    assert_eq!(code, 121);
    assert!(err.contains("invalid walltime argument pointer") && err.contains("read-only"), "{err}");
    // Hypercall numbers 0 and 9..: port 0x500 is reserved.
    let (code, _, err) = run(&bad_struct(0, 0x1000), &[]);
    assert_eq!(code, 121);
    assert!(err.contains("invalid hypercall number (0"), "{err}");
}

#[test]
fn unexpected_exits_are_reported() {
    need_kvm!();
    // out %al, $0x3f8 (a serial port): not a hypercall.
    let serial = [0xba, 0xf8, 0x03, 0, 0, 0xee, 0xf4];
    let (code, _, err) = run(&guest(&serial, 0, 0, 0, b"", &hvt_notes(&[])), &[]);
    assert_eq!(code, 122);
    assert!(
        err.starts_with(
            "unikit-hvt: guest wrote 1 byte(s) to I/O port 0x3f8, which is not an hvt hypercall port at rip 0x"
        ),
        "{err}"
    );
    // hlt
    let (code, _, err) = run(&guest(&[0xf4], 0, 0, 0, b"", &hvt_notes(&[])), &[]);
    assert_eq!(code, 122);
    assert!(err.contains("guest executed hlt"), "{err}");
    // mov %eax, 0x100000: a write to its own (read-only) text.
    let (code, _, err) =
        run(&guest(&[0x89, 0x04, 0x25, 0x00, 0x00, 0x10, 0x00, 0xf4], 0, 0, 0, b"", &hvt_notes(&[])), &[]);
    assert_eq!(code, 122);
    assert!(err.contains("guest wrote to its read-only memory (text or rodata) at 0x100000"), "{err}");
    // ud2 with no IDT: a triple fault.
    let (code, _, err) = run(&guest(&[0x0f, 0x0b], 0, 0, 0, b"", &hvt_notes(&[])), &[]);
    assert_eq!(code, 122);
    assert!(err.contains("triple fault"), "{err}");
}

#[test]
fn executables_without_the_right_notes_are_refused() {
    // No KVM needed: the notes are checked first.
    let code = hypercalls(&[]);
    let cases: [(Vec<Vec<u8>>, &str); 4] = [
        (
            vec![mft_note(&mft(&[]))],
            "no Solo5 ABI note (.note.solo5.abi) in the executable: it is not a Solo5 unikernel",
        ),
        (
            vec![abi_note(2, 2), mft_note(&mft(&[]))],
            "the executable is built for the Solo5 'spt' target (ABI target 2), not hvt",
        ),
        (
            vec![abi_note(1, 3), mft_note(&mft(&[]))],
            "the executable requests hvt ABI version 3; this tender implements version 2",
        ),
        (vec![abi_note(1, 2)], "no Solo5 manifest note (.note.solo5.manifest) in the executable"),
    ];
    for (notes, msg) in cases {
        let (_d, p) = write("k.hvt", &guest(&code, 0, 0, 0, b"", &notes));
        let o = tender(&[p.as_os_str()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(120), "{err}");
        assert_eq!(err, format!("unikit-hvt: {}: {msg}\n", p.display()));
    }
    let (_d, p) = write("k", b"#!/bin/sh\necho not a unikernel\n");
    let o = tender(&[p.as_os_str()]);
    assert_eq!(o.status.code(), Some(120));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid executable: "), "{o:?}");
}

#[test]
fn devices_on_the_command_line_must_match_the_manifest() {
    let img = guest(&hypercalls(&[]), 0, 0, 0, b"", &hvt_notes(&[("storage", 1)]));
    let (_d, p) = write("k.hvt", &img);
    let o = tender(&[p.as_os_str()]);
    assert_eq!(o.status.code(), Some(120));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "unikit-hvt: the unikernel declares devices that are not attached; all must be: pass --block:storage=FILE\n"
    );
    let o = tender(&["--net:service=tap0".as_ref(), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(120));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "unikit-hvt: --net:service: the unikernel has no net device 'service' in its manifest (it declares no net devices)\n"
    );
    let o = tender(&["--bogus".as_ref(), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(120));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("unikit-hvt: invalid option: '--bogus'\nusage: "));
    let o = tender(&["--version".as_ref()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ABI version 2"));
}
