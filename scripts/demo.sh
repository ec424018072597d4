#!/usr/bin/env bash
# The main job: a regtest node with a seeded chain, and Ferrum serving it to wallets until
# Ctrl-C. Electrum connects with: electrum --regtest --oneserver --server 127.0.0.1:51002:s
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BITCOIND_EXE="$(scripts/bitcoind.sh)/bitcoind"
export BITCOIND_EXE
cargo build --quiet --workspace --bins
exec target/debug/regtest-demo --blocks "${DEMO_BLOCKS:-300}" -- bash -c '
    target/debug/ferrum node-info || exit 1
    echo "serving: tcp 127.0.0.1:51001, ssl 127.0.0.1:51002 (Ctrl-C stops)" >&2
    exec target/debug/ferrum --tcp 127.0.0.1:51001 --ssl 127.0.0.1:51002'
