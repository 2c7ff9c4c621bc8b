//! Paths as the program gives them: relative to the working directory or
//! to a directory descriptor (`*at` calls).
use crate::errno::*;
use alloc::string::String;
use spin::Mutex;

/// `AT_FDCWD`.
pub const AT_FDCWD: i64 = -100;

static CWD: Mutex<String> = Mutex::new(String::new());

/// The working directory (absolute, normalised).
pub fn cwd() -> String {
    let c = CWD.lock();
    if c.is_empty() { String::from("/") } else { c.clone() }
}

/// Sets the working directory.
pub fn set_cwd(path: String) {
    *CWD.lock() = path;
}

/// `base` joined with `name` (`name` absolute replaces it).
pub fn join(base: &str, name: &str) -> String {
    if name.starts_with('/') {
        return normalize(name);
    }
    let mut s = String::from(base.trim_end_matches('/'));
    s.push('/');
    s.push_str(name);
    normalize(&s)
}

/// Removes `.`, `..` and repeated slashes (lexically, as the VFS does).
pub fn normalize(path: &str) -> String {
    let mut parts: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            n => parts.push(n),
        }
    }
    let mut s = String::new();
    for p in &parts {
        s.push('/');
        s.push_str(p);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The absolute path a program's `(dirfd, path)` names.
pub fn resolve(dirfd: i64, path: &[u8]) -> Result<String, Errno> {
    let path = core::str::from_utf8(path).map_err(|_| ENOENT)?;
    if path.is_empty() {
        return Err(ENOENT);
    }
    if path.starts_with('/') {
        return Ok(normalize(path));
    }
    let base = if dirfd == AT_FDCWD {
        cwd()
    } else {
        let f = crate::fd::get(dirfd)?;
        String::from(f.path().ok_or(ENOTDIR)?)
    };
    Ok(join(&base, path))
}
