// Tells the boot tests whether this machine can run KVM guests, so that the
// KVM tests are reported as skipped (with the reason) instead of passing
// silently or failing where there is no /dev/kvm.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(unikit_no_kvm)");
    println!("cargo::rustc-check-cfg=cfg(unikit_no_netns)");
    // Network-namespace tests need root (CAP_SYS_ADMIN) and iproute2.
    let root =
        std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    let ip = std::path::Path::new("/usr/sbin/ip").exists()
        || std::path::Path::new("/sbin/ip").exists()
        || std::path::Path::new("/usr/bin/ip").exists();
    if !(root && ip) {
        println!("cargo:rustc-cfg=unikit_no_netns");
        println!("cargo:warning=not root or no iproute2: network-namespace tests will be skipped");
    }
    firecracker();
    solo5_hvt();
    musl();
    go();
    xen_testbed();
    println!("cargo:rerun-if-changed=/dev/kvm");
    let usable = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    if !usable {
        println!("cargo:rustc-cfg=unikit_no_kvm");
        println!("cargo:warning=/dev/kvm is not usable here: KVM boot tests will be skipped (TCG tests still run)");
    }
}

/// The real-Firecracker boot tests (tests/fc.rs) run when a `firecracker`
/// binary is given by $UNIKIT_FIRECRACKER or found on PATH at build time;
/// otherwise they are compiled as ignored, with the reason.
fn firecracker() {
    println!("cargo::rustc-check-cfg=cfg(unikit_no_firecracker)");
    println!("cargo:rerun-if-env-changed=UNIKIT_FIRECRACKER");
    println!("cargo:rerun-if-env-changed=PATH");
    let found =
        std::env::var_os("UNIKIT_FIRECRACKER").map(std::path::PathBuf::from).filter(|p| p.is_file()).or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join("firecracker"))
                .find(|p| p.is_file())
        });
    match found {
        Some(p) => println!("cargo:rustc-env=UNIKIT_TEST_FIRECRACKER={}", p.display()),
        None => {
            println!("cargo:rustc-cfg=unikit_no_firecracker");
            println!("cargo:rustc-env=UNIKIT_TEST_FIRECRACKER=");
        }
    }
}

/// The tests that run images under upstream Solo5's tender (tests/solo5.rs)
/// run when `solo5-hvt` is given by $UNIKIT_SOLO5_HVT or found on PATH at
/// build time; otherwise they are compiled as ignored, with the reason.
fn solo5_hvt() {
    println!("cargo::rustc-check-cfg=cfg(unikit_no_solo5_hvt)");
    println!("cargo:rerun-if-env-changed=UNIKIT_SOLO5_HVT");
    let found =
        std::env::var_os("UNIKIT_SOLO5_HVT").map(std::path::PathBuf::from).filter(|p| p.is_file()).or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join("solo5-hvt"))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        println!("cargo:rustc-cfg=unikit_no_solo5_hvt");
    }
}

/// The Xen test-bed boot tests (tests/xen.rs) need QEMU and Debian's apt and
/// dpkg (the bed is assembled from Debian packages); without them they are
/// compiled as ignored, with the reason.
fn xen_testbed() {
    println!("cargo::rustc-check-cfg=cfg(unikit_no_xen_testbed)");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = ["qemu-system-x86_64", "apt-get", "apt-cache", "dpkg-deb"]
        .into_iter()
        .filter(|t| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .collect();
    if !missing.is_empty() {
        println!("cargo:rustc-cfg=unikit_no_xen_testbed");
        println!("cargo:warning=no {} here: the Xen test-bed boot tests will be skipped", missing.join(", "));
    }
}

/// The `--exec` boot tests (tests/exec.rs) build their programs with
/// `musl-gcc` (Debian's musl-tools) and Rust's x86_64-unknown-linux-musl
/// target; without either they are compiled as ignored, with the reason.
fn musl() {
    println!("cargo::rustc-check-cfg=cfg(unikit_no_musl)");
    println!("cargo:rerun-if-env-changed=PATH");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let gcc = std::env::split_paths(&path).any(|d| d.join("musl-gcc").is_file());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::process::Command::new(rustc)
        .args(["--print", "target-libdir", "--target", "x86_64-unknown-linux-musl"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|d| d.is_dir());
    if !(gcc && target) {
        println!("cargo:rustc-cfg=unikit_no_musl");
        println!(
            "cargo:warning=no musl-gcc or no x86_64-unknown-linux-musl Rust target: the --exec boot tests will be skipped (scripts/setup-host.sh installs both)"
        );
    }
}

/// The Go program of the `--exec` boot tests is built with `go` (Debian's
/// golang-go); without it those tests are compiled as ignored.
fn go() {
    println!("cargo::rustc-check-cfg=cfg(unikit_no_go)");
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("go").is_file()) {
        println!("cargo:rustc-cfg=unikit_no_go");
        println!(
            "cargo:warning=no go on PATH: the Go --exec boot tests will be skipped (scripts/setup-host.sh installs golang-go)"
        );
    }
}
