#!/usr/bin/env bash
# Runs every test: installs what the build needs, builds (or finds the cached) bitcoind, installs
# (or finds the cached) ElectrumX and Electrum 4.8.1, then the whole workspace's tests against
# real regtest nodes. (scripts/docker-e2e.sh runs the container deployment's.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BITCOIND_EXE="$(scripts/bitcoind.sh)/bitcoind"
ELECTRUMX_EXE="$(scripts/electrumx.sh)"
ELECTRUM_481_EXE="$(scripts/electrum.sh)"
export BITCOIND_EXE ELECTRUMX_EXE ELECTRUM_481_EXE
cargo test --workspace --all-targets "$@"
