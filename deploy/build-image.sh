#!/usr/bin/env bash
# Builds the Swarm node image with Debian's tools only — no registry, no Docker Hub, no mcr.microsoft.com:
#
#   sudo deploy/build-image.sh [--tag localhost/swarm:VERSION] [--cache DIR] [--suite bookworm] [--mirror URL]
#
#   1. publishes the single-file, self-contained, ReadyToRun executable for linux-x64 and linux-arm64 (the executables
#      of a multi-arch release) into deploy/out/<rid>/swarm;
#   2. makes a minimal Debian root file system with debootstrap (--variant=minbase, plus ca-certificates, libicu72 and
#      libssl3, which the .NET runtime loads) for this machine's architecture, cached in --cache
#      (default /var/cache/swarm-image; delete it to refresh the base);
#   3. assembles the image with buildah from scratch: that root file system, /usr/local/bin/swarm, entrypoint
#      ["/usr/local/bin/swarm"] and default command ["node", "--data-dir", "/var/lib/swarm"] — the same as
#      deploy/Dockerfile, so deploy/daemonset.yaml's args compose with it — and commits it to local container storage
#      as --tag (default localhost/swarm:<version from Directory.Build.props>). `podman push TAG docker://REGISTRY/swarm:VERSION`
#      publishes it; `podman run` runs it.
# The arm64 image needs an arm64 base (debootstrap --foreign with qemu-user-static, or this script on an arm64 host):
# this script builds the image for the machine it runs on and the arm64 executable beside it.
# Needs root (debootstrap, buildah mount), and apt-get installs debootstrap and buildah when they are missing.
# Storage driver: $STORAGE_DRIVER if set, else vfs (works everywhere, also inside containers; podman must use the same).
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -n1)
TAG="localhost/swarm:${VERSION:?no <Version> in Directory.Build.props}"
CACHE=/var/cache/swarm-image
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}

while [[ $# -gt 0 ]]; do
    case $1 in
        --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
        --cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
        --suite) SUITE=${2:?--suite needs a value}; shift 2 ;;
        --mirror) MIRROR=${2:?--mirror needs a URL}; shift 2 ;;
        -h|--help) sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and buildah mount need it): sudo $0"

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v buildah >/dev/null || missing+=(buildah)
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

OUT=deploy/out
for rid in linux-x64 linux-arm64; do
    log "publishing swarm for $rid"
    dotnet publish Swarm.Cli/Swarm.Cli.csproj -c Release -r "$rid" --self-contained true \
        -p:PublishSingleFile=true -p:PublishReadyToRun=true -o "$OUT/$rid" -v quiet -nologo >/dev/null \
        || die "dotnet publish for $rid"
done
case $(uname -m) in
    x86_64) RID=linux-x64; ARCH=amd64 ;;
    aarch64) RID=linux-arm64; ARCH=arm64 ;;
    *) die "no image for $(uname -m): the executables are for x86-64 and arm64" ;;
esac

ROOTFS="$CACHE/rootfs-$SUITE-$ARCH"
if [[ ! -x $ROOTFS/bin/sh ]]; then
    log "making a $SUITE base with debootstrap from $MIRROR (a few minutes; cached in $ROOTFS)"
    rm -rf -- "$ROOTFS.tmp"
    mkdir -p "$CACHE"
    debootstrap --variant=minbase --arch="$ARCH" --include=ca-certificates,libicu72,libssl3 "$SUITE" "$ROOTFS.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
        || die "debootstrap (see $CACHE/debootstrap.log)"
    rm -rf -- "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/*
    mv -- "$ROOTFS.tmp" "$ROOTFS"
fi

log "assembling $TAG with buildah ($STORAGE_DRIVER storage)"
ctr=$(buildah from --quiet scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt=$(buildah mount "$ctr")
cp -a "$ROOTFS"/. "$mnt"/
install -D -m 0755 "$OUT/$RID/swarm" "$mnt/usr/local/bin/swarm"
mkdir -p "$mnt/var/lib/swarm"
buildah umount "$ctr" >/dev/null
buildah config \
    --entrypoint '["/usr/local/bin/swarm"]' --cmd '["node", "--data-dir", "/var/lib/swarm"]' \
    --port 7400/tcp --port 7400/udp --port 7401/tcp --port 7402/tcp \
    --volume /var/lib/swarm --stop-signal SIGTERM --os linux --arch "$ARCH" \
    --label org.opencontainers.image.title=swarm --label "org.opencontainers.image.version=$VERSION" \
    --label "org.opencontainers.image.description=Swarm peer-to-peer distribution node" \
    "$ctr"
buildah commit --quiet --rm "$ctr" "$TAG" >/dev/null
trap - EXIT
log "built $TAG ($(buildah images --format '{{.Size}}' "$TAG" | head -n1)); executables in $OUT/linux-x64/swarm and $OUT/linux-arm64/swarm"
echo "$TAG"
