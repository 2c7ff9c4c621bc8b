#![no_std]
#![no_main]
#[unikit::main]
fn main() {}
