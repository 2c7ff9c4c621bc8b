//! `unikit-hvt [--mem=MB] [--net:NAME=TAP] [--block:NAME=FILE] ... KERNEL [ARGS]`:
//! run a Solo5 hvt unikernel and exit with its status. Messages go to stderr
//! as one `unikit-hvt: ...` line; exit statuses: the guest's own, or
//! 120 (cannot start), 121 (guest passed an invalid argument to a
//! hypercall), 122 (unexpected VM exit), 123 (host I/O error).

use unikit_hvt::{args, run};

fn main() {
    let argv: Vec<String> = match std::env::args_os().skip(1).map(|a| a.into_string()).collect() {
        Ok(v) => v,
        Err(bad) => {
            eprintln!("unikit-hvt: argument is not valid UTF-8: {bad:?}");
            std::process::exit(run::EXIT_SETUP);
        }
    };
    let a = match args::parse(&argv) {
        Ok(args::Command::Run(a)) => a,
        Ok(args::Command::Help) => {
            println!("{}", args::USAGE);
            std::process::exit(0);
        }
        Ok(args::Command::Version) => {
            println!("unikit-hvt tender, version {}", env!("CARGO_PKG_VERSION"));
            println!("ABI version {}", unikit_hvt::abi::HVT_ABI_VERSION);
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("unikit-hvt: {e}");
            eprintln!("{}", args::USAGE);
            std::process::exit(run::EXIT_SETUP);
        }
    };
    let opts = run::Options { no_seccomp: std::env::var_os("UNIKIT_HVT_NO_SECCOMP").is_some_and(|v| v == "1") };
    match run::run(&a, opts) {
        Ok(status) => std::process::exit(status),
        Err(stop) => {
            run::report(&stop);
            std::process::exit(stop.code);
        }
    }
}
