#!/usr/bin/env bash
# Audits Cargo.lock against RustSec's advisory database with cargo-audit (scripts/cargo-audit.sh
# installs it into the cache).
#
#   scripts/audit.sh [cargo-audit arguments...]
#
# The database is read, never fetched (CI reaches no git host): from $RUSTSEC_DB, else from
# advisory-db in shared/ beside this checkout (or beside the checkout a CI clone was made from):
# the upstream repository's crates/ advisories and a file SNAPSHOT naming the upstream commit and
# its date, as scripts/advisory-db.sh makes it. The snapshot's commit, date and age are printed
# first, since the audit knows no advisory published after it; past 90 days a warning says so.
#
# What fails the audit, and what only prints:
#   vulnerability   fails: a published security flaw in a version the lock file holds.
#   unsound         fails: a safe function of the crate can break memory safety, and Ferrum's
#                   input comes from strangers on the network.
#   unmaintained    prints: not a flaw of the version in use; replacing the crate is a change of
#                   its own, planned from the warning, not a condition for the next one.
#   notice          prints.
#   yanked          prints (from crates.io's index, which cargo refreshes first): the lock still
#                   builds, a yank for a security reason comes with an advisory, which fails
#                   above, and a yank upstream doesn't fail an unrelated change.
# An advisory is ignored only on a line of .ci/audit-ignore: its id, then why it does not reach
# Ferrum (or why it can't be fixed yet and what would fix it); '#' starts a comment, and a line
# with an id but no reason stops the audit.
#
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
#   RUSTSEC_DB     the database snapshot
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
here=$(pwd)

candidates=()
[ -z "${RUSTSEC_DB:-}" ] || candidates+=("$RUSTSEC_DB")
candidates+=("$here/../shared/advisory-db")
origin=$(git remote get-url origin 2>/dev/null || true)
[ -d "$origin" ] && candidates+=("$origin/../shared/advisory-db")
db=
for c in "${candidates[@]}"; do
    if [ -d "$c/crates" ]; then
        db=$c
        break
    fi
done
if [ -z "$db" ]; then
    log "error: no advisory database (set RUSTSEC_DB, or make one with scripts/advisory-db.sh);" \
        "looked for crates/ in: ${candidates[*]}"
    exit 1
fi
if [ ! -f "$db/SNAPSHOT" ]; then
    log "error: $db has no SNAPSHOT file naming its upstream commit and date"
    exit 1
fi
commit=$(sed -n 's/^commit //p' "$db/SNAPSHOT")
date=$(sed -n 's/^date //p' "$db/SNAPSHOT")
if [ -z "$commit" ] || [ -z "$date" ]; then
    log "error: $db/SNAPSHOT names no commit or no date"
    exit 1
fi
age=$((($(date +%s) - $(date -d "$date" +%s)) / 86400))
log "advisory database $db: commit $commit of $date, $age days old"
[ "$age" -le 90 ] || log "warning: the advisory database is $age days old; advisories published" \
    "since are not checked (refresh it with scripts/advisory-db.sh)"

ignore=()
if [ -f .ci/audit-ignore ]; then
    while read -r id reason; do
        case $id in '' | '#'*) continue ;; esac
        if [ -z "$reason" ]; then
            log "error: .ci/audit-ignore: $id is ignored without a reason"
            exit 1
        fi
        log "ignored: $id: $reason"
        ignore+=(--ignore "$id")
    done <.ci/audit-ignore
fi

audit=$(scripts/cargo-audit.sh)
# cargo-audit reads whether a version is yanked from cargo's cache of crates.io's index; a dry
# update brings every package of the lock file into it, fresh, and writes nothing.
cargo update --dry-run --quiet 2>/dev/null ||
    log "warning: crates.io's index could not be refreshed: yanked versions as cached"
# --no-fetch reads the directory as it is; a directory is never stale to cargo-audit (its age is
# checked above), --stale only says so.
"$audit" audit --db "$db" --no-fetch --stale --deny unsound "${ignore[@]}" "$@"
