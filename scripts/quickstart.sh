#!/usr/bin/env bash
# One command from a fresh machine to a booted unikernel: installs what is
# missing, builds the `unikit` tool, then builds and boots examples/hello.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-host.sh
cargo build --release
exec ./target/release/unikit run -C examples/hello -- "$@"
