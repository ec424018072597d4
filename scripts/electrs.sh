#!/usr/bin/env bash
# Installs a released electrs (crates.io package `electrs`, the Rust Electrum server) for the
# benchmarks, into a cache outside the repository, and prints the path of its executable.
#
#   scripts/electrs.sh [VERSION]       default 0.12.0; the benchmarks also use 0.11.1
#
# Idempotent: a second run finds the cache and returns at once; concurrent runs serialise on a
# lock. The build compiles RocksDB from source (about 20 minutes on two cores) with the
# crate's own lock file.
#
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VERSION=${1:-0.12.0}
LABEL=electrs-$VERSION
PREFIX=$CACHE_ROOT/$LABEL
EXE=$PREFIX/bin/electrs

is_installed() { [ -x "$EXE" ]; }
cached_or_lock "$LABEL" "$EXE"

# rust-rocksdb's bindings are generated with libclang.
if ! command -v clang >/dev/null && ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
    apt_install libclang-dev
fi

BUILD=$(mktemp -d "$CACHE_ROOT/$LABEL.build.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
log "building electrs $VERSION (RocksDB from source; this takes a while)"
# Without debug info: RocksDB's would make the build several gigabytes.
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_TARGET_DIR=$BUILD/target \
    cargo install --locked --root "$BUILD/root" "electrs@$VERSION" >&2
rm -rf "$PREFIX"
mv "$BUILD/root" "$PREFIX"
log "installed $EXE"
echo "$EXE"
