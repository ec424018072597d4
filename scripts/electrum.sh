#!/usr/bin/env bash
# Installs the Electrum wallet 4.8.1 from its release source (electrum-4.8.1.tar.gz: the tree at
# the 4.8.1 tag, MIT) into a Python virtualenv cached outside the repository, its requirements
# from PyPI, libsecp256k1 from Debian (the package electrum_ecc loads it; nothing is compiled).
# Electrum is not on PyPI, so the source comes from a file: $ELECTRUM_TARBALL, else
# ../shared/electrum-4.8.1.tar.gz next to this checkout. Its SHA-256 is checked.
#
# Prints the path of an `electrum` launcher; logs go to stderr. Idempotent: a second run finds
# the cache and returns at once. Safe to run concurrently: installers serialise on a lock.
#
#   FERRUM_CACHE      cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
#   ELECTRUM_TARBALL  the source tarball
#   PYTHON            the Python 3.10+ to build the virtualenv from (default: Debian's /usr/bin/python3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VERSION=4.8.1
SHA256=391a49bf50fe1f7f44d3fc0320018244a44e3ad92178fd90a6743401d62042d3
LABEL=electrum-$VERSION
PREFIX=$CACHE_ROOT/$LABEL
EXE=$PREFIX/bin/electrum
here=$(cd "$(dirname "$0")/.." && pwd)

is_installed() { [ -x "$EXE" ] && [ -f "$PREFIX/.complete" ]; }
cached_or_lock "$LABEL" "$EXE"
start=$(date +%s)

# The tarball: $ELECTRUM_TARBALL, else ../shared/ next to this checkout, or next to the checkout
# it was cloned from (a clone made elsewhere for CI).
candidates=("${ELECTRUM_TARBALL:-}" "$here/../shared/electrum-$VERSION.tar.gz")
origin=$(git -C "$here" remote get-url origin 2>/dev/null || true)
[ -d "$origin" ] && candidates+=("$origin/../shared/electrum-$VERSION.tar.gz")
tarball=
for c in "${candidates[@]}"; do
    if [ -n "$c" ] && [ -f "$c" ]; then
        tarball=$c
        break
    fi
done
if [ -z "$tarball" ]; then
    log "error: no Electrum $VERSION source tarball (set ELECTRUM_TARBALL); looked at: ${candidates[*]}"
    exit 1
fi
found=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$found" != "$SHA256" ]; then
    log "error: $tarball has SHA-256 $found, expected $SHA256"
    exit 1
fi

# 1. System packages, installed only when missing: Python with venv, and libsecp256k1 (Debian
#    builds it with the recovery and schnorrsig modules Electrum needs).
python=${PYTHON:-/usr/bin/python3}
[ -x "$python" ] || apt_install python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    log "error: $python is $("$python" --version 2>&1); Electrum $VERSION needs Python 3.10 or later"
    exit 1
fi
"$python" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
ldconfig -p | grep -q 'libsecp256k1\.so\.' || apt_install libsecp256k1-1

# 2. The source and the virtualenv, made in place under the lock and marked complete last; a
#    half-made one is removed first.
rm -rf "$PREFIX"
mkdir -p "$PREFIX/bin"
tar -xzf "$tarball" -C "$PREFIX"
src=$PREFIX/electrum-$VERSION
[ -f "$src/run_electrum" ] || { log "error: $tarball has no electrum-$VERSION/run_electrum"; exit 1; }
log "creating the virtualenv $PREFIX/venv with $("$python" --version 2>&1)"
"$python" -m venv "$PREFIX/venv" >&2
pip=("$PREFIX/venv/bin/python" -m pip --disable-pip-version-check --no-input)
"${pip[@]}" install -q --upgrade pip >&2
# The requirements of the release, plus cryptography (its requirements-binaries.txt, without
# the Qt GUI); electrum_ecc uses Debian's libsecp256k1 instead of compiling its own.
log "installing Electrum $VERSION's requirements from PyPI"
ELECTRUM_ECC_DONT_COMPILE=1 "${pip[@]}" install -q -r "$src/contrib/requirements/requirements.txt" \
    "cryptography>=2.6" >&2
cat >"$EXE" <<SH
#!/bin/sh
# Electrum $VERSION from its release source, in its own virtualenv.
exec "$PREFIX/venv/bin/python" "$src/run_electrum" "\$@"
SH
chmod +x "$EXE"
# It must start, report its version and load libsecp256k1.
got=$("$EXE" version --offline 2>/dev/null | tail -n 1)
if [ "$got" != "$VERSION" ]; then
    log "error: $EXE version printed ${got:-nothing}, expected $VERSION"
    exit 1
fi
"$PREFIX/venv/bin/python" -c 'import electrum_ecc.ecc_fast as f; assert f._libsecp256k1 is not None' >&2
"${pip[@]}" freeze >"$PREFIX/REQUIREMENTS"
touch "$PREFIX/.complete"
log "installed in $(($(date +%s) - start)) s"
echo "$EXE"
