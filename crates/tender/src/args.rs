//! The command line, as `solo5-hvt` takes it (tenders/hvt/hvt_main.c,
//! hvt_module_net.c, hvt_module_blk.c):
//!
//! ```text
//! unikit-hvt [--mem=MB] [--net:NAME=IFACE|@FD] [--net-mac:NAME=HWADDR]
//!            [--block:NAME=PATH] [--block-sector-size:NAME=SIZE] [--] KERNEL [ARGS...]
//! ```
//!
//! Options come before the unikernel; the first argument that does not start
//! with `-` (or the one after `--`) is the unikernel, and everything after it
//! is the guest's command line, joined with spaces. NAME is 1 to 67 of
//! `[A-Za-z0-9]`. Device names are resolved against the manifest later
//! ([`crate::run`]).

use std::path::PathBuf;

use crate::abi;

/// Guest memory when `--mem` is not given (hvt_main.c: 0x20000000).
pub const DEFAULT_MEM_MIB: u64 = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Args),
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub mem_mib: u64,
    /// `--net:NAME=IFACE` (or `@FD`, an open tap descriptor).
    pub nets: Vec<(String, String)>,
    pub macs: Vec<(String, [u8; 6])>,
    pub blocks: Vec<(String, PathBuf)>,
    pub sector_sizes: Vec<(String, u16)>,
    pub kernel: PathBuf,
    pub guest_args: Vec<String>,
}

pub const USAGE: &str = "usage: unikit-hvt [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]
KERNEL is the filename of the unikernel to run (a Solo5 hvt ELF executable).
ARGS are optional arguments passed to the unikernel (its command line).
Core options:
  [ --mem=512 ] (guest memory in MB)
    --help (display this help)
    --version (display version information)
Module options:
    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)
  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)
    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)
  [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device NAME; must be a power of two greater than or equal 512)";

/// `NAME=VALUE` after a prefix, with NAME in `[A-Za-z0-9]{1,67}`.
fn name_value<'a>(opt: &str, rest: &'a str) -> Result<(&'a str, &'a str), String> {
    let Some((name, value)) = rest.split_once('=') else {
        return Err(format!("{opt}: expected NAME=VALUE"));
    };
    if name.is_empty() || name.len() > abi::MFT_NAME_MAX || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{opt}: device names are 1 to {} letters and digits", abi::MFT_NAME_MAX));
    }
    if value.is_empty() {
        return Err(format!("{opt}: empty value"));
    }
    Ok((name, value))
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn dup<T>(list: &[(String, T)], name: &str, opt: &str) -> Result<(), String> {
    if list.iter().any(|(n, _)| n == name) {
        return Err(format!("{opt}{name}= given twice"));
    }
    Ok(())
}

/// Parse the arguments (without the program name).
pub fn parse(argv: &[String]) -> Result<Command, String> {
    let mut a = Args { mem_mib: DEFAULT_MEM_MIB, ..Args::default() };
    let mut i = 0;
    while i < argv.len() && argv[i].starts_with('-') {
        let arg = argv[i].as_str();
        i += 1;
        if arg == "--" {
            break;
        }
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        if arg == "--version" {
            return Ok(Command::Version);
        }
        if let Some(v) = arg.strip_prefix("--mem=") {
            a.mem_mib = match v.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("malformed argument to --mem: '{v}' (guest memory in MiB, e.g. --mem=64)")),
            };
        } else if let Some(rest) = arg.strip_prefix("--net:") {
            let (name, iface) = name_value("--net", rest)?;
            dup(&a.nets, name, "--net:")?;
            if !iface.starts_with('@') && iface.len() >= 16 {
                return Err(format!("--net:{name}={iface}: interface names are at most 15 characters"));
            }
            a.nets.push((name.into(), iface.into()));
        } else if let Some(rest) = arg.strip_prefix("--net-mac:") {
            let (name, mac) = name_value("--net-mac", rest)?;
            dup(&a.macs, name, "--net-mac:")?;
            let Some(mac) = parse_mac(mac) else {
                return Err(format!("--net-mac:{name}={mac}: expected a MAC address like 02:00:00:00:00:01"));
            };
            a.macs.push((name.into(), mac));
        } else if let Some(rest) = arg.strip_prefix("--block:") {
            let (name, path) = name_value("--block", rest)?;
            dup(&a.blocks, name, "--block:")?;
            a.blocks.push((name.into(), path.into()));
        } else if let Some(rest) = arg.strip_prefix("--block-sector-size:") {
            let (name, size) = name_value("--block-sector-size", rest)?;
            dup(&a.sector_sizes, name, "--block-sector-size:")?;
            match size.parse::<u16>() {
                Ok(s) if s >= 512 && s.is_power_of_two() => a.sector_sizes.push((name.into(), s)),
                _ => {
                    return Err(format!(
                        "--block-sector-size:{name}={size}: the sector size must be a power of two from 512 to 32768"
                    ));
                }
            }
        } else {
            return Err(format!("invalid option: '{arg}'"));
        }
    }
    let Some(kernel) = argv.get(i) else {
        return Err("missing KERNEL operand (the unikernel to run)".into());
    };
    a.kernel = kernel.into();
    a.guest_args = argv[i + 1..].to_vec();
    Ok(Command::Run(a))
}

/// The guest's command line (hvt_boot_info.c `setup_cmdline`): the
/// arguments after the unikernel joined with spaces; at most
/// `HVT_CMDLINE_SIZE - 1` bytes.
pub fn cmdline(args: &[String]) -> Result<Vec<u8>, String> {
    let line = args.join(" ");
    if line.len() >= abi::CMDLINE_SIZE {
        return Err(format!("guest command line too long ({} bytes, at most {})", line.len(), abi::CMDLINE_SIZE - 1));
    }
    if line.as_bytes().contains(&0) {
        return Err("guest command line contains a NUL byte".into());
    }
    Ok(line.into_bytes())
}

/// Guest memory in bytes from `--mem` MiB (hvt_cpu_x86_64.c
/// `hvt_x86_mem_size`): rounded down to 2 MiB, at least 2 MiB, at most 4 GiB.
/// The flag says whether it was adjusted.
pub fn mem_size(mib: u64) -> Result<(u64, bool), String> {
    let bytes = mib.checked_mul(1 << 20).ok_or_else(|| format!("--mem={mib}: too large"))?;
    let page = abi::x86::GUEST_PAGE_SIZE;
    let mut mem = bytes / page * page;
    if mem == 0 {
        mem = page;
    }
    if mem > abi::x86::MAX_MEM_SIZE {
        return Err(format!(
            "guest memory size {mem} bytes exceeds the maximum of {} bytes (4 GiB)",
            abi::x86::MAX_MEM_SIZE
        ));
    }
    Ok((mem, mem != bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }
    fn run(args: &[&str]) -> Args {
        match p(args).unwrap() {
            Command::Run(a) => a,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn typical() {
        let a = run(&[
            "--mem=64",
            "--net:service=tap0",
            "--net-mac:service=02:00:0a:0b:0c:0d",
            "--block:storage=/d.img",
            "--block-sector-size:storage=4096",
            "hello.hvt",
            "--exit",
            "3",
        ]);
        assert_eq!(a.mem_mib, 64);
        assert_eq!(a.nets, [("service".to_string(), "tap0".to_string())]);
        assert_eq!(a.macs, [("service".to_string(), [2, 0, 0xa, 0xb, 0xc, 0xd])]);
        assert_eq!(a.blocks, [("storage".to_string(), PathBuf::from("/d.img"))]);
        assert_eq!(a.sector_sizes, [("storage".to_string(), 4096)]);
        assert_eq!(a.kernel, PathBuf::from("hello.hvt"));
        assert_eq!(a.guest_args, ["--exit", "3"]);
        assert_eq!(cmdline(&a.guest_args).unwrap(), b"--exit 3");
    }

    #[test]
    fn defaults_and_separator() {
        let a = run(&["k"]);
        assert_eq!(a.mem_mib, 512);
        assert!(a.guest_args.is_empty());
        // After `--` the next argument is the kernel even if it looks like an option;
        // everything after the kernel belongs to the guest.
        let a = run(&["--mem=2", "--", "-k", "--mem=4", "x"]);
        assert_eq!(a.kernel, PathBuf::from("-k"));
        assert_eq!(a.guest_args, ["--mem=4", "x"]);
        assert_eq!(p(&["--help", "k"]).unwrap(), Command::Help);
        assert_eq!(p(&["--version"]).unwrap(), Command::Version);
    }

    #[test]
    fn errors() {
        assert_eq!(p(&[]).unwrap_err(), "missing KERNEL operand (the unikernel to run)");
        assert_eq!(p(&["--mem=64"]).unwrap_err(), "missing KERNEL operand (the unikernel to run)");
        assert!(p(&["--mem=0", "k"]).unwrap_err().contains("malformed argument to --mem"));
        assert!(p(&["--mem=x", "k"]).unwrap_err().contains("malformed"));
        assert!(p(&["--mem=-5", "k"]).unwrap_err().contains("malformed"));
        assert_eq!(p(&["--frobnicate", "k"]).unwrap_err(), "invalid option: '--frobnicate'");
        assert!(p(&["--net:ser_vice=tap0", "k"]).unwrap_err().contains("letters and digits"));
        assert!(p(&["--net:=tap0", "k"]).unwrap_err().contains("letters and digits"));
        assert!(p(&["--net:service", "k"]).unwrap_err().contains("NAME=VALUE"));
        assert!(p(&["--net:service=", "k"]).unwrap_err().contains("empty value"));
        assert!(p(&["--net:a=tap0", "--net:a=tap1", "k"]).unwrap_err().contains("given twice"));
        assert!(p(&["--net:a=averyveryverylongname", "k"]).unwrap_err().contains("at most 15"));
        assert!(p(&["--net-mac:a=02:00:00:00:00", "k"]).unwrap_err().contains("MAC address"));
        assert!(p(&["--net-mac:a=02:00:00:00:00:00:00", "k"]).unwrap_err().contains("MAC address"));
        assert!(p(&["--net-mac:a=02:00:00:00:00:zz", "k"]).unwrap_err().contains("MAC address"));
        assert!(p(&["--block-sector-size:a=1000", "k"]).unwrap_err().contains("power of two"));
        assert!(p(&["--block-sector-size:a=256", "k"]).unwrap_err().contains("power of two"));
        assert!(p(&["--block-sector-size:a=65536", "k"]).unwrap_err().contains("power of two"));
        let long = "x".repeat(68);
        assert!(p(&[&format!("--block:{long}=/f"), "k"]).unwrap_err().contains("1 to 67"));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(mem_size(64), Ok((64 << 20, false)));
        assert_eq!(mem_size(3), Ok((2 << 20, true)));
        assert_eq!(mem_size(1), Ok((2 << 20, true)));
        assert_eq!(mem_size(4096), Ok((4 << 30, false)));
        assert!(mem_size(4098).unwrap_err().contains("exceeds the maximum"));
        assert!(mem_size(u64::MAX).is_err());
    }

    #[test]
    fn command_line_limits() {
        assert_eq!(cmdline(&[]).unwrap(), b"");
        let long = vec!["x".repeat(8191)];
        assert_eq!(cmdline(&long).unwrap().len(), 8191);
        let too_long = vec!["x".repeat(8192)];
        assert!(cmdline(&too_long).unwrap_err().contains("too long"));
        assert_eq!(parse_mac("2:0:0:0:0:1"), Some([2, 0, 0, 0, 0, 1]));
    }
}
