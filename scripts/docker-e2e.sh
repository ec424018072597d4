#!/usr/bin/env bash
# The deployment Ferrum exists for, end to end: its Docker image built from the project's
# Dockerfile, composed with a BTCPay-style bitcoind the way BTCPay Server's generator merges
# fragments, started with `docker compose`, and the real Electrum wallets (Debian's 4.3.4 and
# 4.8.1) connected from this machine to 127.0.0.1:50002:s (ferrum/tests/docker_e2e.rs).
#
# Installs what it needs when missing: Debian's docker.io and debootstrap; Docker Compose v2 and
# buildx, which Debian 12 lacks, from Debian 13's archive (apt checks their signatures). Starts
# dockerd (vfs storage) if no engine answers, and stops it at the end. Docker Hub is not used:
# the base images are made locally from Debian's archive with debootstrap (cached in
# $FERRUM_CACHE/docker), the build image adds this machine's Rust toolchain to them.
#
#   scripts/docker-e2e.sh [cargo test arguments...]
#
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
CACHE=$CACHE_ROOT/docker
RUNTIME_BASE=localhost/ferrum-base/debian:bookworm
BUILDER_BASE=localhost/ferrum-base/rust:bookworm
FERRUM_IMAGE=localhost/ferrum:latest
BITCOIND_IMAGE=localhost/ferrum-test/bitcoin:regtest
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# Bumped when the way the base images are made changes, so cached ones are made again.
BASE_REV=2

scripts/deps.sh
mkdir -p "$CACHE"
start=$(date +%s)

# 1. The engine and its tools.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v iptables >/dev/null || need+=(iptables)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
# Compose v2 (BTCPay's) and buildx (BuildKit, which the Dockerfile's cache mounts need) are Go
# programs that depend on libc only: Debian 13's packages install as they are.
trixie_debs=()
docker compose version >/dev/null 2>&1 || trixie_debs+=(docker-compose)
docker buildx version >/dev/null 2>&1 || trixie_debs+=(docker-buildx)
if [ ${#trixie_debs[@]} -gt 0 ]; then
    log "installing ${trixie_debs[*]} from Debian 13 (trixie)"
    apt_dir=$(mktemp -d)
    mkdir -p "$apt_dir/lists/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        >"$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists")
    apt-get -qq "${apt_opts[@]}" update >&2
    (cd "$apt_dir" && apt-get -qq "${apt_opts[@]}" download "${trixie_debs[@]}" >&2)
    "${as_root[@]}" dpkg -i "$apt_dir"/*.deb >&2
    rm -rf "$apt_dir"
fi

# 2. A running engine: this machine's, or one started here with vfs storage (no overlay needed)
#    and stopped when the script ends.
dockerd_pid=
cleanup() {
    if [ -n "$dockerd_pid" ]; then
        log "stopping the dockerd this script started"
        "${as_root[@]}" kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (vfs storage), log in $CACHE/dockerd.log"
    "${as_root[@]}" dockerd --storage-driver=vfs >"$CACHE/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 120); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { tail -n 20 "$CACHE/dockerd.log" >&2; exit 1; }
        sleep 0.5
    done
    docker info >/dev/null
fi

# 3. Base images from Debian's archive.
rootfs_tar=$CACHE/debian-bookworm-minbase-$BASE_REV.tar
if [ ! -f "$rootfs_tar" ]; then
    log "debootstrap of Debian bookworm (minbase), log in $CACHE/debootstrap.log"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # mktemp makes it 0700: as the image's / it would shut out every user but root.
    chmod 0755 "$rootfs"
    "${as_root[@]}" debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
    # As Debian's -slim images: no documentation, no package lists.
    "${as_root[@]}" rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/cache/apt/*.bin
    "${as_root[@]}" tar -C "$rootfs" -cf "$rootfs_tar.tmp" .
    "${as_root[@]}" rm -rf "$rootfs"
    mv "$rootfs_tar.tmp" "$rootfs_tar"
fi
label() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
if [ "$(label "$RUNTIME_BASE" base-rev)" != "$BASE_REV" ]; then
    log "importing $RUNTIME_BASE"
    docker import --change 'CMD ["bash"]' --change "LABEL base-rev=$BASE_REV" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$rootfs_tar" "$RUNTIME_BASE" >/dev/null
fi
toolchain=$(rustc --print sysroot)
toolchain_id="$(rustc --version | tr -c 'a-zA-Z0-9.\n' '-')-base-$BASE_REV"
if [ "$(label "$BUILDER_BASE" toolchain)" != "$toolchain_id" ]; then
    log "building $BUILDER_BASE with this machine's $(rustc --version)"
    ctx=$(mktemp -d)
    mkdir -p "$ctx/rust" "$ctx/ca-certificates"
    for d in bin lib libexec etc; do
        [ -d "$toolchain/$d" ] && cp -a "$toolchain/$d" "$ctx/rust/"
    done
    cp /usr/local/share/ca-certificates/*.crt "$ctx/ca-certificates/" 2>/dev/null || true
    DOCKER_BUILDKIT=1 docker build -q --build-arg BASE_IMAGE="$RUNTIME_BASE" --label "toolchain=$toolchain_id" \
        -f ferrum/tests/docker/builder.Dockerfile -t "$BUILDER_BASE" "$ctx" >/dev/null
    rm -rf "$ctx"
fi

# 4. Ferrum's image, from the project's Dockerfile as users build it.
log "building $FERRUM_IMAGE from the Dockerfile"
build_start=$(date +%s)
DOCKER_BUILDKIT=1 docker build \
    --build-arg BUILDER_IMAGE="$BUILDER_BASE" --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$FERRUM_IMAGE" -t "localhost/ferrum:$VERSION" . >&2
log "image built in $(($(date +%s) - build_start)) s: $(docker image inspect -f '{{.Size}}' "$FERRUM_IMAGE") bytes"

# 5. Bitcoin Core the way BTCPay's image runs it, from the binaries scripts/bitcoind.sh builds.
bin=$(scripts/bitcoind.sh)
ctx=$(mktemp -d)
cp "$bin/bitcoind" "$bin/bitcoin-cli" ferrum/tests/docker/bitcoind-entrypoint.sh "$ctx/"
DOCKER_BUILDKIT=1 docker build -q --build-arg BASE_IMAGE="$RUNTIME_BASE" -f ferrum/tests/docker/bitcoind.Dockerfile \
    -t "$BITCOIND_IMAGE" "$ctx" >/dev/null
rm -rf "$ctx"

# 6. Lint every Dockerfile.
scripts/hadolint.sh --failure-threshold style Dockerfile ferrum/tests/docker/*.Dockerfile

# 7. The deployment and the wallets.
ELECTRUM_481_EXE=$(scripts/electrum.sh)
export ELECTRUM_481_EXE FERRUM_IMAGE BITCOIND_IMAGE
cargo test -p ferrum --features docker-e2e --test docker_e2e "$@" -- --nocapture
log "done in $(($(date +%s) - start)) s"
