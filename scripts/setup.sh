#!/usr/bin/env bash
# Installs everything multinic-ipam needs to run and be tested; idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# containerd, runc and busybox-static: the node of `dev up --node` and the node tests (its images come
# from busybox-static, since no registry is reachable). mmdebstrap and buildah: scripts/build-image.sh.
packages=(etcd-server containernetworking-plugins iproute2 python3-venv rsync jq golang-go dpkg-dev make
  containerd runc busybox-static haproxy mmdebstrap buildah)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash scripts/build-control-plane.sh

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv" >&2
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[setup] installing multinic-ipam and its test tools into .venv" >&2
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
