#!/usr/bin/env bash
# Checks the minimum supported Rust version the workspace declares (rust-version in Cargo.toml's
# [workspace.package]) with the one, newer, toolchain there is:
#
#  1. every workspace crate inherits that rust-version and the workspace lints, where clippy's
#     incompatible_msrv is denied (it fails any use of a standard library item stabilised after
#     rust-version; CI's clippy run enforces it), and the workspace resolves with resolver 3, so
#     that `cargo update` and `cargo add` pick no dependency needing a newer Rust where an older
#     release of it would do;
#  2. no package in Cargo.lock declares a rust-version newer than the workspace's (with that
#     Rust, cargo refuses to build such a package). Packages that declare none can't be checked:
#     their count is printed.
#
#   scripts/msrv.sh
#
# Prints what it checked; exits non-zero listing every offence. Needs cargo and Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."
metadata=$(mktemp)
trap 'rm -f "$metadata"' EXIT
cargo metadata --format-version 1 --locked >"$metadata"
python3 - "$metadata" <<'EOF'
import json
import os
import sys
import tomllib


def version(text):
    """'1.88' or '1.88.0' as a comparable triple."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def inherits(table, key):
    value = table.get(key)
    return isinstance(value, dict) and value.get("workspace") is True


with open("Cargo.toml", "rb") as f:
    root = tomllib.load(f)
workspace = root["workspace"]
declared = workspace.get("package", {}).get("rust-version")
errors = []
if declared is None:
    sys.exit("msrv.sh: Cargo.toml's [workspace.package] declares no rust-version")
msrv = version(declared)
if workspace.get("resolver") != "3":
    errors.append('Cargo.toml: [workspace] resolver is not "3" (the resolver that falls back to '
                  "dependency releases the workspace's rust-version can build)")
if workspace.get("lints", {}).get("clippy", {}).get("incompatible_msrv") != "deny":
    errors.append("Cargo.toml: [workspace.lints.clippy] does not deny incompatible_msrv")

with open(sys.argv[1]) as f:
    metadata = json.load(f)
members = set(metadata["workspace_members"])
packages = metadata["packages"]
for package in packages:
    if package["id"] not in members:
        continue
    path = os.path.relpath(package["manifest_path"])
    with open(package["manifest_path"], "rb") as f:
        manifest = tomllib.load(f)
    if not inherits(manifest.get("package", {}), "rust-version"):
        errors.append(f"{path}: rust-version is not inherited (rust-version.workspace = true)")
    if manifest.get("lints", {}).get("workspace") is not True:
        errors.append(f"{path}: the workspace lints are not inherited ([lints] workspace = true)")

dependencies = [p for p in packages if p["id"] not in members]
undeclared = [p for p in dependencies if not p["rust_version"]]
too_new = sorted(
    (p for p in dependencies if p["rust_version"] and version(p["rust_version"]) > msrv),
    key=lambda p: (p["name"], p["version"]),
)
for p in too_new:
    errors.append(f"Cargo.lock: {p['name']} {p['version']} needs Rust {p['rust_version']} "
                  f"(try `cargo update -p {p['name']}@{p['version']}`)")

print(f"msrv.sh: rust-version {declared}: {len(members)} workspace crates, "
      f"{len(dependencies)} packages in Cargo.lock, {len(dependencies) - len(undeclared)} "
      f"declaring a rust-version, {len(undeclared)} declaring none")
for e in errors:
    print(f"msrv.sh: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
