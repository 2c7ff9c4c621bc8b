//! `cargo run --release -p unikit-bench`: measures examples/hello on every
//! platform this host runs and writes bench/REPORT.md.
//!
//! - guest boot time: the kernel's `unikit.bootstats` line (TSC at the entry
//!   stub's first instruction -> first line of `main`; on linuxu,
//!   `clock_gettime` at `_start` -> `main`);
//! - host wall time from launching QEMU (or the process) to its exit;
//! - image size; the smallest `-m` that still boots hello.
//!
//! `--capacity` measures httpd's idle-connection capacity in 64M and the
//! memory per idle connection; `--soak SECS` runs wrk for SECS seconds and
//! reports requests/s and errors per interval (bench/src/capacity.rs).
//!
//! Runs alternate between configurations so that machine noise spreads
//! evenly, and the report quotes medians. QEMU is started with the same
//! arguments `unikit run` uses (crates/cli/src/run/qemu.rs).
mod baseline;
mod capacity;
mod compare;
mod copies;
mod crashkill;
mod crashkill_report;
mod exec;
mod hyperv;
mod net;
mod vmware;
mod xen;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const RUNS: usize = 21;
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

fn repo() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    p.canonicalize().unwrap_or(p)
}

#[derive(Clone)]
struct Config {
    name: &'static str,
    kind: Kind,
}

#[derive(Clone, PartialEq)]
enum Kind {
    Qemu {
        kvm: bool,
        qboot: bool,
        microvm: bool,
    },
    Linuxu,
    NativeEcho,
    Firecracker,
    /// A Solo5 hvt tender: unikit's own (`None`) or upstream's.
    Solo5(Option<PathBuf>),
}

#[derive(Default)]
struct Samples {
    boot_ns: Vec<u64>,
    wall_ns: Vec<u64>,
    failures: usize,
}

fn qemu_cmd(image: &Path, kvm: bool, qboot: bool, microvm: bool, mem_k: u64, append: &str) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-M",
        if microvm { "microvm,acpi=off" } else { "q35,vmport=off" },
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-smp",
        "1",
    ]);
    c.args(["-m", &format!("{mem_k}K"), "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    if kvm {
        c.args(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]);
    } else {
        c.args(["-accel", "tcg", "-cpu", "max"]);
    }
    if qboot {
        c.args(["-bios", QBOOT]);
    }
    c.arg("-kernel").arg(image).args(["-append", append]);
    c
}

/// Runs once; returns (stdout, wall ns).
fn run(mut cmd: Command) -> (String, u64) {
    cmd.stdin(Stdio::null()).stderr(Stdio::null());
    let t0 = Instant::now();
    let out = cmd.output().expect("cannot start benchmark command");
    let wall = t0.elapsed().as_nanos() as u64;
    (String::from_utf8_lossy(&out.stdout).into_owned(), wall)
}

fn boot_ns(stdout: &str) -> Option<u64> {
    let rest = stdout.split("entry_to_main_ns=").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn median(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn fmt_us(ns: Option<u64>) -> String {
    match ns {
        Some(ns) if ns >= 10_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        Some(ns) => format!("{:.1} us", ns as f64 / 1e3),
        None => "n/a".into(),
    }
}

/// `cargo build --release -p unikit-cli` in the tree at `root`.
fn build_cli(root: &Path) -> Result<(), String> {
    let st = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--release", "-q", "-p", "unikit-cli"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    st.success().then_some(()).ok_or_else(|| format!("building the unikit CLI in {} failed", root.display()))
}

/// `unikit build` of the example `app` of the tree at `root` for `plat`.
fn build_app(root: &Path, unikit: &Path, app: &str, plat: &str) -> Result<(), String> {
    let st = Command::new(unikit)
        .args(["build", "-q", "--plat", plat, "-C"])
        .arg(root.join("examples").join(app))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", unikit.display()))?;
    st.success().then_some(()).ok_or_else(|| format!("building {app} for {plat} in {} failed", root.display()))
}

/// hello's images (qemu, linuxu) of the tree at `root`; solo5's is built too.
fn build_images(root: &Path, unikit: &Path) -> Result<(PathBuf, PathBuf), String> {
    for plat in ["qemu", "linuxu", "solo5"] {
        build_app(root, unikit, "hello", plat)?;
    }
    let b = root.join("examples/hello/build");
    Ok((b.join("hello_qemu-x86_64"), b.join("hello_linuxu-x86_64")))
}

/// A Firecracker binary from `UNIKIT_FIRECRACKER` or PATH.
fn find_firecracker() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("UNIKIT_FIRECRACKER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("firecracker")).find(|p| p.is_file()))
}

/// `firecracker --no-api` with a config that boots `image` (as `unikit run --plat fc` does).
fn firecracker_cmd(fc: &Path, image: &Path, append: &str) -> Command {
    let dir = std::env::temp_dir().join(format!("unikit-bench-fc-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let cfg = dir.join("config.json");
    let json = format!(
        r#"{{"boot-source":{{"kernel_image_path":"{}","boot_args":"{append}"}},"drives":[],"machine-config":{{"vcpu_count":1,"mem_size_mib":16,"smt":false}}}}"#,
        image.display()
    );
    std::fs::write(&cfg, json).expect("cannot write the Firecracker config");
    let mut c = Command::new(fc);
    c.args(["--no-api", "--config-file"]).arg(&cfg).args(["--log-path", "/dev/null", "--level", "Error"]);
    c
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// Smallest memory (in KiB, 128 KiB steps) in which hello still prints its greeting.
fn smallest_memory(image: &Path, kvm: bool) -> Option<u64> {
    let mut best = None;
    let mut k = 8 * 1024;
    while k >= 512 {
        let mut cmd = qemu_cmd(image, kvm, true, false, k, "unikit.quiet --");
        cmd.stdin(Stdio::null()).stderr(Stdio::null());
        // A guest without enough RAM may run off into garbage: bound it.
        let ok = match cmd.stdout(Stdio::piped()).spawn() {
            Ok(mut child) => {
                let t0 = Instant::now();
                loop {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    if t0.elapsed().as_secs() > 10 {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                let mut s = String::new();
                use std::io::Read;
                let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut s));
                s.contains("Hello from unikit")
            }
            Err(_) => false,
        };
        if !ok {
            break;
        }
        best = Some(k);
        k -= 128;
    }
    best
}

/// hello's images of one tree and the programs that boot them.
struct Hello {
    qemu: PathBuf,
    linuxu: PathBuf,
    solo5: PathBuf,
    hvt: PathBuf,
    firecracker: Option<PathBuf>,
}

/// Boots hello once in configuration `kind`; returns (stdout, wall ns).
fn boot_once(kind: &Kind, h: &Hello) -> (String, u64) {
    const OPTS: &str = "unikit.quiet unikit.bootstats";
    match kind {
        Kind::Qemu { kvm, qboot, microvm } => {
            run(qemu_cmd(&h.qemu, *kvm, *qboot, *microvm, 16 * 1024, &format!("{OPTS} --")))
        }
        Kind::Linuxu => {
            let mut cmd = Command::new(&h.linuxu);
            cmd.env("UNIKIT_OPTS", OPTS);
            run(cmd)
        }
        Kind::Solo5(upstream) => {
            let mut cmd = Command::new(upstream.as_deref().unwrap_or(&h.hvt));
            cmd.arg("--mem=16").arg(&h.solo5).args(OPTS.split_whitespace()).arg("--");
            run(cmd)
        }
        Kind::Firecracker => match &h.firecracker {
            Some(fc) => run(firecracker_cmd(fc, &h.qemu, &format!("{OPTS} --"))),
            None => (String::new(), 0),
        },
        Kind::NativeEcho => {
            let mut cmd = Command::new("/bin/echo");
            cmd.arg("Hello from a native process!");
            run(cmd)
        }
    }
}

/// Prints one `error:` line and exits non-zero.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

/// The value after `flag` on the command line: `None` without the flag,
/// `Some(None)` when the flag has no value.
fn flag_value(args: &[String], flag: &str) -> Option<Option<String>> {
    args.iter().position(|a| a == flag).map(|i| args.get(i + 1).filter(|v| !v.starts_with("--")).cloned())
}

/// `--capacity` and `--soak SECS` run on their own and print their section
/// (bench/REPORT.md is left as it is).
fn capacity_main(args: &[String], unikit: &Path) {
    let soak = flag_value(args, "--soak").map(|v| v.and_then(|v| v.parse::<u64>().ok()));
    if let Some(None) = soak {
        fail("--soak needs a number of seconds, e.g. --soak 60");
    }
    for plat in ["qemu", "linuxu"] {
        let _ = build_app(&repo(), unikit, "httpd", plat);
    }
    if args.iter().any(|a| a == "--capacity") {
        print!("{}", capacity::run_capacity(&repo(), unikit));
    }
    if let Some(Some(secs)) = soak {
        print!("{}", capacity::run_soak(&repo(), unikit, secs));
    }
}

fn main() {
    let unikit = repo().join("target/release/unikit");
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = build_cli(&repo()) {
        fail(&e);
    }
    if args.iter().any(|a| a == "--capacity" || a == "--soak") {
        return capacity_main(&args, &unikit);
    }
    if let Some(rev) = flag_value(&args, "--baseline") {
        let Some(rev) = rev else { fail("--baseline needs a git revision, e.g. --baseline a33640b") };
        std::process::exit(compare::main(&repo(), &rev, &args, kvm_usable()));
    }
    if let Some(i) = args.iter().position(|a| a == "--crash-kill") {
        let n = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(100);
        std::process::exit(crashkill_report::main(&repo(), &unikit, n, kvm_usable()));
    }
    // `--vmware-only`, `--hyperv-only`: that platform's section alone, written into REPORT.md.
    for (flag, heading, section) in [
        ("--vmware-only", vmware::HEADING, vmware::run as fn(&Path, &Path) -> String),
        ("--hyperv-only", hyperv::HEADING, hyperv::run),
    ] {
        if args.iter().any(|a| a == flag) {
            let text = section(&repo(), &unikit);
            print!("{text}");
            let file = repo().join("bench/REPORT.md");
            let old = std::fs::read_to_string(&file).unwrap_or_default();
            std::fs::write(&file, compare::splice_at(&old, heading, &text)).expect("cannot write bench/REPORT.md");
            eprintln!("bench: wrote the \"{}\" section of bench/REPORT.md", heading.trim_start_matches("## "));
            return;
        }
    }
    // `--exec-only`: the Linux-programs section alone, written into REPORT.md.
    if args.iter().any(|a| a == "--exec-only") {
        let section = exec::run(&repo(), &unikit, kvm_usable());
        print!("{section}");
        let file = repo().join("bench/REPORT.md");
        let old = std::fs::read_to_string(&file).unwrap_or_default();
        std::fs::write(&file, compare::splice_at(&old, exec::HEADING, &section)).expect("cannot write bench/REPORT.md");
        eprintln!("bench: wrote the \"{}\" section of bench/REPORT.md", exec::HEADING.trim_start_matches("## "));
        return;
    }
    let (qemu_img, linuxu_img) = build_images(&repo(), &unikit).unwrap_or_else(|e| fail(&e));
    let hello = Hello {
        qemu: qemu_img.clone(),
        linuxu: linuxu_img.clone(),
        solo5: repo().join("examples/hello/build/hello_solo5-x86_64"),
        hvt: repo().join("target/release/unikit-hvt"),
        firecracker: find_firecracker(),
    };
    // Builds the httpd images up front so that the first wrk run does not
    // wait for the compiler.
    let _ = (build_app(&repo(), &unikit, "httpd", "qemu"), build_app(&repo(), &unikit, "httpd", "linuxu"));
    // `--net-only`: the HTTP section alone (printed, REPORT.md untouched).
    if std::env::args().any(|a| a == "--net-only") {
        print!("{}", net::run(&repo(), &unikit, kvm_usable()));
        return;
    }
    let kvm = kvm_usable();
    let qboot = Path::new(QBOOT).exists();

    let mut configs = vec![];
    if kvm {
        configs.push(Config { name: "qemu q35, KVM, qboot", kind: Kind::Qemu { kvm: true, qboot, microvm: false } });
        configs.push(Config { name: "qemu microvm, KVM, qboot", kind: Kind::Qemu { kvm: true, qboot, microvm: true } });
        configs.push(Config {
            name: "qemu q35, KVM, SeaBIOS",
            kind: Kind::Qemu { kvm: true, qboot: false, microvm: false },
        });
    }
    configs.push(Config { name: "qemu q35, TCG, qboot", kind: Kind::Qemu { kvm: false, qboot, microvm: false } });
    configs.push(Config { name: "qemu microvm, TCG, qboot", kind: Kind::Qemu { kvm: false, qboot, microvm: true } });
    if kvm && hello.firecracker.is_some() {
        configs.push(Config { name: "Firecracker (built from source), KVM", kind: Kind::Firecracker });
    }
    if kvm && hello.hvt.is_file() {
        configs.push(Config { name: "Solo5 hvt, unikit-hvt tender (KVM)", kind: Kind::Solo5(None) });
        if let Ok(up) = std::env::var("UNIKIT_SOLO5_HVT") {
            configs.push(Config {
                name: "Solo5 hvt, upstream solo5-hvt tender (KVM)",
                kind: Kind::Solo5(Some(PathBuf::from(up))),
            });
        }
    }
    configs.push(Config { name: "linuxu (Linux process)", kind: Kind::Linuxu });
    configs.push(Config { name: "baseline: /bin/echo (native process)", kind: Kind::NativeEcho });

    let mut samples: Vec<Samples> = configs.iter().map(|_| Samples::default()).collect();
    eprintln!("bench: {RUNS} rounds over {} configurations ...", configs.len());
    for round in 0..RUNS {
        for (c, s) in configs.iter().zip(samples.iter_mut()) {
            // SeaBIOS takes seconds under nested KVM: fewer rounds.
            if matches!(c.kind, Kind::Qemu { qboot: false, .. }) && round >= 5 {
                continue;
            }
            let (out, wall) = boot_once(&c.kind, &hello);
            s.wall_ns.push(wall);
            match (&c.kind, boot_ns(&out)) {
                (Kind::NativeEcho, _) => {}
                (_, Some(b)) => s.boot_ns.push(b),
                (_, None) => s.failures += 1,
            }
        }
    }
    eprintln!("bench: smallest memory ...");
    let min_mem_kvm = if kvm { smallest_memory(&qemu_img, true) } else { None };
    let min_mem_tcg = smallest_memory(&qemu_img, false);

    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let qemu_version = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let module = |m: &str| Path::new("/sys/module").join(m).exists();
    let kvm_module = if module("kvm_pvm") {
        "kvm_pvm (page-table-based, nested)"
    } else if module("kvm_intel") {
        "kvm_intel"
    } else if module("kvm_amd") {
        "kvm_amd"
    } else {
        "none"
    };

    let mut r = String::new();
    let _ = writeln!(r, "# unikit benchmark report\n");
    let _ = writeln!(
        r,
        "Generated by `cargo run --release -p unikit-bench` (bench/src/main.rs). Workload: `examples/hello`."
    );
    let _ = writeln!(r, "Medians of {RUNS} runs (5 for SeaBIOS), configurations interleaved in each round.\n");
    let _ = writeln!(r, "- host CPU: {cpu}; KVM module: {kvm_module}; {qemu_version}");
    let _ = writeln!(
        r,
        "- guest boot = first instruction of the entry stub -> first line of `main` (TSC; linuxu: `clock_gettime` at `_start`), printed by `unikit.bootstats` after `main`"
    );
    let _ = writeln!(
        r,
        "- wall = host time from spawning QEMU (or the process) to its exit, serial console to a pipe, 16 MiB guest\n"
    );
    let _ = writeln!(
        r,
        "| configuration | guest boot (median) | guest boot (min..max) | wall, launch to exit (median) | failed runs |"
    );
    let _ = writeln!(r, "|---|---|---|---|---|");
    let base_wall =
        configs.iter().zip(&samples).find(|(c, _)| c.kind == Kind::NativeEcho).and_then(|(_, s)| median(&s.wall_ns));
    for (c, s) in configs.iter().zip(&samples) {
        let (lo, hi) = (s.boot_ns.iter().min().copied(), s.boot_ns.iter().max().copied());
        let boot = if c.kind == Kind::NativeEcho { "-".to_string() } else { fmt_us(median(&s.boot_ns)) };
        let range =
            if c.kind == Kind::NativeEcho { "-".to_string() } else { format!("{} .. {}", fmt_us(lo), fmt_us(hi)) };
        let wall = median(&s.wall_ns);
        let ratio = match (wall, base_wall) {
            (Some(w), Some(b)) if c.kind != Kind::NativeEcho && b > 0 => format!(" ({:.1}x echo)", w as f64 / b as f64),
            _ => String::new(),
        };
        let _ = writeln!(r, "| {} | {} | {} | {}{} | {} |", c.name, boot, range, fmt_us(wall), ratio, s.failures);
    }
    let _ = writeln!(r, "\n| image | size |\n|---|---|");
    let _ = writeln!(
        r,
        "| hello, qemu/x86_64 (PVH ELF) | {} bytes ({:.1} KiB) |",
        size(&qemu_img),
        size(&qemu_img) as f64 / 1024.0
    );
    let _ = writeln!(
        r,
        "| hello, linuxu/x86_64 (static ELF) | {} bytes ({:.1} KiB) |",
        size(&linuxu_img),
        size(&linuxu_img) as f64 / 1024.0
    );
    let mem = |m: Option<u64>| m.map(|k| format!("{k} KiB")).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(r, "\n| smallest `-m` that boots hello (128 KiB steps, qboot) | |\n|---|---|");
    if kvm {
        let _ = writeln!(r, "| KVM | {} |", mem(min_mem_kvm));
    }
    let _ = writeln!(r, "| TCG | {} |", mem(min_mem_tcg));
    let _ = writeln!(
        r,
        "\nTargets (Unikraft's published figures): guest boot <= 50 us (Unikraft 55 us on QEMU/KVM), hello image <= 150 KB (213 KB), boots in <= 2 MB (2 MB)."
    );
    if kvm_module.starts_with("kvm_pvm") {
        let _ = writeln!(
            r,
            "\nOn this host /dev/kvm is kvm_pvm: a guest that does not use the PVM paravirtual ABI runs its kernel-mode code through KVM's instruction emulator, so the KVM rows measure that emulator (several microseconds per instruction), not hardware virtualization; TCG is faster here. On hardware KVM the guest runs natively."
        );
    }
    r.push_str(&exec::run(&repo(), &unikit, kvm));
    let with_net = !std::env::args().any(|a| a == "--no-net");
    if with_net {
        r.push_str(&net::run(&repo(), &unikit, kvm));
    } else {
        let _ = writeln!(r, "\n(HTTP throughput not measured: --no-net)");
    }
    if std::env::args().any(|a| a == "--no-xen") {
        let _ = writeln!(r, "\n(Xen not measured: --no-xen)");
    } else {
        r.push_str(&xen::run(&repo(), &unikit, with_net));
    }
    print!("{r}");
    std::fs::write(repo().join("bench/REPORT.md"), &r).expect("cannot write bench/REPORT.md");
    eprintln!("bench: wrote bench/REPORT.md");
}
