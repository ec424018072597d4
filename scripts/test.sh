#!/usr/bin/env bash
# Runs every test: installs what the build needs, builds (or finds the cached) bitcoind, installs
# (or finds the cached) ElectrumX, then the whole workspace's tests against real regtest nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BITCOIND_EXE="$(scripts/bitcoind.sh)/bitcoind"
ELECTRUMX_EXE="$(scripts/electrumx.sh)"
export BITCOIND_EXE ELECTRUMX_EXE
cargo test --workspace --all-targets "$@"
