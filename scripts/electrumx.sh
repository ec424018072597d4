#!/usr/bin/env bash
# Installs the reference Electrum server, ElectrumX 2.0 (PyPI package e-x, pinned below), with its
# LevelDB backend (plyvel) into a Python virtualenv cached outside the repository.
#
# Prints the path of the electrumx_server executable; logs go to stderr. Idempotent: a second run
# finds the cache and returns at once. Safe to run concurrently: installers serialise on a lock.
#
# Needs only package registries: Debian packages through apt-get (only when something is
# missing), and PyPI through pip.
#
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
#   PYTHON         the Python 3.10+ to build the virtualenv from (default: Debian's /usr/bin/python3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

EX_VERSION=2.0.0
# plyvel 1.5.1 ships manylinux wheels with LevelDB inside; other platforms build it from source
# against libleveldb-dev.
PLYVEL_VERSION=1.5.1
LABEL=electrumx-$EX_VERSION
PREFIX=$CACHE_ROOT/$LABEL
EXE=$PREFIX/bin/electrumx_server

venv_ready() { [ -x "$EXE" ] && [ -f "$PREFIX/.complete" ]; }
is_installed() { venv_ready && command -v openssl >/dev/null; }
cached_or_lock "$LABEL" "$EXE"
start=$(date +%s)

# 1. System packages, installed only when missing: openssl (the harness makes a self-signed
#    certificate for ElectrumX's SSL port with it), then Python with venv for a new virtualenv.
if ! command -v openssl >/dev/null; then
    apt_install openssl
fi
if venv_ready; then
    echo "$EXE"
    exit 0
fi
python=${PYTHON:-/usr/bin/python3}
if [ ! -x "$python" ]; then
    apt_install python3
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    log "error: $python is $("$python" --version 2>&1); e-x $EX_VERSION needs Python 3.10 or later"
    exit 1
fi
# Debian ships ensurepip (which venv needs) in python3-venv.
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3-venv
fi

# 2. The virtualenv. It cannot be moved once made (its scripts name its path), so it is made in
#    place under the lock and marked complete last; a half-made one is removed first.
rm -rf "$PREFIX"
log "creating the virtualenv $PREFIX with $("$python" --version 2>&1)"
"$python" -m venv "$PREFIX" >&2
pip=("$PREFIX/bin/python" -m pip --disable-pip-version-check --no-input)
"${pip[@]}" install -q --upgrade pip >&2

# 3. plyvel: the prebuilt wheel where there is one, else a source build against Debian's LevelDB.
if ! "${pip[@]}" install -q --only-binary plyvel "plyvel==$PLYVEL_VERSION" >&2; then
    log "no plyvel wheel for this platform: building it against libleveldb-dev"
    need=()
    [ -e /usr/include/leveldb/db.h ] || need+=(libleveldb-dev)
    command -v g++ >/dev/null || need+=(g++)
    py_inc=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    [ -e "$py_inc/Python.h" ] || need+=(python3-dev)
    if [ ${#need[@]} -gt 0 ]; then
        apt_install "${need[@]}"
    fi
    "${pip[@]}" install -q --no-binary plyvel "plyvel==$PLYVEL_VERSION" >&2
fi

# 4. ElectrumX with its LevelDB extra, then a check that it imports with its backend.
log "installing e-x[leveldb]==$EX_VERSION from PyPI"
"${pip[@]}" install -q "e-x[leveldb]==$EX_VERSION" "plyvel==$PLYVEL_VERSION" >&2
"$PREFIX/bin/python" - <<PY >&2
import electrumx, plyvel, aiorpcx
assert electrumx.__version__ == "$EX_VERSION", electrumx.__version__
from electrumx.server.storage import db_class
db_class("leveldb")
print(f"electrumx.sh: {electrumx.version}, aiorpcX {aiorpcx._version_str}, plyvel {plyvel.__version__}")
PY
if [ ! -x "$EXE" ]; then
    log "error: $EXE missing after install"
    exit 1
fi
"${pip[@]}" freeze >"$PREFIX/REQUIREMENTS"
touch "$PREFIX/.complete"
log "installed in $(($(date +%s) - start)) s"
echo "$EXE"
