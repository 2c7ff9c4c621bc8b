//! The one supervisor behind every runner: it spawns the VMM (or the linuxu
//! process), ties its life to ours, passes signals on, streams the console
//! through the exit-marker filter and the backtrace annotator, keeps the
//! VMM's own stderr for the verdict, and prints the verdict. A platform is
//! one [`Runner`]; its optional hooks cover VMMs that mix their own output
//! into the console (`console`, `stderr_to`), that must not get the signal
//! themselves (`on_signal`), or whose end needs more explaining (`decide`).
//!
//! No orphans: the child gets `PR_SET_PDEATHSIG(SIGKILL)` before it execs, so
//! it dies with us even when we are SIGKILLed; SIGINT, SIGTERM and SIGHUP are
//! passed on so that the run ends through the normal path and cleans up
//! (network namespace, run folder). The parent-death signal fires when the
//! *thread* that forked exits, so children are spawned from the main thread,
//! which lives as long as the process (`spawn` checks that).

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};

use crate::console::{GuestExit, MarkerFilter};
use crate::symbols::Annotator;

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
}

impl From<ExitStatus> for End {
    fn from(s: ExitStatus) -> End {
        match (s.code(), s.signal()) {
            (Some(c), _) => End::Exited(c),
            (None, Some(sig)) => End::Signaled(sig),
            (None, None) => End::Exited(-1),
        }
    }
}

/// Our exit code and the lines for stderr.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub code: u8,
    pub lines: Vec<String>,
}

/// Everything known when the child has ended.
#[derive(Debug)]
pub struct Outcome {
    pub marker: Option<GuestExit>,
    pub end: End,
    /// The last lines the VMM wrote on stderr (empty when it was not captured).
    pub stderr: Vec<String>,
    /// The signal we passed on, if the run was interrupted.
    pub interrupted: Option<i32>,
}

/// One platform: what to start and how to read its end. The options were
/// checked when the runner was made (see `run::command`).
pub trait Runner {
    /// The VMM's name, for messages.
    fn vmm(&self) -> String;
    /// The command to start (program, arguments, environment).
    fn command(&mut self) -> Result<Command>;
    /// Whether the console carries the exit marker (VM consoles do).
    fn marker(&self) -> bool {
        true
    }
    /// Whether to capture the VMM's stderr (shown live and kept for the
    /// verdict); a linuxu guest's stderr is the app's own and stays ours.
    fn capture_stderr(&self) -> bool {
        true
    }
    /// The verdict for a child killed by `sig` (without a marker).
    fn killed(&mut self, sig: i32) -> Verdict {
        killed(&self.vmm(), sig)
    }
    /// Called right after the child started.
    fn started(&mut self, _pid: u32) {}
    /// The guest console out of the child's stdout. A VMM that mixes its
    /// own messages into the console (the Xen test bed's serial line) picks
    /// the guest's bytes out here; the rest is the runner's to keep.
    fn console(&mut self, raw: Box<dyn Read>) -> Box<dyn Read> {
        raw
    }
    /// Where the captured stderr is shown as it comes (it is kept for the
    /// verdict either way): ours, or the runner's own log.
    fn stderr_to(&mut self) -> Box<dyn Write + Send> {
        Box::new(std::io::stderr())
    }
    /// What SIGINT, SIGTERM and SIGHUP to unikit do to the run.
    fn on_signal(&mut self) -> OnSignal {
        OnSignal::Forward
    }
    /// Our exit code and what to say, when the guest left no exit marker
    /// and the child was not killed by a signal.
    fn unmarked(&mut self, o: &Outcome) -> Verdict;
    /// The whole verdict, and anything left to do at the end of the run
    /// (keep evidence, explain a crash from the VMM's own dump, with the
    /// image's symbols). By default the common [`verdict`].
    fn decide(&mut self, o: &Outcome, _annotator: &Annotator) -> Verdict {
        verdict(self, o)
    }
}

/// What a signal to unikit does to a running guest.
pub enum OnSignal {
    /// Pass it on to the child: the VMM ends the guest and then itself.
    Forward,
    /// The child would leave the guest behind (`xl`): keep the signal from
    /// it and run this once instead (e.g. destroy the domain), which ends
    /// the console and the child.
    Stop(Box<dyn FnOnce() + Send>),
}

/// The common part of every verdict: the guest's marker decides; a killed
/// VMM is reported as such; everything else is the runner's to explain.
pub fn verdict<R: Runner + ?Sized>(runner: &mut R, o: &Outcome) -> Verdict {
    if let Some(m) = &o.marker {
        return marked(m);
    }
    if let End::Signaled(sig) = o.end {
        return runner.killed(sig);
    }
    runner.unmarked(o)
}

/// The guest's exit marker decides: its code, and its reason if it gave one.
pub fn marked(m: &GuestExit) -> Verdict {
    let code = (m.code & 0xff) as u8;
    let lines = m.reason.iter().map(|r| format!("unikit: guest {r} (exit code {code})")).collect();
    Verdict { code, lines }
}

/// A VMM killed by `sig`: `128 + sig`, as a shell reports it.
pub fn killed(vmm: &str, sig: i32) -> Verdict {
    Verdict {
        code: (128 + sig).clamp(0, 255) as u8,
        lines: vec![format!("error: {vmm} was killed by {}", super::signal_name(sig))],
    }
}

/// Start `runner`'s child, stream its console, wait for it and print the
/// verdict. Returns our exit code.
pub fn run(runner: &mut dyn Runner, annotator: &mut Annotator) -> Result<u8> {
    let mut cmd = runner.command()?;
    let vmm = runner.vmm();
    cmd.stdout(Stdio::piped());
    if runner.capture_stderr() {
        cmd.stderr(Stdio::piped());
    }
    let mut child = spawn(&mut cmd).with_context(|| format!("cannot start {vmm}"))?;
    let stopper = match runner.on_signal() {
        OnSignal::Forward => {
            forward_signals(child.id());
            None
        }
        OnSignal::Stop(stop) => {
            forward_signals(0);
            Some(Stopper::spawn(stop))
        }
    };
    runner.started(child.id());
    let stderr = child.stderr.take().map(|err| tee_stderr(err, runner.stderr_to()));
    let console = runner.console(Box::new(child.stdout.take().context("no pipe for the console")?));
    let mut filter = runner.marker().then(MarkerFilter::new);
    stream(console, filter.as_mut(), annotator);
    let status = child.wait();
    // Reaped: its pid may be reused, so signals are no longer passed on (a
    // late one only ends what is left of the run: cleanup, then exit).
    CHILD.store(0, Ordering::Relaxed);
    drop(stopper);
    let status = status.with_context(|| format!("waiting for {vmm}"))?;
    let outcome = Outcome {
        marker: filter.as_ref().and_then(|f| f.exit().cloned()),
        end: status.into(),
        stderr: stderr.and_then(|h| h.join().ok()).unwrap_or_default(),
        interrupted: forwarded_signal(),
    };
    let v = runner.decide(&outcome, annotator);
    for line in &v.lines {
        eprintln!("{line}");
    }
    Ok(v.code)
}

/// Spawn `cmd` so that it cannot outlive us: the child asks for SIGKILL on
/// our death before it execs (and kills itself if we are already gone).
/// The request survives exec (not of set-user-ID programs), so it holds for
/// `ip netns exec NS VMM`, which execs the VMM without forking.
#[allow(unsafe_code)]
pub fn spawn(cmd: &mut Command) -> Result<Child> {
    if std::thread::current().name() != Some("main") {
        // The parent-death signal follows the forking thread, not the process.
        bail!("internal error: a VM must be started from the main thread");
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls on integers (prctl, getppid,
    // kill); it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // We died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
    Ok(cmd.spawn()?)
}

/// How many lines of the VMM's stderr the verdict keeps.
const STDERR_LINES: usize = 20;

/// Runs an [`OnSignal::Stop`] action on a thread once a signal came, until
/// dropped (the child has ended).
struct Stopper(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stopper {
    fn spawn(stop: Box<dyn FnOnce() + Send>) -> Stopper {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                if forwarded_signal().is_some() {
                    stop();
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        Stopper(done)
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Copy the child's stderr to `to` as it comes, keeping the last lines.
fn tee_stderr(mut err: impl Read + Send + 'static, mut to: Box<dyn Write + Send>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match err.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let _ = to.write_all(&buf[..n]).and_then(|()| to.flush());
            kept.extend_from_slice(&buf[..n]);
            // Bounded: a chatty VMM must not grow our memory.
            if kept.len() > 64 << 10 {
                kept.drain(..kept.len() - (16 << 10));
            }
        }
        let text = String::from_utf8_lossy(&kept);
        let lines: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
        lines[lines.len().saturating_sub(STDERR_LINES)..].to_vec()
    })
}

/// What to do about a VMM that refused to start, from its own words.
pub fn vmm_hint(stderr: &[String]) -> Option<&'static str> {
    let text = stderr.join("\n").to_ascii_lowercase();
    let table: &[(&[&str], &str)] = &[
        (
            &["could not set up host forwarding", "address already in use"],
            "a host port given with -p is taken (by another program, or twice on this command line): pick another one",
        ),
        (
            &["failed to get \"write\" lock", "failed to get shared \"write\" lock", "resource busy"],
            "a disk image is open twice (the same --disk given twice, or another VM uses it): give each disk once",
        ),
        (
            &["cannot set up guest memory", "cannot allocate memory", "out of memory"],
            "the host cannot give the guest that much memory: use a smaller -m",
        ),
        (
            &["initrd is too large", "initrd too large"],
            "the --rootfs archive does not fit in the guest's memory: use a larger -m or a smaller rootfs",
        ),
        (
            &["/dev/net/tun", "tunsetiff", "could not open tap", "invalid argument (os error 22)"],
            "the --net tap:NAME interface cannot be used: it must be an existing tap device you may open",
        ),
    ];
    table.iter().find(|(needles, _)| needles.iter().any(|n| text.contains(n))).map(|(_, hint)| *hint)
}

/// The verdict for a VMM that stopped on its own with an error and left no
/// marker: its own words (already shown live) and what to do.
pub fn vmm_failed(vmm: &str, status: i32, o: &Outcome) -> Verdict {
    let mut lines = Vec::new();
    match o.stderr.last() {
        Some(last) => {
            lines.push(format!("error: {vmm} could not run the guest (exit status {status}): {}", last.trim()))
        }
        None => {
            lines.push(format!("error: {vmm} stopped with exit status {status} before the guest reported an exit code"))
        }
    }
    if let Some(h) = vmm_hint(&o.stderr) {
        lines.push(format!("hint: {h}"));
    } else if !o.stderr.is_empty() {
        lines.push(format!("hint: {vmm}'s message above says why"));
    }
    Verdict { code: crate::error::EXIT_TOOL_FAILURE, lines }
}

static CHILD: AtomicI32 = AtomicI32::new(0);
/// The last signal passed on (0: none).
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_on(sig: libc::c_int) {
    LAST_SIGNAL.store(sig, Ordering::Relaxed);
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes no pointers.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Ends the VMM `pid` with SIGTERM: for a runner that learns from the
/// console that the guest can get no further (a firmware loader that
/// failed and halts).
pub fn stop_child(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) takes no pointers; `pid` is our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP to `unikit` go to the child instead, so that
/// the run ends through the normal path and removes what it made. Handlers
/// are reset by exec: the child keeps the default actions. With pid 0 the
/// signals are only recorded (see [`forwarded_signal`]).
#[allow(unsafe_code)]
pub fn forward_signals(pid: u32) {
    CHILD.store(i32::try_from(pid).unwrap_or(0), Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs an async-signal-safe handler (an atomic store, an
        // atomic load and kill(2)); no other code of unikit installs
        // handlers for these.
        unsafe {
            libc::signal(sig, pass_on as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
}

/// The signal [`forward_signals`] last passed on, if any (a run that was
/// interrupted reports that rather than a guest failure).
pub fn forwarded_signal() -> Option<i32> {
    Some(LAST_SIGNAL.load(Ordering::Relaxed)).filter(|&s| s != 0)
}

/// A locally administered, unicast MAC address derived from `seed` (the
/// run's pid: two runs on one host get different MACs).
pub fn guest_mac(seed: u32) -> String {
    let b = seed.to_be_bytes();
    format!("06:00:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// The run's private folder (configs, logs): removed at the end unless
/// `keep` was called (a failure keeps its evidence).
pub struct RunDir {
    path: std::path::PathBuf,
    keep: bool,
}

impl RunDir {
    /// `$TMPDIR/unikit-<kind>-<pid>`, fresh.
    pub fn create(kind: &str) -> Result<RunDir> {
        let path = std::env::temp_dir().join(format!("unikit-{kind}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RunDir { path, keep: false })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Copy the guest console to our stdout as it arrives, through the exit
/// marker filter (VM consoles) and the backtrace annotator. If our stdout is
/// gone, keep draining the guest anyway so that it is never blocked.
pub fn stream(mut console: impl Read, mut marker: Option<&mut MarkerFilter>, annotator: &mut Annotator) {
    let mut buf = vec![0u8; 8192];
    let mut filtered = Vec::with_capacity(8192);
    let mut out = Vec::with_capacity(8192);
    let stdout = std::io::stdout();
    loop {
        let n = match console.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        match marker.as_deref_mut() {
            Some(m) => {
                m.feed(&buf[..n], &mut filtered);
                annotator.feed(&filtered, &mut out);
                filtered.clear();
            }
            None => annotator.feed(&buf[..n], &mut out),
        }
        show(&stdout, &mut out);
    }
    if let Some(m) = marker {
        m.finish(&mut filtered);
        annotator.feed(&filtered, &mut out);
    }
    annotator.finish(&mut out);
    show(&stdout, &mut out);
}

/// Write console bytes now, ignoring errors (see [`stream`]).
fn show(stdout: &std::io::Stdout, out: &mut Vec<u8>) {
    if !out.is_empty() {
        let mut lock = stdout.lock();
        let _ = lock.write_all(out).and_then(|()| lock.flush());
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_local_unicast() {
        let m = guest_mac(0xdead_beef);
        assert_eq!(m, "06:00:de:ad:be:ef");
        let first = u8::from_str_radix(&m[..2], 16).unwrap();
        assert_eq!(first & 1, 0, "unicast");
        assert_eq!(first & 2, 2, "locally administered");
    }

    fn outcome(stderr: &[&str]) -> Outcome {
        Outcome {
            marker: None,
            end: End::Exited(1),
            stderr: stderr.iter().map(|s| s.to_string()).collect(),
            interrupted: None,
        }
    }

    #[test]
    fn vmm_failures_quote_the_vmm_and_say_what_to_do() {
        let o = outcome(&[
            "qemu-system-x86_64: -netdev user,id=net0,hostfwd=tcp:127.0.0.1:80-:80: Could not set up host forwarding rule 'tcp:127.0.0.1:80-:80'",
        ]);
        let v = vmm_failed("qemu-system-x86_64", 1, &o);
        assert_eq!(v.code, 125);
        assert!(v.lines[0].starts_with("error: qemu-system-x86_64 could not run the guest (exit status 1): "), "{v:?}");
        assert!(v.lines[1].contains("-p"), "{v:?}");
        let o = outcome(&["qemu: Failed to get \"write\" lock", "Is another process using the image [a.img]?"]);
        assert!(vmm_failed("q", 1, &o).lines[1].contains("--disk"));
        let o = outcome(&["qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory"]);
        assert!(vmm_failed("q", 1, &o).lines[1].contains("-m"));
        let v = vmm_failed("q", 1, &outcome(&[]));
        assert_eq!(v.lines, ["error: q stopped with exit status 1 before the guest reported an exit code"]);
        assert!(!v.lines[0].contains("guest stopped without reporting"));
    }

    #[test]
    fn marker_and_signal_are_common() {
        struct R;
        impl Runner for R {
            fn vmm(&self) -> String {
                "vmm".into()
            }
            fn command(&mut self) -> Result<Command> {
                Ok(Command::new("true"))
            }
            fn unmarked(&mut self, _: &Outcome) -> Verdict {
                Verdict { code: 7, lines: vec![] }
            }
        }
        let mut o = outcome(&[]);
        assert_eq!(verdict(&mut R, &o).code, 7);
        o.end = End::Signaled(9);
        assert_eq!(verdict(&mut R, &o).lines, ["error: vmm was killed by signal 9, SIGKILL"]);
        assert_eq!(verdict(&mut R, &o).code, 137);
        o.marker = Some(GuestExit { code: 101, reason: Some("panic".into()) });
        let v = verdict(&mut R, &o);
        assert_eq!((v.code, v.lines), (101, vec!["unikit: guest panic (exit code 101)".to_string()]));
    }
}
