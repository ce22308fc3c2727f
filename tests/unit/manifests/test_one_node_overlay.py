"""The one-node overlay devtools/deploy.py applies (README "Deploying to a cluster", step 3), built
offline with `kubectl kustomize`: only the image tag, the DaemonSet's host folders and, for servers
before 1.21, the two concessions change; everything else is manifests/ as users apply it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import deploy, node


def _build(tmp_path: Path, server: tuple[int, int], tag: str = "9.9.9") -> list[dict[str, Any]]:
    local = node.LocalNode(tmp_path / "node", kubeconfig=tmp_path / "kubeconfig", name="n", deployed=True)
    overlay = deploy.write_overlay(tmp_path / "overlay", local, tag, server)
    built = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True,
                           check=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def _base() -> list[dict[str, Any]]:
    built = subprocess.run(["kubectl", "kustomize", str(deploy.MANIFESTS)], capture_output=True, text=True,
                           check=True, timeout=60)
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def _images(docs: list[dict[str, Any]]) -> set[str]:
    return {c["image"] for d in docs if d["kind"] in ("Deployment", "DaemonSet")
            for key in ("containers", "initContainers") for c in d["spec"]["template"]["spec"].get(key, [])}


def test_tag_and_host_folders_change_and_nothing_else_on_a_current_server(tmp_path: Path) -> None:
    docs = _build(tmp_path, (1, 36))
    assert _images(docs) == {f"{deploy.IMAGE}:9.9.9"}
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    folders = {v["name"]: v["hostPath"]["path"] for v in daemonset["spec"]["template"]["spec"]["volumes"]
               if "hostPath" in v}
    assert folders == {"cni-bin": str(tmp_path / "node" / "cni" / "bin"),
                       "run-openvswitch": str(tmp_path / "node" / "openvswitch")}

    # manifests/ with those changes made by hand is exactly what the overlay builds.
    expected = _base()
    for doc in expected:
        if doc["kind"] == "DaemonSet":
            for volume in doc["spec"]["template"]["spec"]["volumes"]:
                if "hostPath" in volume:
                    volume["hostPath"]["path"] = folders[volume["name"]]
    text = yaml.safe_dump_all(expected)
    text = text.replace(f"{deploy.IMAGE}:{deploy.image_tag()}", f"{deploy.IMAGE}:9.9.9")
    wanted = sorted(yaml.safe_dump(d) for d in yaml.safe_load_all(text))
    assert sorted(yaml.safe_dump(d) for d in docs) == wanted


@pytest.mark.parametrize("server", [(1, 20), (1, 36)])
def test_older_servers_get_v1beta1_disruption_budgets_and_no_match_conditions(
    tmp_path: Path, server: tuple[int, int]
) -> None:
    docs = _build(tmp_path, server)
    budget = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    configurations = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
    old = server < (1, 21)
    assert budget["apiVersion"] == ("policy/v1beta1" if old else "policy/v1")
    assert all(("matchConditions" in c["webhooks"][0]) is not old for c in configurations)
