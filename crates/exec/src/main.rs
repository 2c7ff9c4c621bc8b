//! The `--exec` loader: `argv[1]` is the program's path in the initrd,
//! `argv[2..]` its arguments; the environment is passed on as is.
#![no_std]
#![no_main]

use unikit::prelude::*;

#[unikit::main]
fn main() -> i32 {
    let argv: Vec<String> = unikit::env::args().skip(1).collect();
    let envp: Vec<String> = unikit::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    if argv.is_empty() {
        eprintln!("exec: no program given (the loader image is started by `unikit run --exec FILE`)");
        return 125;
    }
    unikit_posix::exec(&argv, &envp)
}
