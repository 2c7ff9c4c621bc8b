//! `--exec FILE`: an unmodified x86_64 Linux program, run by the loader
//! image (the unikit app `crates/exec`, on `crates/services/posix`).
//!
//! What the host hands the guest (the interface with `crates/exec`):
//! - the initrd, a cpio "newc" archive unpacked as `/`: the rootfs folder's
//!   tree, plus the program at its guest path when it is not inside the
//!   rootfs already (then at `/bin/<name>`, or wherever a `bin` symlink of
//!   the rootfs leads, e.g. `/usr/bin/<name>`);
//! - the app arguments `[guest path, ARGS...]` (the loader's own `argv[0]`
//!   is its image name, so the program's path is the loader's `argv[1]`);
//! - the `-e` and manifest `env` variables as the app's environment
//!   (`KEY=VALUE` on the kernel command line, as for every app).
//!
//! Before anything is built or booted, the program and the rootfs are
//! checked here, each problem being one line that names the file and what
//! is wrong, through the shared ELF reader [`unikit_abi::elf`].

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use unikit_abi::elf::{ET_DYN, ET_EXEC, ET_REL, Elf, ElfError};

use crate::devices::Devices;
use crate::manifest::Manifest;
use crate::platform::Platform;

/// Guest memory of `--exec` without `-m` (a project says `memory`, whose
/// default is the same).
pub const EXEC_MEMORY: crate::memory::Memory = crate::memory::Memory::DEFAULT;

/// Overrides where the loader project is (a copy of `crates/exec`).
pub const LOADER_ENV: &str = "UNIKIT_EXEC_LOADER";

/// The loader project: `crates/exec` of the source tree this tool was built
/// from (as a development kit run from its repository finds its parts), or
/// `$UNIKIT_EXEC_LOADER`.
pub fn loader_dir() -> Result<PathBuf> {
    let (dir, from_env) = match std::env::var_os(LOADER_ENV) {
        Some(d) => (PathBuf::from(d), true),
        None => (Path::new(env!("CARGO_MANIFEST_DIR")).join("../exec"), false),
    };
    if !dir.join(crate::manifest::FILE_NAME).is_file() || !dir.join("Cargo.toml").is_file() {
        let shown = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if from_env {
            bail!(
                "the loader project for --exec is missing: ${LOADER_ENV} is {} and that holds no unikit.toml and Cargo.toml",
                shown.display()
            );
        }
        bail!(
            "the loader project for --exec is missing: {} holds no unikit.toml and Cargo.toml (unikit builds crates/exec of the source tree it was built from: keep that tree, or set {LOADER_ENV} to a copy of crates/exec)",
            shown.display()
        );
    }
    Ok(dir.canonicalize().unwrap_or(dir))
}

/// A path to check and the words that name it in messages (`--exec FILE`,
/// or `unikit.toml:LINE:COL: exec "FILE"`).
#[derive(Debug, Clone)]
pub struct Given {
    pub path: PathBuf,
    pub label: String,
}

impl Given {
    pub fn flag(flag: &str, path: &Path) -> Given {
        Given { path: path.to_path_buf(), label: format!("{flag} {}", path.display()) }
    }
}

/// A checked program, ready to be packed and booted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The program on the host.
    pub file: PathBuf,
    pub rootfs: Option<PathBuf>,
    /// Its absolute path inside the guest (its `argv[0]`).
    pub guest_path: String,
    /// The initrd entry (path relative to `/`) that carries the program
    /// when the rootfs does not hold it already.
    pub extra: Option<String>,
    /// The name of its outputs (the file name, reduced to `[A-Za-z0-9._-]`).
    pub stem: String,
}

/// Checks the program and the rootfs and decides the guest path.
pub fn prepare(file: &Given, rootfs: Option<&Given>) -> Result<Program> {
    let data = read_program(file)?;
    let interpreter = check_elf(&data, &file.label)?;
    if let Some(r) = rootfs {
        check_rootfs(r)?;
    }
    if let Some(interp) = &interpreter {
        check_interpreter(interp, rootfs, &file.label)?;
    }
    let (guest_path, extra) = place(file, rootfs)?;
    let name = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let stem = if stem.is_empty() || stem.starts_with('.') { format!("prog{stem}") } else { stem };
    Ok(Program { file: file.path.clone(), rootfs: rootfs.map(|r| r.path.clone()), guest_path, extra, stem })
}

/// Where the program comes from.
pub enum Source<'a> {
    /// `--exec FILE [--rootfs DIR]`: no project, no manifest.
    Flags { file: &'a Path, rootfs: Option<&'a Path> },
    /// A project whose unikit.toml says `exec` (its paths are relative to
    /// `dir`); a `--rootfs` flag wins over its `rootfs`.
    Project { dir: &'a Path, manifest: &'a Manifest, rootfs: Option<&'a Path> },
}

/// A build or run of a Linux program: the loader project, its manifest as
/// the program's run needs it (name, targets, memory, env, args, kernel
/// options) and the checked program.
pub struct Job {
    pub manifest: Manifest,
    pub loader: PathBuf,
    pub program: Program,
    /// The name of the outputs (the program's file name, or the project's name).
    pub stem: String,
}

/// The platforms a Linux program runs on today; the others get one line
/// saying why not.
pub fn check_platform(p: Platform) -> Result<()> {
    match p {
        Platform::Qemu | Platform::Fc | Platform::Xen | Platform::Vmware | Platform::Hyperv => Ok(()),
        Platform::Linuxu => bail!(
            "--exec is not supported on linuxu yet (it has no Linux system-call layer for programs): use --plat qemu, fc, xen, vmware or hyperv"
        ),
        Platform::Solo5 => bail!(
            "--exec is not supported on solo5 yet (Solo5 hvt has no initrd to carry the program): use --plat qemu, fc, xen, vmware or hyperv"
        ),
    }
}

impl Job {
    /// Checks the platform asked for (`plat`, if any), the program and the
    /// rootfs, and finds the loader project.
    pub fn new(source: Source, plat: Option<&str>) -> Result<Job> {
        Job::with_loader(source, plat, loader_dir)
    }

    /// [`Job::new`] with the loader project found by `loader` (once the
    /// program has passed its checks).
    pub fn with_loader(source: Source, plat: Option<&str>, loader: impl FnOnce() -> Result<PathBuf>) -> Result<Job> {
        if let Some(p) = plat {
            check_platform(crate::platform::parse_supported(p)?)?;
        }
        let (file, rootfs, user) = match source {
            Source::Flags { file, rootfs } => {
                (Given::flag("--exec", file), rootfs.map(|r| Given::flag("--rootfs", r)), None)
            }
            Source::Project { dir, manifest, rootfs } => {
                let Some(exec) = &manifest.exec else { bail!("unikit.toml has no `exec`") };
                let file = Given { path: dir.join(&exec.path), label: exec.label.clone() };
                let rootfs = match (rootfs, &manifest.rootfs) {
                    (Some(r), _) => Some(Given::flag("--rootfs", r)),
                    (None, Some(r)) => Some(Given { path: dir.join(&r.path), label: r.label.clone() }),
                    (None, None) => None,
                };
                (file, rootfs, Some(manifest))
            }
        };
        let program = prepare(&file, rootfs.as_ref())?;
        let loader = loader()?;
        let mut manifest = Manifest::load(&loader)?;
        let stem = match user {
            Some(user) => {
                let mut kernel_args = user.kernel_args.clone();
                kernel_args.extend(manifest.kernel_args.iter().filter(|a| !user.kernel_args.contains(a)).cloned());
                manifest = Manifest {
                    name: user.name.clone(),
                    targets: user.targets.clone(),
                    memory: user.memory,
                    args: user.args.clone(),
                    env: user.env.clone(),
                    kernel_args,
                    ..manifest
                };
                user.name.clone()
            }
            None => {
                manifest.memory = EXEC_MEMORY;
                program.stem.clone()
            }
        };
        manifest.targets.retain(|p| check_platform(*p).is_ok());
        Ok(Job { manifest, loader, program, stem })
    }

    /// The loader's arguments: the program's guest path, then its own
    /// arguments (`args`, or the manifest's).
    pub fn app_args(&self, args: Option<&[String]>) -> Vec<String> {
        let mut v = vec![self.program.guest_path.clone()];
        v.extend(args.unwrap_or(&self.manifest.args).iter().cloned());
        v
    }

    /// The manifest's environment with `-e` over it.
    pub fn env(&self, extra: &[(String, String)]) -> BTreeMap<String, String> {
        with_env(&self.manifest.env, extra)
    }

    /// What the initrd carries: the rootfs and the program.
    pub fn set_devices(&self, devices: &mut Devices) {
        devices.rootfs = self.program.rootfs.clone();
        devices.initrd_file = self.program.extra.clone().map(|rel| (rel, self.program.file.clone()));
    }

    /// Writes the initrd (`IMAGE.initrd`) and the kernel command line
    /// (`IMAGE.cmdline`) beside a built image.
    pub fn write_beside(
        &self,
        image: &Path,
        env: &[(String, String)],
        args: Option<&[String]>,
    ) -> Result<(PathBuf, PathBuf)> {
        let mut devices = Devices::default();
        self.set_devices(&mut devices);
        let name = image.file_name().unwrap_or_default().to_string_lossy();
        let initrd = image.with_file_name(format!("{name}.initrd"));
        // The limit is the run's to check (-m); here only cpio's own.
        devices.initrd(&initrd, u64::from(u32::MAX))?;
        let line = crate::cmdline::build(&self.manifest.kernel_args, &self.env(env), &self.app_args(args))?;
        let note = image.with_file_name(format!("{name}.cmdline"));
        let mode = std::fs::Permissions::from_mode(0o644);
        crate::build::write_atomic(&note, format!("{line}\n").as_bytes(), &mode)?;
        Ok((initrd, note))
    }
}

/// `base` with `extra` (`-e KEY=VALUE`, later ones winning) over it.
pub fn with_env(base: &BTreeMap<String, String>, extra: &[(String, String)]) -> BTreeMap<String, String> {
    let mut env = base.clone();
    env.extend(extra.iter().cloned());
    env
}

/// Largest program read whole for its checks (it is packed into an initrd
/// that must fit in the guest's memory anyway).
const MAX_PROGRAM: u64 = 1 << 32;

/// The program's bytes, if it is a regular file.
fn read_program(file: &Given) -> Result<Vec<u8>> {
    let label = &file.label;
    let meta = match std::fs::metadata(&file.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{label}: no such file"),
        Err(e) => bail!("{label}: {e}"),
    };
    if meta.is_dir() {
        bail!("{label}: is a directory, not a program");
    }
    if !meta.is_file() {
        bail!("{label}: not a regular file (a device, FIFO or socket cannot be a program)");
    }
    if meta.len() > MAX_PROGRAM {
        bail!("{label}: {} bytes is too large for a program (over 4 GiB)", meta.len());
    }
    std::fs::read(&file.path).map_err(|e| anyhow!("{label}: cannot read it: {e}"))
}

/// The architecture an `e_machine` value names (System V gABI list).
fn machine_name(m: u16) -> String {
    let name = match m {
        2 => "SPARC",
        3 => "i386",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC 64",
        22 => "S/390",
        40 => "ARM",
        43 => "SPARC V9",
        50 => "IA-64",
        62 => "x86_64",
        183 => "AArch64",
        243 => "RISC-V",
        258 => "LoongArch",
        _ => return format!("machine {m}"),
    };
    format!("{name}, e_machine {m}")
}

/// Checks that `data` is an x86_64 Linux program the loader can start
/// (static, static-pie or with an interpreter); returns its `PT_INTERP`.
pub fn check_elf(data: &[u8], label: &str) -> Result<Option<String>> {
    if data.starts_with(b"#!") {
        let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        bail!(
            "{label}: a script ({line}), not an ELF program: give its interpreter as --exec and the script as an argument"
        );
    }
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        if data.len() < 4 && b"\x7fELF".starts_with(data) && !data.is_empty() {
            bail!("{label}: truncated ELF file ({} bytes)", data.len());
        }
        bail!("{label}: not an ELF file (no \\x7fELF at its start): only x86_64 Linux programs can be run");
    }
    let le16 = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    // e_ident[EI_CLASS]: 1 = 32-bit, 2 = 64-bit; e_ident[EI_DATA]: 1 = little-endian.
    match (data.get(4), data.get(5)) {
        (Some(1), d) => {
            let m = if d == Some(&1) { le16(0x12) } else { None };
            let what = m.map(|m| format!(" ({})", machine_name(m))).unwrap_or_default();
            bail!("{label}: a 32-bit ELF program{what}: only 64-bit x86_64 programs can be run");
        }
        (Some(2), Some(2)) => {
            let m = data.get(0x12..0x14).map(|b| u16::from_be_bytes([b[0], b[1]]));
            let what = m.map(|m| format!(" ({})", machine_name(m))).unwrap_or_default();
            bail!("{label}: a big-endian ELF program{what}, not x86_64");
        }
        (None, _) | (Some(2), None) => bail!("{label}: truncated ELF file ({} bytes)", data.len()),
        _ => {}
    }
    let elf = Elf::parse(data).map_err(|e| match e {
        ElfError::BadMachine(m) => anyhow!("{label}: an ELF program for {}, not x86_64", machine_name(m)),
        ElfError::TooShort(n) => anyhow!("{label}: truncated ELF file ({n} bytes, shorter than an ELF header)"),
        ElfError::PhdrsOutside { .. } | ElfError::ShdrsOutside { .. } => {
            anyhow!("{label}: truncated or corrupt ELF file: {e}")
        }
        other => anyhow!("{label}: not a valid ELF file: {other}"),
    })?;
    match elf.e_type() {
        ET_EXEC => {}
        ET_DYN if elf.entry() != 0 => {}
        ET_DYN => bail!("{label}: a shared library (ET_DYN without an entry point), not a program"),
        ET_REL => bail!("{label}: an object file (ET_REL), not a program: link it into an executable first"),
        4 => bail!("{label}: a core dump (ET_CORE), not a program"),
        t => bail!("{label}: not an executable ELF file (e_type {t})"),
    }
    let mut loads = 0;
    for (i, ph) in elf.program_headers().enumerate() {
        if ph.is_load() {
            loads += 1;
            elf.segment_data(i, &ph).map_err(|e| anyhow!("{label}: truncated or corrupt ELF file: {e}"))?;
        }
    }
    if loads == 0 {
        bail!("{label}: an ELF file without a loadable segment (PT_LOAD), not a program");
    }
    match elf.interpreter() {
        Ok(None) => Ok(None),
        Ok(Some(p)) => match std::str::from_utf8(p) {
            Ok(p) if p.starts_with('/') => Ok(Some(p.to_string())),
            _ => bail!("{label}: its interpreter (PT_INTERP) {:?} is not an absolute path", String::from_utf8_lossy(p)),
        },
        Err(e) => bail!("{label}: truncated or corrupt ELF file: {e}"),
    }
}

/// The rootfs must be a folder.
pub fn check_rootfs(rootfs: &Given) -> Result<()> {
    let label = &rootfs.label;
    match std::fs::metadata(&rootfs.path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{label}: not a directory (the rootfs is a folder whose contents become / in the guest)"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{label}: no such directory"),
        Err(e) => bail!("{label}: {e}"),
    }
}

/// A dynamically linked program needs its interpreter in the rootfs.
fn check_interpreter(interp: &str, rootfs: Option<&Given>, label: &str) -> Result<()> {
    let Some(root) = rootfs else {
        bail!(
            "{label}: dynamically linked (interpreter {interp}) and no rootfs given: pass --rootfs DIR with {interp} and the libraries the program needs under DIR"
        );
    };
    match resolve(&root.path, interp) {
        Some((_, host)) if host.is_file() => Ok(()),
        _ => bail!(
            "{label}: dynamically linked, and its interpreter {interp} is missing from the rootfs {}: copy it and the libraries the program needs there",
            root.path.display()
        ),
    }
}

/// Most symbolic links followed in one lookup (Linux's limit).
const MAX_LINKS: usize = 40;

/// Looks `path` up inside `root` as the guest will see it, `root` being `/`:
/// symbolic links are followed inside it (absolute targets from `root`),
/// `..` stops at `root`. Returns the path relative to `root` (no leading
/// `/`) and on the host, or `None` when something on the way is missing or
/// links loop.
pub fn resolve(root: &Path, path: &str) -> Option<(String, PathBuf)> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = path.split('/').filter(|c| !c.is_empty()).map(String::from).collect();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let host = root.join(done.join("/")).join(&c);
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = std::fs::read_link(&host).ok()?;
            let target = target.to_str()?;
            if target.starts_with('/') {
                done.clear();
            }
            for part in target.split('/').filter(|p| !p.is_empty()).rev() {
                todo.push_front(part.to_string());
            }
        } else {
            // Only a folder can have more components after it.
            if !todo.is_empty() && !meta.is_dir() {
                return None;
            }
            done.push(c);
        }
    }
    let rel = done.join("/");
    let host = if rel.is_empty() { root.to_path_buf() } else { root.join(&rel) };
    Some((rel, host))
}

/// Whether two host paths hold the same file (the same inode, or the same bytes).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) if (x.dev(), x.ino()) == (y.dev(), y.ino()) => true,
        (Ok(x), Ok(y)) if x.is_file() && y.is_file() && x.len() == y.len() => {
            matches!((std::fs::read(a), std::fs::read(b)), (Ok(p), Ok(q)) if p == q)
        }
        _ => false,
    }
}

/// The program's guest path, and the initrd entry that must carry it when
/// the rootfs does not.
fn place(file: &Given, rootfs: Option<&Given>) -> Result<(String, Option<String>)> {
    let label = &file.label;
    let Some(name) = file.path.file_name().and_then(|n| n.to_str()) else {
        bail!("{label}: the file name must be UTF-8 (it becomes a path in the guest)");
    };
    let Some(root) = rootfs else {
        let rel = format!("bin/{name}");
        crate::cpio::check_name(&file.path, Path::new(&rel))?;
        return Ok((format!("/{rel}"), Some(rel)));
    };
    let abs_file = file.path.canonicalize().with_context(|| label.clone())?;
    let abs_root = root.path.canonicalize().with_context(|| root.label.clone())?;
    if let Ok(rel) = abs_file.strip_prefix(&abs_root) {
        let rel_s = crate::cpio::check_name(&file.path, rel)?;
        return Ok((format!("/{rel_s}"), None));
    }
    // Outside the rootfs: into its /bin (following a `bin -> usr/bin` link).
    let bin = match resolve(&root.path, "/bin") {
        Some((rel, host)) if host.is_dir() => rel,
        Some(_) => bail!(
            "{label}: cannot put the program at /bin/{name}: /bin in the rootfs {} is not a directory; put the program inside the rootfs instead",
            root.path.display()
        ),
        None if std::fs::symlink_metadata(root.path.join("bin")).is_ok() => bail!(
            "{label}: cannot put the program at /bin/{name}: /bin in the rootfs {} is a dangling or looping link; put the program inside the rootfs instead",
            root.path.display()
        ),
        None => "bin".to_string(),
    };
    let rel = format!("{bin}/{name}");
    crate::cpio::check_name(&file.path, Path::new(&rel))?;
    let there = root.path.join(&rel);
    if std::fs::symlink_metadata(&there).is_ok() {
        return match resolve(&root.path, &rel) {
            Some((real, host)) if same_file(&host, &file.path) => Ok((format!("/{real}"), None)),
            _ => bail!(
                "{label}: the rootfs {} already has a different file at /{rel}; put the program inside the rootfs, or rename it",
                root.path.display()
            ),
        };
    }
    Ok((format!("/{rel}"), Some(rel)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use unikit_abi::elf::{PT_INTERP, PT_LOAD, ProgramHeader};

    /// A small ELF64 file: header, `phdrs`, then `tail` at offset 0x100.
    fn elf(e_type: u16, machine: u16, entry: u64, phdrs: &[ProgramHeader], tail: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 0x100];
        f[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        f[0x10..0x12].copy_from_slice(&e_type.to_le_bytes());
        f[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        f[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        f[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, p) in phdrs.iter().enumerate() {
            f[64 + 56 * i..120 + 56 * i].copy_from_slice(&p.to_bytes());
        }
        f.extend_from_slice(tail);
        f
    }

    fn load(size: u64) -> ProgramHeader {
        ProgramHeader {
            p_type: PT_LOAD,
            flags: 5,
            offset: 0,
            vaddr: 0x40_0000,
            filesz: size,
            memsz: size,
            align: 0x1000,
            ..Default::default()
        }
    }

    fn static_exe() -> Vec<u8> {
        elf(ET_EXEC, 62, 0x40_0100, &[load(0x110)], &[0x90; 0x10])
    }

    fn dynamic_exe(interp: &str) -> Vec<u8> {
        let mut path = interp.as_bytes().to_vec();
        path.push(0);
        let ph = ProgramHeader { p_type: PT_INTERP, offset: 0x100, filesz: path.len() as u64, ..Default::default() };
        elf(ET_DYN, 62, 0x1000, &[ph, load(0x100 + path.len() as u64)], &path)
    }

    fn err(data: &[u8]) -> String {
        check_elf(data, "--exec p").unwrap_err().to_string()
    }

    #[test]
    fn programs_that_load() {
        assert_eq!(check_elf(&static_exe(), "x").unwrap(), None);
        let pie = elf(ET_DYN, 62, 0x1040, &[load(0x110)], &[0; 0x10]);
        assert_eq!(check_elf(&pie, "x").unwrap(), None);
        assert_eq!(
            check_elf(&dynamic_exe("/lib/ld-musl-x86_64.so.1"), "x").unwrap().as_deref(),
            Some("/lib/ld-musl-x86_64.so.1")
        );
    }

    #[test]
    fn not_elf_or_truncated() {
        assert_eq!(
            err(b"hello world"),
            "--exec p: not an ELF file (no \\x7fELF at its start): only x86_64 Linux programs can be run"
        );
        assert_eq!(
            err(b""),
            "--exec p: not an ELF file (no \\x7fELF at its start): only x86_64 Linux programs can be run"
        );
        assert!(err(b"#!/bin/sh\necho hi\n").starts_with("--exec p: a script (#!/bin/sh), not an ELF program"));
        assert_eq!(err(b"\x7fEL"), "--exec p: truncated ELF file (3 bytes)");
        assert_eq!(err(b"\x7fELF"), "--exec p: truncated ELF file (4 bytes)");
        let exe = static_exe();
        assert_eq!(err(&exe[..40]), "--exec p: truncated ELF file (40 bytes, shorter than an ELF header)");
        assert!(
            err(&exe[..100]).starts_with("--exec p: truncated or corrupt ELF file: program headers"),
            "{}",
            err(&exe[..100])
        );
        // The header and its table are there, the segment is cut.
        assert!(
            err(&exe[..0x108]).starts_with("--exec p: truncated or corrupt ELF file: phdr[0]"),
            "{}",
            err(&exe[..0x108])
        );
        let d = dynamic_exe("/lib/ld.so");
        assert!(err(&d[..0x104]).contains("truncated or corrupt ELF file"), "{}", err(&d[..0x104]));
    }

    #[test]
    fn wrong_class_or_machine() {
        let mut e32 = static_exe();
        e32[4] = 1;
        e32[0x12] = 3;
        assert_eq!(
            err(&e32),
            "--exec p: a 32-bit ELF program (i386, e_machine 3): only 64-bit x86_64 programs can be run"
        );
        let mut arm = static_exe();
        arm[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        assert_eq!(err(&arm), "--exec p: an ELF program for AArch64, e_machine 183, not x86_64");
        let mut be = static_exe();
        be[5] = 2;
        be[0x12..0x14].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(err(&be), "--exec p: a big-endian ELF program (S/390, e_machine 22), not x86_64");
        arm[0x12..0x14].copy_from_slice(&999u16.to_le_bytes());
        assert_eq!(err(&arm), "--exec p: an ELF program for machine 999, not x86_64");
    }

    #[test]
    fn not_an_executable() {
        assert_eq!(
            err(&elf(ET_REL, 62, 0, &[], &[])),
            "--exec p: an object file (ET_REL), not a program: link it into an executable first"
        );
        assert_eq!(
            err(&elf(ET_DYN, 62, 0, &[load(0x100)], &[])),
            "--exec p: a shared library (ET_DYN without an entry point), not a program"
        );
        assert_eq!(err(&elf(4, 62, 0, &[], &[])), "--exec p: a core dump (ET_CORE), not a program");
        assert_eq!(
            err(&elf(ET_EXEC, 62, 0x40_0000, &[], &[])),
            "--exec p: an ELF file without a loadable segment (PT_LOAD), not a program"
        );
        let mut bad = dynamic_exe("lib/ld.so");
        assert!(err(&bad).contains("is not an absolute path"), "{}", err(&bad));
        let n = bad.len();
        bad[n - 1] = b'x'; // no NUL
        assert!(err(&bad).contains("PT_INTERP is not a NUL-terminated path"), "{}", err(&bad));
    }

    fn given(path: &Path, flag: &str) -> Given {
        Given::flag(flag, path)
    }

    #[test]
    fn file_must_be_a_regular_file() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope");
        let e = prepare(&given(&missing, "--exec"), None).unwrap_err().to_string();
        assert_eq!(e, format!("--exec {}: no such file", missing.display()));
        let e = prepare(&given(t.path(), "--exec"), None).unwrap_err().to_string();
        assert!(e.ends_with(": is a directory, not a program"), "{e}");
        let e = prepare(&given(Path::new("/dev/null"), "--exec"), None).unwrap_err().to_string();
        assert_eq!(e, "--exec /dev/null: not a regular file (a device, FIFO or socket cannot be a program)");
    }

    #[test]
    fn rootfs_must_be_a_directory() {
        let t = tempfile::tempdir().unwrap();
        let prog = t.path().join("prog");
        std::fs::write(&prog, static_exe()).unwrap();
        let e = prepare(&given(&prog, "--exec"), Some(&given(&prog, "--rootfs"))).unwrap_err().to_string();
        assert!(e.ends_with("not a directory (the rootfs is a folder whose contents become / in the guest)"), "{e}");
        let e = prepare(&given(&prog, "--exec"), Some(&given(&t.path().join("x"), "--rootfs"))).unwrap_err();
        assert!(e.to_string().ends_with("/x: no such directory"), "{e}");
    }

    #[test]
    fn interpreter_must_be_in_the_rootfs() {
        let t = tempfile::tempdir().unwrap();
        let prog = t.path().join("prog");
        std::fs::write(&prog, dynamic_exe("/lib64/ld-linux-x86-64.so.2")).unwrap();
        let e = prepare(&given(&prog, "--exec"), None).unwrap_err().to_string();
        assert!(
            e.ends_with(": dynamically linked (interpreter /lib64/ld-linux-x86-64.so.2) and no rootfs given: pass --rootfs DIR with /lib64/ld-linux-x86-64.so.2 and the libraries the program needs under DIR"),
            "{e}"
        );
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        let e = prepare(&given(&prog, "--exec"), Some(&given(&root, "--rootfs"))).unwrap_err().to_string();
        assert!(e.contains("its interpreter /lib64/ld-linux-x86-64.so.2 is missing from the rootfs"), "{e}");
        // Debian's shape: /lib64 -> usr/lib64, and ld.so a link to an absolute path.
        std::os::unix::fs::symlink("usr/lib64", root.join("lib64")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
        std::os::unix::fs::symlink(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            root.join("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        assert!(prepare(&given(&prog, "--exec"), Some(&given(&root, "--rootfs"))).is_err());
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), b"ld").unwrap();
        let p = prepare(&given(&prog, "--exec"), Some(&given(&root, "--rootfs"))).unwrap();
        assert_eq!((p.guest_path.as_str(), p.extra.as_deref()), ("/bin/prog", Some("bin/prog")));
    }

    /// A loader project folder: only its unikit.toml is read here.
    fn loader(dir: &Path) -> PathBuf {
        let l = dir.join("loader");
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(
            l.join("unikit.toml"),
            "name = \"exec\"\ntargets = [\"qemu/x86_64\", \"fc/x86_64\", \"xen/x86_64\", \"linuxu/x86_64\"]\nmemory = \"8M\"\nkernel_args = [\"unikit.quiet\"]\n",
        )
        .unwrap();
        l
    }

    #[test]
    fn a_job_from_flags() {
        let t = tempfile::tempdir().unwrap();
        let l = loader(t.path());
        let prog = t.path().join("prog");
        std::fs::write(&prog, static_exe()).unwrap();
        let j = Job::with_loader(Source::Flags { file: &prog, rootfs: None }, Some("qemu"), || Ok(l.clone())).unwrap();
        assert_eq!(j.loader, l);
        assert_eq!((j.manifest.name.as_str(), j.stem.as_str()), ("exec", "prog"));
        // The loader's targets that can run programs; --exec's own memory.
        assert_eq!(j.manifest.targets, [Platform::Qemu, Platform::Fc, Platform::Xen]);
        assert_eq!(j.manifest.memory, EXEC_MEMORY);
        assert_eq!(j.app_args(None), ["/bin/prog"]);
        assert_eq!(j.app_args(Some(&["a".into(), "b c".into()])), ["/bin/prog", "a", "b c"]);
        let env = j.env(&[("A".into(), "1".into()), ("A".into(), "2".into())]);
        assert_eq!(env.into_iter().collect::<Vec<_>>(), [("A".to_string(), "2".to_string())]);
        let mut d = Devices::default();
        j.set_devices(&mut d);
        assert_eq!(d.initrd_file, Some(("bin/prog".into(), prog.clone())));
        // Platforms are refused before the program is looked at.
        let e =
            Job::with_loader(
                Source::Flags { file: Path::new("/nope"), rootfs: None },
                Some("linuxu"),
                || Ok(l.clone()),
            );
        assert!(e.err().unwrap().to_string().starts_with("--exec is not supported on linuxu yet"));
        let e = Job::with_loader(Source::Flags { file: &prog, rootfs: None }, None, || bail!("no loader"));
        assert_eq!(e.err().unwrap().to_string(), "no loader");
    }

    #[test]
    fn a_job_from_a_manifest() {
        let t = tempfile::tempdir().unwrap();
        let l = loader(t.path());
        let proj = t.path().join("proj");
        std::fs::create_dir_all(proj.join("root/data")).unwrap();
        std::fs::write(proj.join("root/server"), static_exe()).unwrap();
        let text = "name = \"web\"\nexec = \"root/server\"\nrootfs = \"root\"\nmemory = \"96M\"\nargs = [\"-v\"]\nenv = { A = \"1\" }\nkernel_args = [\"unikit.strace\"]\ntargets = [\"xen/x86_64\"]\n";
        let m = Manifest::parse(text, &proj.join("unikit.toml")).unwrap();
        let j = Job::with_loader(Source::Project { dir: &proj, manifest: &m, rootfs: None }, None, || Ok(l.clone()))
            .unwrap();
        assert_eq!((j.manifest.name.as_str(), j.stem.as_str()), ("web", "web"));
        assert_eq!(j.manifest.targets, [Platform::Xen]);
        assert_eq!(j.manifest.memory, crate::memory::Memory::parse("96M").unwrap());
        assert_eq!(j.manifest.kernel_args, ["unikit.strace", "unikit.quiet"]);
        assert_eq!(j.app_args(None), ["/server", "-v"]);
        assert_eq!(j.env(&[("B".into(), "2".into())]).len(), 2);
        assert_eq!(
            (j.program.rootfs.as_deref(), j.program.extra.as_deref()),
            (Some(proj.join("root").as_path()), None)
        );
        // Its messages point into the manifest.
        let m = Manifest::parse("name = \"web\"\nexec = \"gone\"\n", &proj.join("unikit.toml")).unwrap();
        let e = Job::with_loader(Source::Project { dir: &proj, manifest: &m, rootfs: None }, None, || Ok(l.clone()));
        assert_eq!(
            e.err().unwrap().to_string(),
            format!("{}:2:8: exec \"gone\": no such file", proj.join("unikit.toml").display())
        );
    }

    #[test]
    fn resolve_stays_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/a"), b"a").unwrap();
        std::os::unix::fs::symlink("/usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("../../../../../../usr/bin/a", root.join("usr/bin/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve(root, "/bin/a"), Some(("usr/bin/a".into(), root.join("usr/bin/a"))));
        assert_eq!(resolve(root, "/bin/up").map(|r| r.0), Some("usr/bin/a".into()));
        assert_eq!(resolve(root, "/../../bin/./a").map(|r| r.0), Some("usr/bin/a".into()));
        assert_eq!(resolve(root, "/loop"), None);
        assert_eq!(resolve(root, "/usr/bin/a/b"), None);
        assert_eq!(resolve(root, "/nope"), None);
    }

    #[test]
    fn guest_paths() {
        let t = tempfile::tempdir().unwrap();
        let prog = t.path().join("my prog");
        std::fs::write(&prog, static_exe()).unwrap();
        let p = prepare(&given(&prog, "--exec"), None).unwrap();
        assert_eq!(
            (p.guest_path.as_str(), p.extra.as_deref(), p.stem.as_str()),
            ("/bin/my prog", Some("bin/my prog"), "my_prog")
        );
        // Inside the rootfs: its path there.
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
        std::fs::write(root.join("usr/sbin/nginx"), static_exe()).unwrap();
        let p = prepare(&given(&root.join("usr/sbin/nginx"), "--exec"), Some(&given(&root, "--rootfs"))).unwrap();
        assert_eq!((p.guest_path.as_str(), p.extra), ("/usr/sbin/nginx", None));
        // Outside, with a merged /usr: where /bin leads.
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        let p = prepare(&given(&prog, "--exec"), Some(&given(&root, "--rootfs"))).unwrap();
        assert_eq!((p.guest_path.as_str(), p.extra.as_deref()), ("/usr/bin/my prog", Some("usr/bin/my prog")));
        // A different file already there is refused; the same one is used as is.
        std::fs::write(root.join("usr/bin/my prog"), b"other").unwrap();
        let e = prepare(&given(&prog, "--exec"), Some(&given(&root, "--rootfs"))).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "already has a different file at /usr/bin/my prog; put the program inside the rootfs, or rename it"
            ),
            "{e}"
        );
        std::fs::write(root.join("usr/bin/my prog"), static_exe()).unwrap();
        let p = prepare(&given(&prog, "--exec"), Some(&given(&root, "--rootfs"))).unwrap();
        assert_eq!((p.guest_path.as_str(), p.extra), ("/usr/bin/my prog", None));
        // /bin that is a file.
        let root2 = t.path().join("root2");
        std::fs::create_dir_all(&root2).unwrap();
        std::fs::write(root2.join("bin"), b"").unwrap();
        let e = prepare(&given(&prog, "--exec"), Some(&given(&root2, "--rootfs"))).unwrap_err().to_string();
        assert!(e.contains("/bin in the rootfs") && e.contains("is not a directory"), "{e}");
    }
}
