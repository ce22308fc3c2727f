#!/usr/bin/env bash
# Builds the project's image from its own Dockerfile without a registry, and writes it as an OCI archive:
#   1. a minimal Debian 12 base with python3 and pip (mmdebstrap; it reaches Debian's mirror as apt does),
#      imported into buildah's storage as $BASE_IMAGE (cached: made once);
#   2. `buildah build --build-arg BASE=$BASE_IMAGE` of the Dockerfile, unchanged otherwise (layers cached);
#   3. `buildah push` to an OCI archive, and with --containerd, `ctr -n k8s.io images import` of it.
# Usage: scripts/build-image.sh [--tag TAG] [--output FILE] [--containerd SOCKET [--snapshotter NAME]]
# (the snapshotter defaults to containerd's own; the local node of devtools/node.py uses `native`).
# Prints the archive's path on stdout. Storage lives in $MULTINIC_CACHE/buildah (vfs driver and chroot
# isolation: they need neither overlayfs nor user namespaces, so they work inside containers too).
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${MULTINIC_CACHE:-$HOME/.cache/multinic-ipam}"
repository="ghcr.io/multinic-ipam/multinic-ipam"
tag=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
output=""
containerd=""
snapshotter=""
base_image="localhost/multinic-ipam/python:3.11-bookworm"
log() { printf '[build-image] %s\n' "$*" >&2; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    --containerd) containerd="$2"; shift 2 ;;
    --snapshotter) snapshotter="$2"; shift 2 ;;
    *) log "unknown argument $1 (see the usage at the top of $0)"; exit 2 ;;
  esac
done
image="$repository:$tag"
output="${output:-$cache/images/multinic-ipam-$tag.oci.tar}"

for tool in mmdebstrap buildah; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is not installed: run scripts/setup.sh"; exit 1; }
done
buildah() {
  command buildah --root "$cache/buildah/storage" --runroot "$cache/buildah/run" --storage-driver vfs "$@"
}

# 1. The base: what python:3.11-slim-bookworm gives the Dockerfile (python3, pip, useradd), from Debian.
if ! buildah inspect --type image "$base_image" >/dev/null 2>&1; then
  log "making the base $base_image with mmdebstrap"
  rootfs="$cache/images/python-3.11-bookworm.tar"
  mkdir -p "$cache/images"
  # merged-usr hook: /usr merged without the usrmerge package (and the perl it pulls in); no docs,
  # manuals or translations; pip may install into the system Python, as in the official image; and
  # this machine's own CAs (/usr/local/share/ca-certificates), so pip reaches PyPI through a TLS proxy.
  mmdebstrap --quiet --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --include=python3,python3-pip,passwd --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    --customize-hook='cp -r /usr/local/share/ca-certificates/. "$1"/usr/local/share/ca-certificates/' \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
    bookworm "$rootfs"
  container=$(buildah from scratch)
  buildah add --quiet "$container" "$rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$container"
  buildah commit --quiet --rm "$container" "$base_image" >/dev/null
  rm -f "$rootfs"
fi

# 2. The Dockerfile, as users build it, on that base. buildah 1.28 keys a cached RUN layer by its
# parent and text alone, so the runtime stage's `RUN --mount=…,from=build` would reuse an old install
# after the sources change. So when the files the Dockerfile copies change, every image but the base
# goes (older tags included: they would hold the same stale layer) and the build starts without cache.
sources=$(awk '$1 == "COPY" && $2 !~ /^--/ {for (i = 2; i < NF; i++) print $i}' Dockerfile)
# shellcheck disable=SC2086  # one path per word
digest=$(find $sources -type f ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
  | sha256sum | cut -c1-16)
stamp="$cache/buildah/sources-digest"
cache_flag=--layers
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  cache_flag=--no-cache
  stale=$(buildah images --all --format '{{.ID}} {{.Name}}:{{.Tag}}' | awk -v base="$base_image" '$2 != base {print $1}')
  # shellcheck disable=SC2086  # one image id per word
  [ -z "$stale" ] || buildah rmi --force $stale >/dev/null
fi
log "building $image (${cache_flag#--})"
buildah build --quiet "$cache_flag" --layers --isolation chroot --pull=never --build-arg "BASE=$base_image" \
  --label "org.opencontainers.image.version=$tag" -t "$image" -f Dockerfile . >/dev/null
echo "$digest" >"$stamp"

# 3. The OCI archive, and the node's containerd.
mkdir -p "$(dirname "$output")"
rm -f "$output"
buildah push --quiet "$image" "oci-archive:$output:$image" >/dev/null
log "wrote $output ($(du -m "$output" | cut -f1) MB)"
if [ -n "$containerd" ]; then
  ctr --address "$containerd" -n k8s.io images import ${snapshotter:+--snapshotter "$snapshotter"} \
    "$output" >/dev/null
  log "imported $image into containerd at $containerd"
fi
echo "$output"
