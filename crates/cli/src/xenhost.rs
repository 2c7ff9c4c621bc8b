//! Can this host run Xen guests, and how: as a Xen dom0 (`xl` here), or in
//! the test bed under QEMU. Used by `platforms` (platform.rs) and by the xen
//! runner (run/xen), apart from both so that neither calls into the other.

use std::path::PathBuf;

use anyhow::Result;

use crate::error::hinted;
use crate::testbed;
use crate::tools::which;

/// How this run reaches Xen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// This host is a Xen dom0: run `xl` here.
    Dom0 { xl: PathBuf },
    /// Boot the test bed under QEMU.
    Testbed,
}

const CAPABILITIES: &str = "/proc/xen/capabilities";
/// Read this file instead of /proc/xen/capabilities: lets tests play a
/// dom0 with a fake `xl`.
const CAPABILITIES_ENV: &str = "UNIKIT_XEN_CAPABILITIES";

fn capabilities_path() -> PathBuf {
    std::env::var_os(CAPABILITIES_ENV).map(PathBuf::from).unwrap_or_else(|| CAPABILITIES.into())
}

/// Is this host Xen's control domain? (`/proc/xen` is xenfs; its
/// `capabilities` file reads `control_d` in dom0.)
pub fn is_dom0() -> bool {
    std::fs::read_to_string(capabilities_path()).is_ok_and(|c| c.contains("control_d"))
}

fn testbed_hint() -> String {
    "add --xen-testbed to boot it in a real Xen 4.17 under QEMU instead (slow: about 30 s per run; \
     downloads about 80 MB of Debian packages once)"
        .into()
}

/// Decide how to run, or say why the host cannot.
pub fn host_mode(testbed: bool) -> Result<Mode> {
    if testbed {
        testbed::check_host()?;
        return Ok(Mode::Testbed);
    }
    match (which("xl"), is_dom0()) {
        (Some(xl), true) => Ok(Mode::Dom0 { xl }),
        (Some(xl), false) => Err(hinted(
            format!(
                "the xen platform needs a Xen dom0: {} is here, but this host is not Xen's control domain ({} does not say control_d)",
                xl.display(),
                capabilities_path().display()
            ),
            testbed_hint(),
        )),
        (None, _) => Err(hinted(
            "the xen platform needs a Xen dom0 with `xl` (the Xen toolstack), and this host has no `xl` on PATH",
            testbed_hint(),
        )),
    }
}

/// For `unikit platforms`: can `--plat xen` run here, and how.
pub fn describe() -> (bool, String) {
    match (which("xl"), is_dom0()) {
        (Some(xl), true) => {
            (true, format!("{} found; this host is a Xen dom0 (`--xen-testbed` also works)", xl.display()))
        }
        (xl, _) => {
            let why = match xl {
                Some(p) => format!("{} found, but this host is not a Xen dom0", p.display()),
                None => "no Xen dom0 here (`xl` not on PATH)".to_string(),
            };
            match testbed::check_host() {
                Ok(()) => (false, format!("{why}; {}", testbed::describe_host())),
                Err(e) => (false, format!("{why}; `--xen-testbed` is not available either: {e}")),
            }
        }
    }
}
