#!/usr/bin/env bash
# Runs every test: installs what the build needs, builds (or finds the cached) bitcoind, then
# the whole workspace's tests against real regtest nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BITCOIND_EXE="$(scripts/bitcoind.sh)/bitcoind"
export BITCOIND_EXE
cargo test --workspace --all-targets "$@"
