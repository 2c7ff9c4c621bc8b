//! Hello world: prints where it runs and its arguments.
//! `-- --exit N` makes it exit with status N.
#![no_std]
#![no_main]

use unikit::prelude::*;

#[unikit::main]
fn main() -> i32 {
    println!("Hello from unikit on {}!", unikit::platform());
    let args: Vec<String> = unikit::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        println!("  argv[{i}] = {a:?}");
    }
    match args.iter().position(|a| a == "--exit") {
        Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(code) => code,
            None => {
                eprintln!("hello: --exit needs a number");
                2
            }
        },
        None => 0,
    }
}
