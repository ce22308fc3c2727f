#!/usr/bin/env bash
# The README's first command. `bash scripts/dev.sh up` installs what is needed (apt packages, the
# venv, the control-plane binaries: scripts/setup.sh) and then runs `multinic-ipam dev up`, with
# `--node` (a real kubelet node, about 15 s more) when run as root; `status` and `down` pass
# straight through. Extra arguments go to `multinic-ipam dev`.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-up}
[ "$#" -gt 0 ] && shift
case "$action" in
  up)
    bash scripts/setup.sh
    node=()
    [ "$(id -u)" -eq 0 ] && node=(--node)
    exec .venv/bin/multinic-ipam dev up "${node[@]}" "$@"
    ;;
  status | down)
    if [ ! -x .venv/bin/multinic-ipam ]; then
      echo "nothing to $action: .venv is missing (run: bash scripts/dev.sh up)" >&2
      exit 1
    fi
    exec .venv/bin/multinic-ipam dev "$action" "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh up|status|down [--run-dir DIR]; \"$action\" is not one of them" >&2
    exit 2
    ;;
esac
