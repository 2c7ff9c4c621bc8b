//! `unikit-bench --crash-kill N`: N kills per platform (see crashkill.rs),
//! and the figures: how often the synced count survived and what
//! `fsck.fat -n` said. Exits non-zero when any kill lost a synced count or
//! left an image fsck.fat finds errors in.
use crate::crashkill::{self, Fsck};
use std::path::Path;
use std::time::Instant;

pub fn main(repo: &Path, unikit: &Path, n: usize, kvm: bool) -> i32 {
    if crashkill::fsck_path().is_none() {
        eprintln!("error: fsck.fat not found: install dosfstools (scripts/setup-host.sh)");
        return 2;
    }
    let mut plats: Vec<(&str, &[&str], u64)> =
        vec![("qemu TCG", &["--plat", "qemu", "--accel", "tcg"], 1500), ("linuxu", &["--plat", "linuxu"], 300)];
    if kvm {
        plats.insert(1, ("qemu KVM", &["--plat", "qemu", "--accel", "kvm"], 1500));
    }
    let dir = std::env::temp_dir().join(format!("unikit-crashkill-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: {}: {e}", dir.display());
        return 2;
    }
    let mut bad = false;
    println!("| platform | kills | synced count kept | fsck clean | only the dirty bit | fsck errors | time |");
    println!("|---|---|---|---|---|---|---|");
    for (name, args, spread) in plats {
        let disk = dir.join("disk.img");
        let t = Instant::now();
        match crashkill::run(unikit, repo, args, &disk, n, spread) {
            Ok(s) => {
                let k = s.kills.len();
                println!(
                    "| {name} | {k} | {} | {} | {} | {} | {:.0} s |",
                    k - s.lost(),
                    s.count(Fsck::Clean),
                    s.count(Fsck::DirtyOnly),
                    s.count(Fsck::Errors),
                    t.elapsed().as_secs_f64()
                );
                let f = s.failures();
                if !f.is_empty() {
                    bad = true;
                    eprintln!("{name}: failed kills:\n{f}");
                }
            }
            Err(e) => {
                bad = true;
                println!("| {name} | error: {e} | | | | | |");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    i32::from(bad)
}
