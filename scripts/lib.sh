# Shared by the project's scripts, which source it: logging, Debian packages installed when
# missing, and the cache outside the repository with its install locks.
#
#   FERRUM_CACHE   cache root (default: ${XDG_CACHE_HOME:-~/.cache}/ferrum)

CACHE_ROOT=${FERRUM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrum}

log() { echo "$(basename "$0"): $*" >&2; }

# Commands that change the system run through sudo unless the script runs as root.
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)

_apt_updated=0
# apt_install PACKAGE...: installs Debian packages, updating the package lists once per script.
apt_install() {
    log "installing $*"
    if [ "$_apt_updated" -eq 0 ]; then
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        _apt_updated=1
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# cached_or_lock LABEL PRINTED: when the caller's `is_installed` says the cache entry is
# complete, prints PRINTED and ends the script; otherwise takes LABEL's install lock (held until
# the script ends, so concurrent installers serialise) and checks again, for an installer that
# finished meanwhile.
cached_or_lock() {
    if is_installed; then
        echo "$2"
        exit 0
    fi
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/$1.lock"
    log "waiting for the install lock $CACHE_ROOT/$1.lock"
    flock 9
    if is_installed; then
        echo "$2"
        exit 0
    fi
}
