//! Arguments and environment variables.
use alloc::string::String;
use alloc::vec::Vec;
use unikit_kernel::boot;

/// The program's arguments, starting with the program name.
pub fn args() -> impl Iterator<Item = String> {
    core::iter::once(String::from(boot::program())).chain(boot::command_line().args.iter().cloned())
}

/// The arguments as a vector (program name first).
pub fn args_vec() -> Vec<String> {
    args().collect()
}

/// The value of environment variable `key` (from `unikit.toml`'s `env` or the command line), if set.
pub fn var(key: &str) -> Option<String> {
    boot::command_line().env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Every environment variable, as `(key, value)` pairs.
pub fn vars() -> impl Iterator<Item = (String, String)> {
    boot::command_line().env.iter().cloned()
}
