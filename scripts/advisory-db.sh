#!/usr/bin/env bash
# Makes the snapshot of RustSec's advisory database that scripts/audit.sh reads, from a git
# repository of that database (a clone or a mirror, bare or not): the advisories under crates/ of
# its commit REV, laid out as in the repository, with its licence file, and a file SNAPSHOT
# naming that commit and its date. CI reaches no git host, so the snapshot is made where a copy
# of the repository can be had and laid in shared/ beside the checkout, where CI finds it; it is
# data, kept out of the repository. Refreshing it is running this again on a newer copy.
#
#   scripts/advisory-db.sh REPO [DEST] [REV]    defaults: ../shared/advisory-db beside this
#                                               checkout, HEAD
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -lt 1 ]; then
    echo "usage: $0 REPO [DEST] [REV]" >&2
    exit 2
fi
src=$1
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${2:-$here/../shared/advisory-db}
rev=${3:-HEAD}

commit=$(git -C "$src" rev-parse --verify "$rev^{commit}")
date=$(git -C "$src" show -s --format=%cI "$commit")
# A database in the upstream layout has one directory per crate under crates/, and each advisory
# names itself in its front matter.
advisories=$(git -C "$src" ls-tree -r --name-only "$commit" crates 2>/dev/null || true)
if ! grep -q '^crates/[^/]*/RUSTSEC-.*\.md$' <<<"$advisories"; then
    log "error: $src at $commit has no crates/<crate>/RUSTSEC-*.md advisories"
    exit 1
fi

# Made beside DEST and moved in place whole, so a reader never sees half of it.
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d "$dest.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
# The repository's licence file goes along with its advisories.
mapfile -t licence < <(git -C "$src" ls-tree --name-only "$commit" | grep -i '^licen[cs]e' || true)
git -C "$src" archive "$commit" crates "${licence[@]}" | tar -x -C "$tmp"
cat >"$tmp/SNAPSHOT" <<EOF
RustSec advisory database, its crates/ advisories
commit $commit
date $date
EOF
rm -rf "$dest.old"
[ ! -e "$dest" ] || mv "$dest" "$dest.old"
mv "$tmp" "$dest"
rm -rf "$dest.old"
count=$(find "$dest/crates" -name 'RUSTSEC-*.md' | wc -l)
log "$dest: $count advisories, commit $commit of $date ($(du -sh "$dest" | cut -f1))"
