#!/usr/bin/env bash
# The benchmark in one command: scripts/bench.sh [PRESET] [bench options...]
# Builds a release Ferrum and the benchmark driver, installs the peers (ElectrumX, electrs 0.12.0
# and 0.11.1) into the cache, and runs bench/ on the preset (default: small). See bench/README.md.
#
#   scripts/bench.sh scale [--to N] [--mode spenttxouts|utxo|both] [scale options...]
# runs the index alone on a synthetic chain instead (no node, no peers): to 100M transactions
# in both modes by default, which takes hours.
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-small}
shift || true
scripts/deps.sh
if [ "$PRESET" = scale ]; then
    cargo build --release -p ferrum-bench
    exec target/release/bench scale "$@"
fi
BITCOIND_EXE="$(scripts/bitcoind.sh)/bitcoind"
ELECTRUMX_EXE="$(scripts/electrumx.sh)"
ELECTRS_EXE_0_12_0="$(scripts/electrs.sh 0.12.0)"
ELECTRS_EXE_0_11_1="$(scripts/electrs.sh 0.11.1)"
export BITCOIND_EXE ELECTRUMX_EXE ELECTRS_EXE_0_12_0 ELECTRS_EXE_0_11_1
cargo build --release -p ferrum -p ferrum-bench
exec target/release/bench --preset "$PRESET" "$@"
