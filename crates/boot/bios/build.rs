//! Link with our own script: the boot sector at 0x7c00, stage 2 at 0x8000.
//! The target's default is a static PIE; the 16-bit code uses absolute
//! addresses, so link a plain static executable.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
}
