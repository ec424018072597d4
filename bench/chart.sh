#!/usr/bin/env bash
# Draws the chart of a benchmark run: bench/chart.sh RESULTS.json OUT.png
# matplotlib comes from PyPI into a virtualenv cached outside the repository.
set -euo pipefail
CACHE_ROOT=${FERRUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrum}
VENV=$CACHE_ROOT/bench-venv
MATPLOTLIB=3.9.2
if [ ! -f "$VENV/.complete-$MATPLOTLIB" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet "matplotlib==$MATPLOTLIB" >&2
    touch "$VENV/.complete-$MATPLOTLIB"
fi
exec "$VENV/bin/python" "$(dirname "$0")/chart.py" "$@"
