//! The project manifest, `unikit.toml`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use toml::Spanned;

use crate::error::hinted;
use crate::memory::Memory;
use crate::platform::Platform;

pub const FILE_NAME: &str = "unikit.toml";

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    /// Distinct platforms, in the order of `targets` (all for x86_64).
    pub targets: Vec<Platform>,
    pub memory: Memory,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub features: Vec<String>,
    pub kernel_args: Vec<String>,
    /// Devices a solo5 image declares in its Solo5 manifest when built with
    /// `unikit build` (`net:NAME` / `block:NAME`); `unikit run` derives them
    /// from its own `--net`/`-p`/`--disk` flags instead.
    pub solo5_devices: Vec<String>,
    /// `exec = "path"`: a Linux program to run in the `--exec` loader image
    /// (the project then needs no Cargo crate), as written (relative to the
    /// project folder), with where it was written for messages.
    pub exec: Option<Located>,
    /// `rootfs = "dir"`: the folder packed into the initrd that becomes `/`
    /// (what `--rootfs` gives; the flag wins).
    pub rootfs: Option<Located>,
}

/// A path from the manifest and where it stands (`file:line:column`), so
/// that the checks made later (the file is missing, not an ELF, ...) can
/// point at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub path: std::path::PathBuf,
    /// `unikit.toml:LINE:COLUMN: KEY "VALUE"`: the label of its messages.
    pub label: String,
}

/// The platforms the `--exec` loader image runs on (crates/exec's targets).
pub const EXEC_TARGETS: [Platform; 3] = [Platform::Qemu, Platform::Fc, Platform::Xen];

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Spanned<String>,
    targets: Option<Spanned<Vec<Spanned<String>>>>,
    memory: Option<Spanned<toml::Value>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    kernel_args: Vec<Spanned<String>>,
    #[serde(default)]
    solo5_devices: Vec<Spanned<String>>,
    exec: Option<Spanned<String>>,
    rootfs: Option<Spanned<String>>,
}

/// A problem at a byte range of the file (when known).
struct Problem {
    span: Option<Range<usize>>,
    message: String,
}

impl Problem {
    fn at(span: Range<usize>, message: impl Into<String>) -> Problem {
        Problem { span: Some(span), message: message.into() }
    }
}

/// Largest manifest read: a real one is a few hundred bytes.
pub const MAX_SIZE: u64 = 1 << 20;

/// Reads a manifest that is a regular file of at most [`MAX_SIZE`] bytes,
/// deciding from its metadata before reading (a FIFO would block, a link to
/// /dev/zero never end). Opened non-blocking and read through a limit, so a
/// file swapped after the check cannot hang or flood us either.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let too_big = |n: u64| Error::other(format!("it is {n} bytes, over the limit of {MAX_SIZE} bytes for unikit.toml"));
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory cannot be a manifest)",
        ));
    }
    if meta.len() > MAX_SIZE {
        return Err(too_big(meta.len()));
    }
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_SIZE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_SIZE {
        return Err(too_big(buf.len() as u64));
    }
    Ok(buf)
}

impl Manifest {
    /// Read `DIR/unikit.toml`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(FILE_NAME);
        let text = match read_bounded(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(hinted(
                    format!("no {FILE_NAME} in {}", dir.display()),
                    "a unikit project folder holds unikit.toml and the app's Cargo.toml; use -C DIR to choose it",
                ));
            }
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        let text = String::from_utf8(text).map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))?;
        Manifest::parse(&text, &path)
    }

    /// Parse manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        Manifest::parse_inner(text, path).map_err(|p| {
            let message = p.message.trim().replace('\n', "; ");
            match p.span {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    anyhow::anyhow!("{}:{line}:{col}: {message}", path.display())
                }
                None => anyhow::anyhow!("{}: {message}", path.display()),
            }
        })
    }

    fn parse_inner(text: &str, path: &Path) -> Result<Manifest, Problem> {
        let raw: Raw =
            toml::from_str(text).map_err(|e| Problem { span: e.span(), message: e.message().to_string() })?;

        let name = raw.name.get_ref();
        let name_ok = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(Problem::at(
                raw.name.span(),
                format!("invalid name '{name}' (use letters, digits, '-', '_' and '.'; it names the image file)"),
            ));
        }

        // A path key: not empty, and its place in the file for later messages.
        let located = |key: &str, v: &Option<Spanned<String>>| -> Result<Option<Located>, Problem> {
            let Some(v) = v else { return Ok(None) };
            if v.get_ref().is_empty() {
                return Err(Problem::at(v.span(), format!("'{key}' is empty; give a path")));
            }
            let (line, col) = line_col(text, v.span().start);
            let label = format!("{}:{line}:{col}: {key} {:?}", path.display(), v.get_ref());
            Ok(Some(Located { path: v.get_ref().into(), label }))
        };
        let exec = located("exec", &raw.exec)?;
        let rootfs = located("rootfs", &raw.rootfs)?;

        let mut targets = Vec::new();
        match &raw.targets {
            // An exec project runs wherever the loader image does.
            None if exec.is_some() => targets.extend(EXEC_TARGETS),
            None => return Err(Problem { span: None, message: "missing field `targets`".into() }),
            Some(list) if list.get_ref().is_empty() => {
                return Err(Problem::at(list.span(), "'targets' is empty; list at least one, e.g. [\"qemu/x86_64\"]"));
            }
            Some(list) => {
                for t in list.get_ref() {
                    let p = parse_target(t.get_ref()).map_err(|m| Problem::at(t.span(), m))?;
                    if targets.contains(&p) {
                        return Err(Problem::at(t.span(), format!("target '{}' is listed twice", t.get_ref())));
                    }
                    if exec.is_some() && !EXEC_TARGETS.contains(&p) {
                        return Err(Problem::at(
                            t.span(),
                            format!(
                                "target '{}': Linux programs (exec) run on qemu, fc and xen for now, not on {p}",
                                t.get_ref()
                            ),
                        ));
                    }
                    targets.push(p);
                }
            }
        }
        if exec.is_some()
            && let Some(f) = raw.features.first()
        {
            return Err(Problem {
                span: None,
                message: format!(
                    "features = [\"{f}\", ...]: an exec project has no crate of its own to give features to"
                ),
            });
        }

        let memory = match &raw.memory {
            None => Memory::DEFAULT,
            Some(m) => {
                let parsed = match m.get_ref() {
                    toml::Value::String(s) => Memory::parse(s),
                    toml::Value::Integer(n) => Memory::parse(&n.to_string()),
                    other => Err(format!("'memory' must be a string like \"64M\", not a {}", other.type_str())),
                };
                parsed.map_err(|msg| Problem::at(m.span(), msg))?
            }
        };

        for key in raw.env.keys() {
            if !crate::cmdline::valid_env_key(key) {
                return Err(Problem {
                    span: None,
                    message: format!("invalid env variable name '{key}' (must match [A-Za-z_][A-Za-z0-9_]*)"),
                });
            }
        }

        let mut solo5_devices: Vec<String> = Vec::new();
        for d in &raw.solo5_devices {
            let dev = d.get_ref();
            check_solo5_device(dev).map_err(|m| Problem::at(d.span(), m))?;
            if solo5_devices.iter().any(|x| x.split_once(':').map(|p| p.1) == dev.split_once(':').map(|p| p.1)) {
                return Err(Problem::at(d.span(), format!("solo5 device '{dev}' is named twice")));
            }
            solo5_devices.push(dev.clone());
        }

        for a in &raw.kernel_args {
            crate::cmdline::check_kernel_arg(a.get_ref()).map_err(|m| Problem::at(a.span(), m))?;
        }

        Ok(Manifest {
            name: raw.name.into_inner(),
            targets,
            memory,
            args: raw.args,
            env: raw.env,
            features: raw.features,
            kernel_args: raw.kernel_args.into_iter().map(|a| a.into_inner()).collect(),
            solo5_devices,
            exec,
            rootfs,
        })
    }
}

/// `net:NAME` or `block:NAME`, NAME being 1 to 67 of [A-Za-z0-9] (what
/// solo5-hvt's `--net:NAME=` / `--block:NAME=` accept).
pub fn check_solo5_device(dev: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid solo5 device '{dev}' (expected \"net:NAME\" or \"block:NAME\", NAME of 1 to 67 letters and digits)"
        )
    };
    let (kind, name) = dev.split_once(':').ok_or_else(bad)?;
    let name_ok = !name.is_empty() && name.len() <= 67 && name.bytes().all(|b| b.is_ascii_alphanumeric());
    if !matches!(kind, "net" | "block") || !name_ok {
        return Err(bad());
    }
    Ok(())
}

/// `<plat>/<arch>` with a known platform and arch `x86_64`.
fn parse_target(t: &str) -> Result<Platform, String> {
    let Some((plat, arch)) = t.split_once('/') else {
        return Err(format!("invalid target '{t}' (expected \"<platform>/<arch>\", e.g. \"qemu/x86_64\")"));
    };
    let p = Platform::parse(plat).map_err(|e| format!("invalid target '{t}': {e}"))?;
    if arch != "x86_64" {
        return Err(format!("invalid target '{t}': unsupported architecture '{arch}' (only x86_64 for now)"));
    }
    Ok(p)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, Path::new("p/unikit.toml")).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn full_manifest() {
        let m = parse(
            r#"
name = "hello"
targets = ["qemu/x86_64", "linuxu/x86_64"]
memory = "32M"
args = ["--greeting", "hi"]
env = { GREETING = "hello" }
features = ["net"]
kernel_args = ["unikit.quiet"]
"#,
        )
        .unwrap();
        assert_eq!(m.name, "hello");
        assert_eq!(m.targets, vec![Platform::Qemu, Platform::Linuxu]);
        assert_eq!(m.memory, Memory::parse("32M").unwrap());
        assert_eq!(m.args, ["--greeting", "hi"]);
        assert_eq!(m.env["GREETING"], "hello");
        assert_eq!(m.features, ["net"]);
        assert_eq!(m.kernel_args, ["unikit.quiet"]);
    }

    #[test]
    fn solo5_devices() {
        let m =
            parse("name = \"a\"\ntargets = [\"solo5/x86_64\"]\nsolo5_devices = [\"net:service\", \"block:storage\"]\n")
                .unwrap();
        assert_eq!(m.targets, vec![Platform::Solo5]);
        assert_eq!(m.solo5_devices, ["net:service", "block:storage"]);
        let e = parse("name = \"a\"\ntargets = [\"solo5/x86_64\"]\nsolo5_devices = [\"disk:x\"]\n").unwrap_err();
        assert_eq!(
            e,
            "p/unikit.toml:3:18: invalid solo5 device 'disk:x' (expected \"net:NAME\" or \"block:NAME\", NAME of 1 to 67 letters and digits)"
        );
        let e = parse("name = \"a\"\ntargets = [\"solo5/x86_64\"]\nsolo5_devices = [\"net:my_net\"]\n").unwrap_err();
        assert!(e.contains("invalid solo5 device 'net:my_net'"), "{e}");
        let e = parse("name = \"a\"\ntargets = [\"solo5/x86_64\"]\nsolo5_devices = [\"net:a\", \"block:a\"]\n")
            .unwrap_err();
        assert!(e.contains("named twice"), "{e}");
        assert!(parse("name = \"a\"\ntargets = [\"qemu/x86_64\"]\n").unwrap().solo5_devices.is_empty());
    }

    #[test]
    fn exec_and_rootfs() {
        let m = parse("name = \"web\"\nexec = \"root/usr/sbin/nginx\"\nrootfs = \"root\"\nargs = [\"-g\", \"daemon off;\"]\nenv = { A = \"1\" }\n")
            .unwrap();
        // No targets: wherever the loader image runs.
        assert_eq!(m.targets, EXEC_TARGETS);
        let exec = m.exec.unwrap();
        assert_eq!(exec.path, Path::new("root/usr/sbin/nginx"));
        assert_eq!(exec.label, "p/unikit.toml:2:8: exec \"root/usr/sbin/nginx\"");
        assert_eq!(m.rootfs.unwrap().label, "p/unikit.toml:3:10: rootfs \"root\"");
        assert_eq!(m.args, ["-g", "daemon off;"]);
        let m = parse("name = \"a\"\nexec = \"prog\"\ntargets = [\"xen/x86_64\"]\n").unwrap();
        assert_eq!(m.targets, [Platform::Xen]);
        // A plain app may have a rootfs too.
        let m = parse("name = \"a\"\ntargets = [\"qemu/x86_64\"]\nrootfs = \"www\"\n").unwrap();
        assert!(m.exec.is_none() && m.rootfs.is_some());
    }

    #[test]
    fn bad_exec_values() {
        let e = parse("name = \"a\"\nexec = \"\"\n").unwrap_err();
        assert_eq!(e, "p/unikit.toml:2:8: 'exec' is empty; give a path");
        let e = parse("name = \"a\"\nexec = 3\n").unwrap_err();
        assert!(e.starts_with("p/unikit.toml:2:8: invalid type: integer `3`, expected a string"), "{e}");
        let e = parse("name = \"a\"\nrootfs = [\"x\"]\ntargets = [\"qemu/x86_64\"]\n").unwrap_err();
        assert!(e.starts_with("p/unikit.toml:2:10: invalid type"), "{e}");
        let e = parse("name = \"a\"\nexec = \"p\"\ntargets = [\"qemu/x86_64\", \"linuxu/x86_64\"]\n").unwrap_err();
        assert_eq!(
            e,
            "p/unikit.toml:3:27: target 'linuxu/x86_64': Linux programs (exec) run on qemu, fc and xen for now, not on linuxu"
        );
        let e = parse("name = \"a\"\nexec = \"p\"\nfeatures = [\"net\"]\n").unwrap_err();
        assert!(e.contains("an exec project has no crate of its own"), "{e}");
        let e = parse("name = \"a\"\nexce = \"p\"\n").unwrap_err();
        assert!(e.starts_with("p/unikit.toml:2:1: unknown field `exce`"), "{e}");
    }

    #[test]
    fn minimal_manifest_defaults() {
        let m = parse("name = \"a\"\ntargets = [\"kvm/x86_64\", \"xen/x86_64\"]\n").unwrap();
        assert_eq!(m.targets, vec![Platform::Qemu, Platform::Xen]);
        assert_eq!(m.memory, Memory::DEFAULT);
        assert!(m.args.is_empty() && m.env.is_empty() && m.features.is_empty() && m.kernel_args.is_empty());
        assert_eq!(
            parse("name = \"a\"\ntargets = [\"qemu/x86_64\"]\nmemory = 16").unwrap().memory,
            Memory::parse("16M").unwrap()
        );
    }

    #[test]
    fn missing_fields() {
        let e = parse("targets = [\"qemu/x86_64\"]").unwrap_err();
        assert!(e.starts_with("p/unikit.toml") && e.contains("missing field `name`"), "{e}");
        let e = parse("name = \"a\"").unwrap_err();
        assert!(e.contains("missing field `targets`"), "{e}");
    }

    #[test]
    fn unknown_key_has_position() {
        let e = parse("name = \"a\"\ntargets = [\"qemu/x86_64\"]\nmemroy = \"1M\"\n").unwrap_err();
        assert!(e.starts_with("p/unikit.toml:3:1: unknown field `memroy`"), "{e}");
    }

    #[test]
    fn malformed_toml_has_position() {
        let e = parse("name = \"a\ntargets = []").unwrap_err();
        assert!(e.starts_with("p/unikit.toml:1:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn bad_targets() {
        let e = parse("name = \"a\"\ntargets = []").unwrap_err();
        assert!(e.contains("p/unikit.toml:2:11: 'targets' is empty"), "{e}");
        let e = parse("name = \"a\"\ntargets = [\"qemu\"]").unwrap_err();
        assert!(e.contains("2:12: invalid target 'qemu' (expected"), "{e}");
        let e = parse("name = \"a\"\ntargets = [\"foo/x86_64\"]").unwrap_err();
        assert!(e.contains("unknown platform 'foo'"), "{e}");
        let e = parse("name = \"a\"\ntargets = [\"qemu/aarch64\"]").unwrap_err();
        assert!(e.contains("unsupported architecture 'aarch64'"), "{e}");
        let e = parse("name = \"a\"\ntargets = [\"qemu/x86_64\", \"kvm/x86_64\"]").unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = parse("name = \"a\"\ntargets = \"qemu/x86_64\"").unwrap_err();
        assert!(e.contains("2:11:"), "{e}");
    }

    #[test]
    fn bad_memory_name_env() {
        let e = parse("name = \"a\"\ntargets = [\"qemu/x86_64\"]\nmemory = \"lots\"").unwrap_err();
        assert!(e.contains("3:10: invalid memory size 'lots'"), "{e}");
        let e = parse("name = \"a\"\ntargets = [\"qemu/x86_64\"]\nmemory = 1.5").unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
        let e = parse("name = \"a/b\"\ntargets = [\"qemu/x86_64\"]").unwrap_err();
        assert!(e.contains("1:8: invalid name 'a/b'"), "{e}");
        let e = parse("name = \"a\"\ntargets = [\"qemu/x86_64\"]\nenv = { \"1X\" = \"v\" }").unwrap_err();
        assert!(e.contains("invalid env variable name '1X'"), "{e}");
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("", 5), (1, 1));
    }

    mod prop {
        use proptest::prelude::*;

        fn parse_bytes(bytes: &[u8]) {
            // What `load` does after reading: UTF-8 first, then the parser.
            if let Ok(text) = std::str::from_utf8(bytes) {
                let _ = super::super::Manifest::parse(text, std::path::Path::new("unikit.toml"));
            }
        }

        /// Pieces of valid manifests, so that mutations reach deep into the parser.
        fn near_valid() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("name = \"x\"\n".to_string()),
                Just("targets = [\"qemu/x86_64\", \"linuxu/x86_64\"]\n".to_string()),
                Just("memory = \"64M\"\n".to_string()),
                Just("memory = 99999999999999999999\n".to_string()),
                Just("kernel_args = [\"--\", \"a=b\", \"\"]\n".to_string()),
                Just("solo5_devices = [\"net:a\", \"block:\"]\n".to_string()),
                Just("env = { A = \"1\", \"=\" = \"\" }\n".to_string()),
                Just("[x]\n".to_string()),
                "[ -~\n]{0,40}",
                "\\PC{0,20}",
            ];
            prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                parse_bytes(&bytes);
            }

            #[test]
            fn near_valid_manifests_never_panic(text in near_valid(), cut in any::<prop::sample::Index>()) {
                parse_bytes(text.as_bytes());
                // Cut anywhere (at a char boundary): truncated files.
                let at = cut.index(text.len() + 1);
                if text.is_char_boundary(at) {
                    parse_bytes(&text.as_bytes()[..at]);
                }
            }
        }
    }
}
