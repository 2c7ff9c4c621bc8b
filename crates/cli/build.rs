// Tells the boot tests whether this machine can run KVM guests, so that the
// KVM tests are reported as skipped (with the reason) instead of passing
// silently or failing where there is no /dev/kvm.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(unikit_no_kvm)");
    println!("cargo:rerun-if-changed=/dev/kvm");
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !usable {
        println!("cargo:rustc-cfg=unikit_no_kvm");
        println!(
            "cargo:warning=/dev/kvm is not usable here: KVM boot tests will be skipped (TCG tests still run)"
        );
    }
}
