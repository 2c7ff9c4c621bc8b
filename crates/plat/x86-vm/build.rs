// Puts the linker script on the link search path so that the final link
// (driven by `unikit build` with `-Tunikit-kvm.ld`, named after the
// `plat-kvm` feature the CLI selects for qemu, fc and xen) finds it.
fn main() {
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::copy("unikit-kvm.ld", format!("{out}/unikit-kvm.ld")).unwrap();
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rerun-if-changed=unikit-kvm.ld");
}
