#!/usr/bin/env bash
# The main job: a regtest node with a seeded chain, and Ferrum serving it to wallets (TCP, TLS),
# with its status page and admin RPC, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BITCOIND_EXE="$(scripts/bitcoind.sh)/bitcoind"
export BITCOIND_EXE
cargo build --quiet --workspace --bins
exec target/debug/regtest-demo --blocks "${DEMO_BLOCKS:-300}" -- bash -c '
    target/debug/ferrum node-info || exit 1
    cat >&2 <<INFO

Ferrum is serving the regtest chain (Ctrl-C stops):
  Electrum over TCP   127.0.0.1:51001
  Electrum over TLS   127.0.0.1:51002 (self-signed certificate, kept in $FERRUM_DB_DIR)
  status page         http://127.0.0.1:51080/   (metrics: /metrics)
  admin               target/debug/ferrum rpc getinfo

Point the Electrum wallet at it, on this server only:
  electrum --regtest --oneserver --server 127.0.0.1:51002:s
  electrum --regtest --oneserver --server 127.0.0.1:51002:s getinfo   (from another terminal)

INFO
    exec target/debug/ferrum --tcp 127.0.0.1:51001 --ssl 127.0.0.1:51002 \
        --http 127.0.0.1:51080 --rpc 127.0.0.1:8000'
