#!/usr/bin/env bash
# Fuzzes the parsers that take outside input, with cargo-fuzz (libFuzzer), each target for a
# while; a crash stops with the input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s, every target
#
# The parser targets (jsonrpc, block, spent_outputs, rows) build on ferrum-codec alone, in a few
# minutes. `session` and `config` need the whole server, and so RocksDB compiled under the
# fuzzing flags: about half an hour and 10 GB on two cores. CI runs the parser targets.
#
# cargo-fuzz is installed from crates.io when missing. libFuzzer's instrumentation needs
# unstable compiler flags: RUSTC_BOOTSTRAP lets the one stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
export RUSTC_BOOTSTRAP=1
cd fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
features=()
for t in "${targets[@]}"; do
    case $t in session | config) features=(--features server) ;; esac
done
cargo fuzz build "${features[@]}"
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s" >&2
    cargo fuzz run "${features[@]}" "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 2>&1 \
        | grep -E "^(#[0-9]+: *DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|Test unit written)" || true
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz.sh: $t found a crash: fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
