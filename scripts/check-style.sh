#!/usr/bin/env bash
# House style checks (issue 10), run by .ci/run before the tests:
#   1. the tree is rustfmt-formatted (rustfmt.toml);
#   2. clippy is clean, warnings as errors, for the host crates (the default
#      members, every target: libs, bins, tests, benches) and for the guest
#      crates on their target, once per platform crate: the x86 VM image
#      (qemu, fc, xen targets), linuxu and solo5. The guest pass checks the
#      apps the way `unikit build` builds them (crates/cli/src/build.rs:
#      `--target x86_64-unknown-none --features unikit/plat-<k>`), which
#      pulls in unikit, the kernel, arch, hal, drivers and services.
# Lint levels live in the root Cargo.toml ([workspace.lints]) and at the top
# of each library crate (missing_docs).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '== %s\n' "$*" >&2; }

# rustup's minimal profile lacks these two.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

step "cargo fmt --all --check"
cargo fmt --all --check

step "clippy: host crates"
cargo clippy --quiet --all-targets -- -D warnings

# The guest apps (not default members: they only build for the guest target).
guest_apps=(-p hello -p threads -p httpd -p counter -p kernel-tests)
for plat in kvm linuxu solo5; do
    step "clippy: guest crates, plat-$plat (x86_64-unknown-none)"
    cargo clippy --quiet --target x86_64-unknown-none "${guest_apps[@]}" --features "unikit/plat-$plat" -- -D warnings
done
# The --exec loader (the Linux system-call layer) runs on the x86 VM image.
step "clippy: the --exec loader and unikit-posix, plat-kvm (x86_64-unknown-none)"
cargo clippy --quiet --target x86_64-unknown-none -p exec --features "unikit/plat-kvm" -- -D warnings
# The x86 VM image without its optional backends (xen, virtio off).
step "clippy: guest crates, plat-kvm without default features"
cargo clippy --quiet --target x86_64-unknown-none -p unikit --no-default-features --features plat-kvm -- -D warnings
# The UEFI loader (not a default member: it only builds for its own target).
step "clippy: the UEFI loader (x86_64-unknown-uefi)"
cargo clippy --quiet --target x86_64-unknown-uefi -p unikit-boot-uefi -- -D warnings
step "style checks passed"
