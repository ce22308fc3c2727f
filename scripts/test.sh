#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 or 13 machine: installs what it needs (apt packages,
# the venv, the control-plane binaries), lints, then runs every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff" && ruff check .
echo "== import contracts" && lint-imports
echo "== pytest"
exec pytest "$@"
