// Puts the linker script on the link search path (see `unikit build`).
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::copy("unikit-linuxu.ld", format!("{out}/unikit-linuxu.ld")).unwrap();
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rerun-if-changed=unikit-linuxu.ld");
}
