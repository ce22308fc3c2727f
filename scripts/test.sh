#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 or 13 machine: installs what it needs (apt packages,
# the venv, the control-plane binaries), lints, then runs every test against the Debian-built 1.20
# API server, and the tests marked both_apiservers (admission and Multus) again against 1.36
# (devtools/prebuilt.py). Extra arguments go to the first pytest run only, and then the 1.36 run is
# left out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff" && ruff check .
echo "== import contracts" && lint-imports
echo "== pytest (API server 1.20)"
pytest "$@"
if [ "$#" -eq 0 ]; then
  echo "== pytest (API server 1.36: tests marked both_apiservers)"
  MULTINIC_APISERVER=1.36 pytest tests/e2e tests/cni -m "both_apiservers or min_apiserver"
fi
