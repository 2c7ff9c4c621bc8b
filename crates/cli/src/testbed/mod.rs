//! The Xen test bed's host tooling: a real Xen 4.17 and a Debian dom0
//! kernel, both from Debian's packages, fetched with `apt-get download`,
//! unpacked with `dpkg-deb -x`, and cached in
//! `$XDG_CACHE_HOME/unikit/xen-testbed/`, keyed by the package versions:
//! the gunzipped Xen ELF (QEMU's `-kernel` wants an ELF for multiboot, not
//! the .gz), the dom0 kernel, and dom0's base initramfs (busybox, the Xen
//! tools, the shared libraries they load, the kernel modules for Xen's
//! backends, the bridge and QEMU's virtio devices).
//!
//! This is apart from the runner that boots the bed (run/xen/testbed.rs),
//! which calls [`check_host`] and [`prepare`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use crate::cpio::Archive;
use crate::elf::Elf;
use crate::error::hinted;
use crate::tools::{QEMU, which};

/// The Debian packages the bed is made of (besides the dom0 kernel), and
/// why. Shared libraries are found by following DT_NEEDED from the tools
/// through these packages; one missing here is reported by name.
pub const PACKAGES: &[(&str, &str)] = &[
    ("xen-hypervisor-4.17-amd64", "the hypervisor, boot/xen-4.17-amd64.gz"),
    ("xen-utils-4.17", "xl, xenstored, xenconsoled, xenconsole, xen-init-dom0"),
    ("xenstore-utils", "xenstore-read/-write for the hotplug scripts"),
    ("busybox-static", "dom0's shell and tools (sh, ip, brctl, nc, insmod)"),
    ("libxenmisc4.17", "libxenctrl, libxenguest, libxenlight, libxlutil"),
    ("libxencall1", "Xen library"),
    ("libxendevicemodel1", "Xen library"),
    ("libxenevtchn1", "Xen library"),
    ("libxenforeignmemory1", "Xen library"),
    ("libxengnttab1", "Xen library"),
    ("libxenhypfs1", "Xen library"),
    ("libxenstore4", "Xen library"),
    ("libxentoolcore1", "Xen library"),
    ("libxentoollog1", "Xen library"),
    ("libyajl2", "JSON for libxenlight"),
    ("libc6", "the C library and the dynamic loader"),
    ("libgcc-s1", "libgcc_s.so.1, which glibc loads at run time (xl fails without it)"),
    ("liblzma5", "for libxenguest"),
    ("libzstd1", "for libxenguest"),
    ("zlib1g", "for libxenguest"),
    ("libuuid1", "for libxenlight"),
];
/// The metapackage naming the current dom0 kernel (linux-image-<abi>-amd64).
const KERNEL_META: &str = "linux-image-amd64";
const ARCH: &str = "amd64";
/// Bump when what is taken from the packages changes: the cached bed is
/// keyed by this and the package versions.
const RECIPE: u32 = 1;

/// Programs of dom0, from `usr/lib/xen-*/bin` (kept there: libxl runs
/// xenconsole from that directory), linked into /usr/sbin too.
const XEN_TOOLS: &[&str] = &["xl", "xenstored", "xenconsoled", "xenconsole", "xen-init-dom0"];
const XENSTORE_CMDS: &[&str] =
    &["xenstore-read", "xenstore-write", "xenstore-rm", "xenstore-ls", "xenstore-exists", "xenstore-list"];
/// Libraries loaded at run time rather than named by DT_NEEDED.
const DLOPENED: &[&str] = &["libgcc_s.so.1"];
const LIB_DIR: &str = "lib/x86_64-linux-gnu";
/// Kernel modules dom0 needs (with their dependencies, which are found from
/// each module's `depends=`): Xen's device files and backends, the bridge
/// for the guest's vif, and QEMU's virtio-net and virtio-blk. Any of them
/// built into the kernel is skipped.
const MODULES: &[&str] = &[
    "xen-privcmd",
    "xenfs",
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xen-blkback",
    "xen-netback",
    "bridge",
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
];

/// The cached pieces of a prepared bed.
#[derive(Clone, Debug)]
pub struct Bed {
    pub xen: PathBuf,
    pub dom0_kernel: PathBuf,
    pub base_initrd: PathBuf,
    /// `xen-hypervisor-4.17-amd64 4.17.7..., linux-image-... ...`: for messages.
    pub versions: String,
}

/// `$XDG_CACHE_HOME/unikit/xen-testbed` (or `~/.cache/...`).
pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| Path::new(v).is_absolute()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".cache"),
            None => bail!("neither XDG_CACHE_HOME nor HOME is set: no place to cache the Xen test bed"),
        },
    };
    Ok(base.join("unikit").join("xen-testbed"))
}

/// What the bed needs on the host. `Err` says what is missing.
pub fn check_host() -> Result<()> {
    if which(QEMU).is_none() {
        return Err(hinted(
            format!("the Xen test bed needs {QEMU}, which is not on PATH"),
            "install it with: apt-get install qemu-system-x86 (./scripts/setup-host.sh does)",
        ));
    }
    let cached = cache_dir().ok().and_then(|d| std::fs::read_to_string(d.join("current")).ok()).is_some();
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        if which(tool).is_none() && !cached {
            return Err(hinted(
                format!("the Xen test bed is assembled from Debian packages and needs `{tool}`, which is not on PATH"),
                "run it on Debian or Ubuntu (apt and dpkg), or on a host that is a Xen dom0 with `xl`",
            ));
        }
    }
    Ok(())
}

/// A Debian package at a precise version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pkg {
    pub name: String,
    pub version: String,
}

impl Pkg {
    /// The file `apt-get download` writes (an epoch's `:` becomes `%3a`).
    pub fn deb_name(&self) -> String {
        format!("{}_{}_{ARCH}.deb", self.name, self.version.replace(':', "%3a"))
    }
}

/// Candidate versions from `apt-cache show --no-all-versions` output:
/// (package, version, depends) per stanza.
pub fn parse_apt_show(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().to_string()))
        };
        if let (Some(p), Some(v)) = (field("Package"), field("Version")) {
            let arch = field("Architecture").unwrap_or_default();
            if arch == ARCH || arch == "all" || arch.is_empty() {
                out.push((p, v, field("Depends").unwrap_or_default()));
            }
        }
    }
    out
}

/// The kernel package a `linux-image-amd64` Depends line names:
/// `linux-image-6.1.0-56-amd64 (= 6.1.192-2)` -> (name, version).
pub fn kernel_from_depends(depends: &str) -> Option<(String, String)> {
    depends.split(',').map(str::trim).find_map(|d| {
        let (name, rest) = d.split_once(' ').unwrap_or((d, ""));
        if !name.starts_with("linux-image-") || name == KERNEL_META {
            return None;
        }
        let version = rest.trim().strip_prefix("(=")?.strip_suffix(')')?.trim();
        Some((name.to_string(), version.to_string()))
    })
}

fn apt_show(names: &[String]) -> Result<Vec<(String, String, String)>> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions"])
        .args(names.iter().map(|n| format!("{n}:{ARCH}")))
        .stdin(Stdio::null())
        .output()
        .context("cannot run apt-cache")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let found = parse_apt_show(&text);
    let missing: Vec<&String> = names.iter().filter(|n| !found.iter().any(|(p, _, _)| p == *n)).collect();
    if !missing.is_empty() {
        return Err(hinted(
            format!(
                "apt does not know the package(s) {} that the Xen test bed is made of",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "run `apt-get update` (the bed takes Xen 4.17 and Linux from Debian 12 bookworm's main archive)",
        ));
    }
    Ok(found)
}

/// The package versions apt would install now (the kernel's from the
/// `linux-image-amd64` metapackage).
fn resolve() -> Result<(Vec<Pkg>, Pkg)> {
    let mut names: Vec<String> = PACKAGES.iter().map(|(n, _)| n.to_string()).collect();
    names.push(KERNEL_META.to_string());
    let found = apt_show(&names)?;
    let mut pkgs = Vec::new();
    let mut kernel = None;
    for (p, v, deps) in found {
        if p == KERNEL_META {
            kernel = kernel_from_depends(&deps);
        } else if !pkgs.iter().any(|x: &Pkg| x.name == p) {
            pkgs.push(Pkg { name: p, version: v });
        }
    }
    let Some((name, version)) = kernel else {
        bail!("cannot tell which kernel package {KERNEL_META} depends on (apt-cache show {KERNEL_META})");
    };
    pkgs.sort();
    Ok((pkgs, Pkg { name, version }))
}

/// A stable 64-bit FNV-1a hash (the cache key must not change between
/// builds of unikit, which std's hasher does not promise).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

pub fn bed_key(pkgs: &[Pkg], kernel: &Pkg) -> String {
    let mut text = format!("recipe {RECIPE}\n");
    for p in pkgs.iter().chain([kernel]) {
        text.push_str(&format!("{} {}\n", p.name, p.version));
    }
    format!("{:016x}", fnv1a(text.as_bytes()))
}

fn bed_at(dir: &Path, versions: String) -> Bed {
    Bed {
        xen: dir.join("xen.elf"),
        dom0_kernel: dir.join("vmlinuz"),
        base_initrd: dir.join("dom0-base.cpio"),
        versions,
    }
}

fn complete(b: &Bed) -> bool {
    [&b.xen, &b.dom0_kernel, &b.base_initrd].iter().all(|p| p.is_file())
}

/// The bed for the current package versions: from the cache, or
/// downloaded and assembled now (with a note on stderr).
pub fn prepare() -> Result<Bed> {
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    // One run assembles at a time; the others wait and then use its work.
    let lock = std::fs::File::create(cache.join(".lock"))
        .with_context(|| format!("cannot create a lock in {}", cache.display()))?;
    lock.lock().with_context(|| format!("cannot lock {}", cache.display()))?;
    let (pkgs, kernel) = match resolve() {
        Ok(r) => r,
        Err(e) => {
            // Offline or without apt: the last bed assembled is still good.
            if let Ok(key) = std::fs::read_to_string(cache.join("current")) {
                let dir = cache.join(format!("bed-{}", key.trim()));
                let versions = std::fs::read_to_string(dir.join("versions.txt")).unwrap_or_default();
                let bed = bed_at(&dir, versions.trim().replace('\n', ", "));
                if complete(&bed) {
                    return Ok(bed);
                }
            }
            return Err(e);
        }
    };
    let key = bed_key(&pkgs, &kernel);
    let dir = cache.join(format!("bed-{key}"));
    let versions: Vec<String> = pkgs.iter().chain([&kernel]).map(|p| format!("{} {}", p.name, p.version)).collect();
    let bed = bed_at(&dir, versions.join(", "));
    if complete(&bed) {
        return Ok(bed);
    }
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
    let all: Vec<&Pkg> = pkgs.iter().chain([&kernel]).collect();
    let missing: Vec<&&Pkg> = all.iter().filter(|p| !debs.join(p.deb_name()).is_file()).collect();
    if !missing.is_empty() {
        eprintln!(
            "unikit: downloading the Xen test bed ({} Debian packages: Xen 4.17, {} as dom0, busybox; about 80 MB) into {}",
            missing.len(),
            kernel.name,
            debs.display()
        );
        download(&debs, &missing)?;
    }
    eprintln!("unikit: assembling the Xen test bed in {}", dir.display());
    // Leftovers of runs killed while assembling (we hold the lock: no one
    // else is assembling now).
    remove_entries(&cache, |n| n.starts_with("tmp-"));
    let tmp = cache.join(format!("tmp-{}", std::process::id()));
    let result = assemble(&debs, &pkgs, &kernel, &tmp);
    let staged = tmp.join("bed");
    let finished = result.and_then(|()| {
        std::fs::write(staged.join("versions.txt"), versions.join("\n") + "\n")?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&staged, &dir)
            .with_context(|| format!("cannot move the assembled bed to {}", dir.display()))?;
        std::fs::write(cache.join("current"), format!("{key}\n")).context("cannot record the current bed")
    });
    let _ = std::fs::remove_dir_all(&tmp);
    finished?;
    // Beds and packages of older versions are not used again.
    let bed_name = format!("bed-{key}");
    remove_entries(&cache, |n| n.starts_with("bed-") && n != bed_name);
    let wanted: Vec<String> = all.iter().map(|p| p.deb_name()).collect();
    remove_entries(&debs, |n| n.ends_with(".deb") && !wanted.iter().any(|w| w == n));
    Ok(bed)
}

/// Remove the entries of `dir` whose names satisfy `pred` (best effort).
fn remove_entries(dir: &Path, pred: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_str().is_some_and(&pred) {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

fn download(debs: &Path, pkgs: &[&&Pkg]) -> Result<()> {
    let out = Command::new("apt-get")
        .arg("download")
        .args(pkgs.iter().map(|p| format!("{}:{ARCH}={}", p.name, p.version)))
        .current_dir(debs)
        .stdin(Stdio::null())
        .output()
        .context("cannot run apt-get")?;
    let still: Vec<&str> =
        pkgs.iter().filter(|p| !debs.join(p.deb_name()).is_file()).map(|p| p.name.as_str()).collect();
    if !out.status.success() || !still.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rfind(|l| l.starts_with("E:")).unwrap_or("").trim().to_string();
        return Err(hinted(
            format!(
                "apt-get download failed for {}{}",
                still.join(", "),
                if last.is_empty() { String::new() } else { format!(": {last}") }
            ),
            "check that apt can reach its mirror (`apt-get update`), then try again",
        ));
    }
    Ok(())
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// Extract the packages and build the bed's three files in `tmp/bed`.
fn assemble(debs: &Path, pkgs: &[Pkg], kernel: &Pkg, tmp: &Path) -> Result<()> {
    let root = tmp.join("root");
    let kroot = tmp.join("kernel");
    let out = tmp.join("bed");
    for d in [&root, &kroot, &out] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    for p in pkgs {
        run_tool(
            Command::new("dpkg-deb").arg("-x").arg(debs.join(p.deb_name())).arg(&root),
            &format!("dpkg-deb -x {}", p.deb_name()),
        )?;
    }
    run_tool(
        Command::new("dpkg-deb").arg("-x").arg(debs.join(kernel.deb_name())).arg(&kroot),
        &format!("dpkg-deb -x {}", kernel.deb_name()),
    )?;

    // Xen: QEMU's multiboot loader wants the ELF, the package ships it gzipped.
    let xen_gz = only_file(&root.join("boot"), |n| n.starts_with("xen-") && n.ends_with(".gz"))?;
    let xen = run_tool(Command::new("gzip").arg("-dc").arg(&xen_gz), "gzip -dc (Xen)")?;
    std::fs::write(out.join("xen.elf"), xen)?;
    let vmlinuz = only_file(&kroot.join("boot"), |n| n.starts_with("vmlinuz-"))?;
    std::fs::copy(&vmlinuz, out.join("vmlinuz")).with_context(|| format!("cannot copy {}", vmlinuz.display()))?;
    let kver = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or_default()
        .to_string();
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| kroot.join(d).join(&kver))
        .find(|d| d.is_dir())
        .ok_or_else(|| anyhow!("{} has no modules for {kver}", kernel.name))?;
    let initrd = base_initramfs(&root, &modules, &kernel.name)?;
    std::fs::write(out.join("dom0-base.cpio"), initrd)?;
    Ok(())
}

/// The one file in `dir` whose name satisfies `pred`.
fn only_file(dir: &Path, pred: impl Fn(&str) -> bool) -> Result<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let e = e?;
        if e.file_name().to_str().is_some_and(&pred) {
            found.push(e.path());
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => bail!("expected one matching file in {}, found {n}", dir.display()),
    }
}

/// Read `path` inside the extracted tree `root`, following symlinks within
/// it (an absolute link such as /lib64/ld-linux-x86-64.so.2 points into the
/// tree, not at the host's own files).
fn read_in_root(root: &Path, path: &str) -> Result<Vec<u8>> {
    let Some((_, full)) = crate::exec::resolve(root, path) else {
        bail!("{path} is not in the extracted packages (or its symbolic links loop)")
    };
    std::fs::read(&full).with_context(|| format!("cannot read {}", full.display()))
}

/// The first `xen-*` directory under usr/lib that has a bin/xl.
fn xen_libexec(root: &Path) -> Result<String> {
    let lib = root.join("usr/lib");
    let mut dirs: Vec<String> = std::fs::read_dir(&lib)
        .with_context(|| format!("cannot read {}", lib.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("xen-") && lib.join(n).join("bin/xl").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
        .map(|d| format!("usr/lib/{d}/bin"))
        .ok_or_else(|| anyhow!("xl is not in the extracted xen-utils package"))
}

/// dom0's base initramfs: busybox, the Xen tools and their libraries, and
/// the kernel modules with a `modules.order` to load them in.
fn base_initramfs(root: &Path, modules: &Path, kernel_pkg: &str) -> Result<Vec<u8>> {
    let mut a = Archive::new();
    for d in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "lib",
        LIB_DIR,
        "lib64",
        "lib/modules",
        "lib/modules/unikit",
        "etc",
        "etc/xen",
        "etc/xen/scripts",
    ] {
        a.dir(d, 0o755)?;
    }
    a.file("bin/busybox", 0o755, &read_in_root(root, "bin/busybox")?)?;
    let libexec = xen_libexec(root)?;
    let mut parts = String::new();
    for c in libexec.split('/') {
        if !parts.is_empty() {
            parts.push('/');
        }
        parts.push_str(c);
        if !matches!(parts.as_str(), "usr" | "usr/lib") {
            a.dir(&parts, 0o755)?;
        }
    }
    let mut programs = Vec::new();
    for t in XEN_TOOLS {
        let data = read_in_root(root, &format!("{libexec}/{t}"))?;
        a.file(&format!("{libexec}/{t}"), 0o755, &data)?;
        a.symlink(&format!("usr/sbin/{t}"), &format!("/{libexec}/{t}"))?;
        programs.push(data);
    }
    // xenstore-utils: one program that acts on its argv[0].
    let xenstore = read_in_root(root, "usr/bin/xenstore")?;
    a.file("usr/bin/xenstore", 0o755, &xenstore)?;
    for c in XENSTORE_CMDS {
        a.symlink(&format!("usr/bin/{c}"), "xenstore")?;
    }
    programs.push(xenstore);

    // The dynamic loader and every library reachable through DT_NEEDED.
    let mut interp = None;
    let mut todo: Vec<String> = DLOPENED.iter().map(|s| s.to_string()).collect();
    for p in &programs {
        let elf = Elf::parse(p).map_err(|e| anyhow!("a Xen tool is not a usable ELF: {e}"))?;
        todo.extend(elf.needed().map_err(|e| anyhow!("{e}"))?);
        interp = interp.or_else(|| program_interpreter(p));
    }
    let interp = interp.ok_or_else(|| anyhow!("the Xen tools name no dynamic loader (PT_INTERP)"))?;
    let loader = read_in_root(root, &interp)?;
    a.file(interp.trim_start_matches('/'), 0o755, &loader)?;
    let mut done: Vec<String> = Vec::new();
    while let Some(lib) = todo.pop() {
        if done.contains(&lib) || interp.ends_with(&format!("/{lib}")) {
            continue;
        }
        let data = [LIB_DIR, &format!("usr/{LIB_DIR}")]
            .iter()
            .find_map(|d| read_in_root(root, &format!("{d}/{lib}")).ok())
            .ok_or_else(|| {
                hinted(
                    format!("the Xen tools need {lib}, which none of the test bed's packages provides"),
                    "add the package that ships it to PACKAGES in crates/cli/src/run/xen/testbed.rs",
                )
            })?;
        if let Ok(elf) = Elf::parse(&data) {
            todo.extend(elf.needed().map_err(|e| anyhow!("{lib}: {e}"))?);
        }
        a.file(&format!("{LIB_DIR}/{lib}"), 0o755, &data)?;
        done.push(lib);
    }

    // Kernel modules in load order.
    let index = module_index(modules)?;
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    let builtin: Vec<String> =
        builtin.lines().filter_map(|l| Some(norm(l.rsplit('/').next()?.split(".ko").next()?))).collect();
    let mut order = Vec::new();
    for m in MODULES {
        load_order(m, &index, &builtin, &mut order, 0).map_err(|e| anyhow!("{kernel_pkg}: {e}"))?;
    }
    let mut list = String::new();
    for (name, path) in &order {
        a.file(&format!("lib/modules/unikit/{name}.ko"), 0o644, &module_bytes(path)?)?;
        list.push_str(name);
        list.push('\n');
    }
    a.file("lib/modules/unikit/modules.order", 0o644, list.as_bytes())?;
    a.finish()
}

/// PT_INTERP of a program.
fn program_interpreter(data: &[u8]) -> Option<String> {
    let elf = Elf::parse(data).ok()?;
    let ph = elf.program_headers().find(|p| p.p_type == 3)?;
    let bytes = elf.range(ph.offset, ph.filesz)?;
    let s = bytes.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(s).into_owned())
}

/// Module names use `-` and `_` interchangeably.
fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// Normalized module name -> (file stem, path), for every module file.
fn module_index(dir: &Path) -> Result<Vec<(String, String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str())
                && let Some(stem) = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|s| name.strip_suffix(s))
            {
                out.push((norm(stem), stem.to_string(), p.clone()));
            }
        }
    }
    Ok(out)
}

/// Append `name` to `order` after its dependencies (unless built in or
/// already there).
fn load_order(
    name: &str,
    index: &[(String, String, PathBuf)],
    builtin: &[String],
    order: &mut Vec<(String, PathBuf)>,
    depth: usize,
) -> Result<()> {
    let n = norm(name);
    if order.iter().any(|(s, _)| norm(s) == n) {
        return Ok(());
    }
    if depth > 32 {
        bail!("module dependencies of {name} loop");
    }
    let Some((_, stem, path)) = index.iter().find(|(k, _, _)| *k == n) else {
        if builtin.contains(&n) {
            return Ok(());
        }
        bail!("kernel module {name} is neither a module file nor built in");
    };
    let data = module_bytes(path)?;
    for dep in module_depends(&data) {
        load_order(&dep, index, builtin, order, depth + 1)?;
    }
    order.push((stem.clone(), path.clone()));
    Ok(())
}

/// A module file's bytes, decompressed if it is .ko.xz/.zst/.gz (Debian
/// compresses modules from Linux 6.x in trixie and bookworm-backports;
/// busybox's insmod takes plain ones).
fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    };
    run_tool(Command::new(tool).arg("-dc").arg(path), &format!("{tool} -dc {}", path.display()))
}

/// The `depends=` list of a module's .modinfo.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else { return Vec::new() };
    let rest = &ko[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').filter(|s| !s.is_empty()).map(String::from).collect()
}

/// For messages: a short description of the bed (used by `platforms`).
pub fn describe_host() -> String {
    format!(
        "`--xen-testbed` runs xen images in Xen 4.17 with a Linux dom0 under QEMU TCG (slow: about 30 s per run; \
         downloads about 80 MB of Debian packages once into {})",
        cache_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "~/.cache/unikit/xen-testbed".into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_show_and_kernel_resolution() {
        let text = "Package: libc6\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\nDepends: libgcc-s1\n\n\
                    Package: linux-image-amd64\nSource: linux-signed-amd64 (6.1.192+2)\nVersion: 6.1.192-2\nArchitecture: amd64\n\
                    Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n\n\
                    Package: libc6\nVersion: 2.36-9\nArchitecture: i386\n\n\
                    Package: zlib1g\nVersion: 1:1.2.13.dfsg-1\nArchitecture: amd64\n";
        let found = parse_apt_show(text);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0], ("libc6".into(), "2.36-9+deb12u14".into(), "libgcc-s1".into()));
        assert_eq!(kernel_from_depends(&found[1].2), Some(("linux-image-6.1.0-56-amd64".into(), "6.1.192-2".into())));
        assert_eq!(
            kernel_from_depends("linux-image-6.12.9-amd64 (= 6.12.9-1~bpo12+1), foo"),
            Some(("linux-image-6.12.9-amd64".into(), "6.12.9-1~bpo12+1".into()))
        );
        assert_eq!(kernel_from_depends("initramfs-tools | linux-initramfs-tool"), None);
        let z = Pkg { name: "zlib1g".into(), version: "1:1.2.13.dfsg-1".into() };
        assert_eq!(z.deb_name(), "zlib1g_1%3a1.2.13.dfsg-1_amd64.deb");
    }

    #[test]
    fn cache_key_follows_versions() {
        let p = |v: &str| vec![Pkg { name: "xen-utils-4.17".into(), version: v.into() }];
        let k = Pkg { name: "linux-image-6.1.0-56-amd64".into(), version: "6.1.192-2".into() };
        assert_eq!(bed_key(&p("4.17.7"), &k), bed_key(&p("4.17.7"), &k));
        assert_ne!(bed_key(&p("4.17.7"), &k), bed_key(&p("4.17.8"), &k));
        assert_eq!(bed_key(&p("4.17.7"), &k).len(), 16);
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn modinfo_depends() {
        assert_eq!(module_depends(b"xx\0license=GPL\0depends=llc,stp\0intree=Y\0"), ["llc", "stp"]);
        assert!(module_depends(b"\0depends=\0name=x\0").is_empty());
        assert!(module_depends(b"no modinfo").is_empty());
    }

    #[test]
    fn module_order_puts_dependencies_first() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("kernel/net");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(k.join("bridge.ko"), b"\0depends=llc,stp\0").unwrap();
        std::fs::write(k.join("stp.ko"), b"\0depends=llc\0").unwrap();
        std::fs::write(k.join("llc.ko"), b"\0depends=\0").unwrap();
        std::fs::write(k.join("xen-privcmd.ko"), b"\0depends=\0").unwrap();
        std::fs::write(k.join("xenfs.ko"), b"\0depends=xen_privcmd,xenbus\0").unwrap();
        let index = module_index(dir.path()).unwrap();
        let builtin = vec!["xenbus".to_string()];
        let mut order = Vec::new();
        for m in ["xenfs", "bridge", "stp"] {
            load_order(m, &index, &builtin, &mut order, 0).unwrap();
        }
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["xen-privcmd", "xenfs", "llc", "stp", "bridge"]);
        let e = load_order("nosuch", &index, &builtin, &mut order, 0).unwrap_err().to_string();
        assert!(e.contains("nosuch is neither a module file nor built in"), "{e}");
        std::fs::write(k.join("a.ko"), b"\0depends=b\0").unwrap();
        std::fs::write(k.join("b.ko"), b"\0depends=a\0").unwrap();
        let index = module_index(dir.path()).unwrap();
        assert!(load_order("a", &index, &builtin, &mut Vec::new(), 0).unwrap_err().to_string().contains("loop"));
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("lib64")).unwrap();
        std::fs::write(r.join("lib/x86_64-linux-gnu/ld.so"), b"loader").unwrap();
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/ld.so", r.join("lib64/ld.so")).unwrap();
        std::os::unix::fs::symlink("ld.so", r.join("lib/x86_64-linux-gnu/ld2.so")).unwrap();
        std::os::unix::fs::symlink("../../lib/x86_64-linux-gnu/ld2.so", r.join("lib64/up.so")).unwrap();
        assert_eq!(read_in_root(r, "/lib64/ld.so").unwrap(), b"loader");
        assert_eq!(read_in_root(r, "lib64/up.so").unwrap(), b"loader");
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(read_in_root(r, "loop").is_err());
        assert!(read_in_root(r, "missing").is_err());
    }
}
