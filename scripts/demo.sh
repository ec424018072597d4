#!/usr/bin/env bash
# The main job: a regtest node with a seeded chain, and Ferrum pointed at it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BITCOIND_EXE="$(scripts/bitcoind.sh)/bitcoind"
export BITCOIND_EXE
cargo build --quiet -p ferrum -p testkit --bins
exec target/debug/regtest-demo --blocks "${DEMO_BLOCKS:-300}" -- target/debug/ferrum node-info
