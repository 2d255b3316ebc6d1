#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every unit, integration and
# end-to-end test (the end-to-end tests start the real binaries on 127.0.0.1 themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
# One build from scratch: incremental state would only add gigabytes to the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if [ -x tests/install-peers.sh ]; then
    tests/install-peers.sh
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (binaries used by the end-to-end tests)"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked
