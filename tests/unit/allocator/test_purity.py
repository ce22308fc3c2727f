"""The allocator stays pure: the import-linter contracts in pyproject.toml hold for the whole repo,
and importing every allocator module loads no Kubernetes client, web framework or HTTP library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
FORBIDDEN = ("kubernetes", "flask", "gunicorn", "urllib3", "requests", "webhook", "cni", "certs")


def test_import_contracts_are_kept():
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_importing_the_allocator_loads_nothing_forbidden():
    probe = (
        "import importlib, pkgutil, sys, allocator\n"
        "for module in pkgutil.iter_modules(allocator.__path__):\n"
        "    importlib.import_module(f'allocator.{module.name}')\n"
        f"print(sorted(name for name in sys.modules if name.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    # the plugin's network-config limits (constants, no imports) are the one exception; see pyproject.toml
    assert result.stdout.strip() == "['cni', 'cni.netconf_rules']"
