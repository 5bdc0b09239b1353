#!/usr/bin/env bash
# Build and run bonefem's container image with podman, on a machine that cannot pull.
#
#   fem/runtime/image.sh build [TAG]     build the Dockerfile (default tag: bonefem)
#   fem/runtime/image.sh check           build, then tests/test_image.py on the host: the
#                                        image's numbers against the runtime's (1e-10)
#   fem/runtime/image.sh run ARGS...     podman run --rm with this machine's settings
#   fem/runtime/image.sh podman ARGS...  any podman command with this machine's settings
#   fem/runtime/image.sh sif [TAG]       print the command that makes an Apptainer SIF
#
# `build` installs podman, runc and debootstrap on a Debian host when missing (as root),
# makes the Dockerfile's base image from a debootstrap trixie minbase tree when no
# registry image is there (podman import, tagged as the Dockerfile's FROM), then runs
# `podman build`. Where a registry is reachable, plain `docker build -t bonefem .` does
# the same (docs/docker.md).
#
# Environment:
#   BONEFEM_MIRROR         Debian mirror URL (default: read from the host's apt sources)
#   BONEFEM_RUNTIME_CACHE  where the base tree, its tarball and the podman settings are
#                          kept (default /var/cache/bonefem; the image cache is in image/)
set -euo pipefail

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${BONEFEM_RUNTIME_CACHE:-/var/cache/bonefem}/image
base=$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]\+\).*/\1/p' "$project/Dockerfile" | head -n1)

say() { printf 'image.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

# The host's Debian mirror, as ./bonefem reads it (deb822 sources, then one-line sources).
host_mirror() {
    if [ -n "${BONEFEM_MIRROR:-}" ]; then echo "${BONEFEM_MIRROR%/}"; return; fi
    local m=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        m=$(awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' /etc/apt/sources.list.d/*.sources \
            | grep -v -e security -e updates | grep '/debian/\?$' | head -n1 || true)
    fi
    if [ -z "$m" ]; then
        m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; break}}' \
            | grep -v -e security -e updates | grep '/debian/\?$' | head -n1 || true)
    fi
    [ -n "$m" ] || die "no Debian mirror found in /etc/apt/sources.list*; set BONEFEM_MIRROR=URL"
    echo "${m%/}"
}

ensure_host_tools() {
    local need=() p
    command -v podman >/dev/null || need+=(podman)
    command -v runc >/dev/null || need+=(runc)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    command -v flock >/dev/null || need+=(util-linux)
    for p in "$@"; do command -v "$p" >/dev/null || need+=("$p"); done
    [ ${#need[@]} -eq 0 ] && return
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
        || die "this host needs ${need[*]} (as root on Debian: apt-get install ${need[*]})"
    say "installing host packages: ${need[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 \
        || die "could not install ${need[*]}"
}

# podman here runs containers only with runc (crun refuses the host's hybrid cgroup
# layout), the cgroupfs manager (no systemd) and no default ulimits (setting
# RLIMIT_NPROC/NOFILE is not permitted). A private containers.conf keeps the host's
# own podman configuration untouched.
podman_conf() {
    mkdir -p "$cache"
    local conf=$cache/containers.conf
    [ -f "$conf" ] || cat > "$conf" <<'CONF'
# bonefem: podman settings for hosts without systemd cgroups (fem/runtime/image.sh)
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
    echo "$conf"
}

pod() { CONTAINERS_CONF=$(podman_conf) podman "$@"; }

# The Dockerfile's base image, made from a debootstrap minbase tree when it cannot be pulled.
ensure_base() {
    if pod image exists "$base"; then return; fi
    local tree=$cache/base-trixie-minbase tar=$cache/base-trixie-minbase.tar mirror t0
    if [ ! -f "$tar" ]; then
        mirror=$(host_mirror)
        t0=$(date +%s)
        say "making the base image $base from a debootstrap trixie minbase tree"
        rm -rf "$tree"
        debootstrap --variant=minbase trixie "$tree" "$mirror" >"$cache/debootstrap.log" 2>&1 \
            || { tail -n 20 "$cache/debootstrap.log" >&2; die "debootstrap failed (log: $cache/debootstrap.log)"; }
        # A base image keeps no package cache or lists (as Debian's own images).
        rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/* "$tree"/var/log/*.log
        tar --numeric-owner -C "$tree" -cf "$tar.part" .
        mv "$tar.part" "$tar"
        rm -rf "$tree"
        say "base tree ready after $(( $(date +%s) - t0 )) s"
    fi
    pod import --change 'CMD ["bash"]' "$tar" "$base" >/dev/null
}

build() {
    local tag=${1:-bonefem} t0
    [ "$(id -u)" = 0 ] || die "build as root (podman's root storage; debootstrap)"
    ensure_host_tools
    mkdir -p "$cache"
    # One build at a time on a machine; a second caller waits and reuses the layers.
    exec 8>"$cache/build.lock"
    flock 8
    t0=$(date +%s)
    ensure_base
    # --network host: the build's apt-get reaches the mirror like the host does, without
    # setting up a bridge. --pull=never: the base is local.
    pod build --pull=never --network host -t "$tag" -f "$project/Dockerfile" "$project" >&2
    say "built $tag in $(( $(date +%s) - t0 )) s; size $(pod image inspect --format '{{.Size}}' "$tag") bytes"
    # release the lock: `check` runs the tests (which build again) in this process
    flock -u 8
    exec 8>&-
}

case "${1:-}" in
    build) shift; build "$@" ;;
    check) shift; build bonefem; exec "$project/fem/runtime/host-pytest.sh" image "$project/tests/test_image.py" "$@" ;;
    run) shift; ensure_host_tools; exec env CONTAINERS_CONF="$(podman_conf)" podman run --rm "$@" ;;
    podman) shift; ensure_host_tools; exec env CONTAINERS_CONF="$(podman_conf)" podman "$@" ;;
    sif)
        tag=${2:-bonefem}
        echo "podman save --format docker-archive -o bonefem.tar localhost/$tag:latest"
        echo "apptainer build bonefem.sif docker-archive://bonefem.tar" ;;
    *) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [ "${1:-}" = -h ] || [ "${1:-}" = --help ] || exit 2 ;;
esac
