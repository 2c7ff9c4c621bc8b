//! The crash-kill disk test: `examples/counter -- --loop` adds 1 to a count
//! on a FAT disk and syncs, over and over, printing `counter: synced K` once
//! K is durable; the VMM (and the CLI) get SIGKILL at a random moment. Then
//! `fsck.fat -n` checks the image and a second boot checks that the count
//! is at least the last synced value the console showed (the write in
//! flight at the kill may or may not have landed).
//!
//! Shared by `unikit-bench --crash-kill N` and tests/disk.rs (included with
//! `#[path]`), so it only uses std and libc.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../../tests/common/fsck.rs"]
mod fsck;

/// What `fsck.fat -n` said about the image after a kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsck {
    Clean,
    /// Only the boot sector's dirty bit was set: the structure is intact.
    DirtyOnly,
    /// Anything else (lost clusters, a directory entry pointing at a free
    /// cluster, FATs that differ, ...).
    Errors,
}

/// One kill and its checks.
#[derive(Clone, Debug)]
pub struct Kill {
    /// Milliseconds from the first `synced` line to the kill.
    pub after_ms: u64,
    /// The last count the guest reported durable before the kill.
    pub synced: Option<u64>,
    pub fsck: Fsck,
    /// `fsck.fat -n`'s report when it was not clean.
    pub fsck_out: String,
    /// The count the next boot found (its `boot N` minus 1), or why it
    /// found none.
    pub found: Result<u64, String>,
}

impl Kill {
    /// The synced count survived: the next boot found it or a later one.
    /// (Later by more than one is no loss: the kill takes the CLI down
    /// right after the VMM, before it forwarded the VMM's last lines.)
    pub fn kept_synced(&self) -> bool {
        match (&self.found, self.synced) {
            (Ok(f), Some(s)) => *f >= s,
            (Ok(_), None) => true,
            (Err(_), _) => false,
        }
    }
}

/// All kills of one platform.
#[derive(Debug, Default)]
pub struct Summary {
    pub kills: Vec<Kill>,
}

impl Summary {
    pub fn lost(&self) -> usize {
        self.kills.iter().filter(|k| !k.kept_synced()).count()
    }
    pub fn count(&self, f: Fsck) -> usize {
        self.kills.iter().filter(|k| k.fsck == f).count()
    }
    /// One line per failed kill, for assertion messages.
    pub fn failures(&self) -> String {
        let mut s = String::new();
        for (i, k) in self.kills.iter().enumerate() {
            if !k.kept_synced() || k.fsck == Fsck::Errors {
                s.push_str(&format!(
                    "kill {i} ({} ms in): synced {:?}, next boot {:?}, fsck {:?}\n{}\n",
                    k.after_ms, k.synced, k.found, k.fsck, k.fsck_out
                ));
            }
        }
        s
    }
}

/// The installed `fsck.fat`, if any.
pub fn fsck_path() -> Option<PathBuf> {
    fsck::fsck_fat()
}

/// xorshift64*, seeded from the clock: the kill instants only need to
/// spread, not to be unpredictable.
pub struct Rng(u64);

impl Rng {
    pub fn from_clock() -> Self {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(1);
        Rng((t as u64) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    v
}

/// SIGKILL to the VMM first (every process below the CLI), then the CLI:
/// what a host crash of the VMM or an OOM kill does.
fn kill_tree(pid: u32) {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let c = children(p);
        todo.extend(&c);
        all.extend(c);
    }
    for p in all.iter().rev().chain(std::iter::once(&pid)) {
        // SAFETY: kill(2) on processes this test started (the CLI and
        // its descendants); a pid that already exited gets ESRCH.
        unsafe {
            libc::kill(*p as libc::pid_t, libc::SIGKILL);
        }
    }
}

fn unikit_cmd(unikit: &Path, repo: &Path, plat: &[&str], disk: &Path, app_args: &[&str]) -> Command {
    let mut c = Command::new(unikit);
    c.arg("run").arg("-q").arg("-C").arg(repo.join("examples/counter")).args(plat).arg("--disk").arg(disk);
    if !app_args.is_empty() {
        c.arg("--").args(app_args);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs the counter once to the end; its `boot N` line.
fn boot(unikit: &Path, repo: &Path, plat: &[&str], disk: &Path, app_args: &[&str]) -> Result<u64, String> {
    let out = unikit_cmd(unikit, repo, plat, disk, app_args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", unikit.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().find_map(|l| l.trim().strip_prefix("counter: boot ").and_then(|n| n.trim().parse().ok())).ok_or_else(
        || {
            format!(
                "no `counter: boot N` line (exit {:?}):\n{}{}",
                out.status.code(),
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
        },
    )
}

fn fsck(disk: &Path) -> (Fsck, String) {
    let Some(f) = fsck_path() else { return (Fsck::Errors, "fsck.fat not installed (dosfstools)".into()) };
    let out = match Command::new(&f).arg("-n").arg(disk).output() {
        Ok(o) => o,
        Err(e) => return (Fsck::Errors, format!("cannot run {}: {e}", f.display())),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        return (Fsck::Clean, String::new());
    }
    let only_dirty = text.lines().all(fsck::is_benign_line);
    (if only_dirty && out.status.code() == Some(1) { Fsck::DirtyOnly } else { Fsck::Errors }, text)
}

/// Formats `disk` (a fresh 8 MiB file) with the counter itself.
pub fn prepare(unikit: &Path, repo: &Path, plat: &[&str], disk: &Path) -> Result<(), String> {
    let f = std::fs::File::create(disk).map_err(|e| format!("{}: {e}", disk.display()))?;
    f.set_len(8 << 20).map_err(|e| format!("{}: {e}", disk.display()))?;
    let n = boot(unikit, repo, plat, disk, &["--format"])?;
    if n != 1 {
        return Err(format!("a freshly formatted disk counted boot {n}"));
    }
    Ok(())
}

/// One kill: boots `--loop`, waits for the first synced count, then a
/// random 0..`spread_ms`, kills, checks.
pub fn kill_once(
    unikit: &Path,
    repo: &Path,
    plat: &[&str],
    disk: &Path,
    rng: &mut Rng,
    spread_ms: u64,
) -> Result<Kill, String> {
    let mut child = unikit_cmd(unikit, repo, plat, disk, &["--loop", "100000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", unikit.display()))?;
    let pid = child.id();
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.trim().strip_prefix("counter: synced ").and_then(|n| n.trim().parse::<u64>().ok()) {
                let _ = tx.send(n);
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(120));
    let mut synced = first.ok();
    let wait = Duration::from_millis(rng.below(spread_ms + 1));
    let start = Instant::now();
    if synced.is_some() {
        std::thread::sleep(wait);
    }
    kill_tree(pid);
    let _ = child.wait();
    let _ = reader.join();
    // Every line printed before the kill is in the pipe: the last one is
    // the last count the guest had made durable.
    while let Ok(n) = rx.try_recv() {
        synced = Some(n);
    }
    if synced.is_none() {
        return Err("the counter never reported a synced count".into());
    }
    let after_ms = start.elapsed().as_millis() as u64;
    let (fsck, fsck_out) = fsck(disk);
    if fsck == Fsck::DirtyOnly {
        // Clear the bit, as `fsck.fat -a` at the next boot would, so the
        // next kill is judged on its own.
        if let Some(f) = fsck_path() {
            let _ = Command::new(f).args(["-a", "-w"]).arg(disk).output();
        }
    }
    let found = boot(unikit, repo, plat, disk, &[]).map(|n| n - 1);
    Ok(Kill { after_ms, synced, fsck, fsck_out, found })
}

/// `n` kills on one platform, on one disk; a broken disk is formatted
/// again so later kills still count.
pub fn run(
    unikit: &Path,
    repo: &Path,
    plat: &[&str],
    disk: &Path,
    n: usize,
    spread_ms: u64,
) -> Result<Summary, String> {
    let mut rng = Rng::from_clock();
    prepare(unikit, repo, plat, disk)?;
    let mut s = Summary::default();
    for _ in 0..n {
        let k = kill_once(unikit, repo, plat, disk, &mut rng, spread_ms)?;
        let broken = k.found.is_err() || k.fsck == Fsck::Errors;
        s.kills.push(k);
        if broken {
            prepare(unikit, repo, plat, disk)?;
        }
    }
    Ok(s)
}
