//! Crash-kill disk tests: `examples/counter -- --loop` rewrites a count on a
//! FAT disk and syncs it, over and over; the VMM (then the CLI) gets SIGKILL
//! at a random moment, 10 times per platform. After each kill the image must
//! pass `fsck.fat -n` (apart from the dirty bit: the kill came between a
//! write and its sync) and the next boot must find at least the last count
//! the guest reported synced. The same code runs 100 kills in
//! `unikit-bench --crash-kill 100` (bench/src/crashkill.rs).
#[path = "../bench/src/crashkill.rs"]
#[allow(dead_code)]
mod crashkill;

use std::path::PathBuf;

const KILLS: usize = 10;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crash_kill(name: &str, plat: &[&str], spread_ms: u64) {
    assert!(crashkill::fsck_path().is_some(), "fsck.fat not installed: install dosfstools (scripts/setup-host.sh)");
    let dir = std::env::temp_dir().join(format!("unikit-disk-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    let unikit = PathBuf::from(env!("CARGO_BIN_EXE_unikit"));
    let s = crashkill::run(&unikit, &repo(), plat, &disk, KILLS, spread_ms).unwrap_or_else(|e| panic!("{name}: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{name}: {} kills, synced count kept {}, fsck clean {}, only the dirty bit {}, errors {}",
        s.kills.len(),
        s.kills.len() - s.lost(),
        s.count(crashkill::Fsck::Clean),
        s.count(crashkill::Fsck::DirtyOnly),
        s.count(crashkill::Fsck::Errors)
    );
    assert_eq!(s.kills.len(), KILLS);
    assert!(s.lost() == 0 && s.count(crashkill::Fsck::Errors) == 0, "{name}:\n{}", s.failures());
}

#[test]
fn tcg_crash_kill_keeps_synced_data() {
    crash_kill("tcg", &["--plat", "qemu", "--accel", "tcg"], 1500);
}

#[test]
#[cfg_attr(unikit_no_kvm, ignore = "SKIPPED: /dev/kvm is not usable on this host")]
fn kvm_crash_kill_keeps_synced_data() {
    crash_kill("kvm", &["--plat", "qemu", "--accel", "kvm"], 1500);
}

#[test]
fn linuxu_crash_kill_keeps_synced_data() {
    crash_kill("linuxu", &["--plat", "linuxu"], 300);
}
