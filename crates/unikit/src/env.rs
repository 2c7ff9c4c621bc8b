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

pub fn var(key: &str) -> Option<String> {
    boot::command_line().env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

pub fn vars() -> impl Iterator<Item = (String, String)> {
    boot::command_line().env.iter().cloned()
}
