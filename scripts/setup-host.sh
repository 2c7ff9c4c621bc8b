#!/usr/bin/env bash
# Installs what unikit needs on a Debian 12 host: QEMU (from bookworm-backports when
# available, for QEMU 10), the Rust targets, musl-gcc, and cargo-nextest. Idempotent.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86 qemu-system-data)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v ip >/dev/null || need_pkgs+=(iproute2)
# fsck.fat checks the FAT images the crash-kill disk test leaves behind.
command -v fsck.fat >/dev/null || [ -x /usr/sbin/fsck.fat ] || need_pkgs+=(dosfstools)
# The Xen test bed (unikit run --xen-testbed) is assembled with apt-get
# download + dpkg-deb (on every Debian) and unpacks Xen with gzip; xz for
# kernels whose modules are .ko.xz.
command -v xz >/dev/null || need_pkgs+=(xz-utils)
# The --exec boot tests (tests/exec.rs) build their C programs with musl-gcc.
command -v musl-gcc >/dev/null || need_pkgs+=(musl-tools)
# ... and their Go program with go (busybox-static, and nginx-light where
# /usr/sbin/nginx is missing, are fetched by the tests with apt-get download).
command -v go >/dev/null || need_pkgs+=(golang-go)
[ -e /usr/share/qemu/qboot.rom ] || need_pkgs+=(qemu-system-data)
# --plat vmware: qemu-img writes the VMDKs; OVMF is the --testbed's EFI firmware.
command -v qemu-img >/dev/null || need_pkgs+=(qemu-utils)
[ -e /usr/share/ovmf/OVMF.fd ] || need_pkgs+=(ovmf)

if [ ${#need_pkgs[@]} -gt 0 ]; then
    # Enable bookworm-backports by reusing the mirror this machine already uses:
    # never hard-code a registry host name here.
    if grep -q 'bookworm' /etc/os-release 2>/dev/null && \
       ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        uri=$(grep -rhs -E '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
              | grep -v security | grep -o -E 'https?://[^ ]+/debian/?' | head -n1 || true)
        if [ -n "$uri" ]; then
            echo "deb $uri bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/unikit-backports.list >/dev/null
        fi
    fi
    $SUDO apt-get update -qq
    if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
            --no-install-recommends "${need_pkgs[@]}" \
        || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
    else
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
    fi
fi

rustup target add x86_64-unknown-none >/dev/null 2>&1 || rustup target add x86_64-unknown-none
# ... and their Rust std program for this target (tests/exec/rust-std).
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || rustup target add x86_64-unknown-linux-musl
# The UEFI loader (crates/boot/uefi, BOOTX64.EFI of --plat vmware images).
rustup target add x86_64-unknown-uefi >/dev/null 2>&1 || rustup target add x86_64-unknown-uefi
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
echo "setup: $(qemu-system-x86_64 --version | head -n1); rust $(rustc --version | cut -d' ' -f2)"
