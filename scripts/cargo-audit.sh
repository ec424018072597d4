#!/usr/bin/env bash
# Installs cargo-audit (RustSec's checker of a Cargo.lock against its advisory database), pinned
# below, from crates.io into the cache outside the repository: built from source with the
# versions of its own lock file (cargo install --locked), by the one toolchain there is.
#
# Prints the path of the cargo-audit executable; logs go to stderr. Idempotent: a second run finds
# the cache and returns at once. Safe to run concurrently: installers serialise on a lock. The
# build (some 300 crates, git and HTTP clients among them) takes 9 to 14 minutes of CPU time, 10
# to 19 minutes on two cores shared with other builds, and about 650 MB of disk while it lasts.
#
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VERSION=0.22.2
LABEL=cargo-audit-$VERSION
PREFIX=$CACHE_ROOT/$LABEL
EXE=$PREFIX/bin/cargo-audit

is_installed() { [ -x "$EXE" ] && [ -f "$PREFIX/.complete" ]; }
cached_or_lock "$LABEL" "$EXE"
start=$(date +%s)

log "building cargo-audit $VERSION from crates.io into $PREFIX"
rm -rf "$PREFIX"
# Its own build directory, removed once installed, never the workspace's CARGO_TARGET_DIR.
build=$PREFIX.build
rm -rf "$build"
trap 'rm -rf "$build"' EXIT
CARGO_TARGET_DIR=$build cargo install --quiet --locked --root "$PREFIX" "cargo-audit@$VERSION" >&2
got=$("$EXE" --version)
if [ "$got" != "cargo-audit $VERSION" ]; then
    log "error: $EXE printed ${got:-nothing} for its version, expected $VERSION"
    exit 1
fi
touch "$PREFIX/.complete"
log "installed in $(($(date +%s) - start)) s"
echo "$EXE"
