//! Host programs: finding them on PATH. A leaf module (it imports no other
//! module of the CLI), so that the host probes (platform.rs, xenhost.rs)
//! and the tooling they call (testbed/) do not import each other in a circle.

use std::path::{Path, PathBuf};

/// QEMU's x86-64 system emulator.
pub const QEMU: &str = "qemu-system-x86_64";

/// Find an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
