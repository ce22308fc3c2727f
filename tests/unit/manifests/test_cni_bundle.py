"""The node's `kube-ovn` plugin file runs with nothing but python3 (`multinic-ipam install-cni`)."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from webhook.commands import install_cni

SYSTEM_PYTHON = "/usr/bin/python3"


def test_bundle_runs_under_a_bare_python_without_site_packages(tmp_path: Path) -> None:
    target = tmp_path / "bin" / "kube-ovn"
    modules = install_cni.build(target)
    assert "cni.plugin" in modules
    assert os.access(target, os.X_OK)
    # -I -S: no user site, no site-packages, no PYTHONPATH: only the standard library and the zip.
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-S", str(target)],
        env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"},
        input='{"cniVersion": "1.0.0"}', capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1.0.0" in json.loads(done.stdout)["supportedVersions"]


def test_bundle_holds_only_the_plugin_modules(tmp_path: Path) -> None:
    target = tmp_path / "kube-ovn"
    install_cni.build(target)
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
    assert "__main__.py" in names
    assert "cni/plugin.py" in names
    assert "cni/daemon.py" not in names  # the daemon needs kubernetes; it stays out
    assert all(name == "__main__.py" or name.startswith("cni/") for name in names)
    first_line = f"#!{SYSTEM_PYTHON} -ISc{install_cni.ENTRY_COMMAND}\n"
    assert target.read_bytes().startswith(first_line.encode())


def test_a_plugin_module_importing_a_third_party_package_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cni"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("from cni import helper\n\ndef main():\n    pass\n")
    (package / "helper.py").write_text("import netaddr\n")
    monkeypatch.setattr(install_cni, "_package_root", lambda: package)
    with pytest.raises(install_cni.BundleError, match=r"cni.helper imports netaddr"):
        install_cni.build(tmp_path / "out" / "kube-ovn")
    assert not (tmp_path / "out" / "kube-ovn").exists()


def test_command_writes_into_the_cni_bin_dir(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "install-cni", "--cni-bin-dir", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "kube-ovn").is_file()
    assert f"wrote {tmp_path / 'kube-ovn'}" in done.stdout


def test_command_refuses_a_folder_as_output(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "install-cni", "--output", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2
    assert f"{tmp_path} is a folder" in done.stderr


def test_bundle_runs_through_its_own_first_line(tmp_path: Path) -> None:
    """As the runtime runs it: exec of the file, whose `-c` line puts the file itself on sys.path."""
    target = tmp_path / "kube-ovn"
    install_cni.build(target)
    done = subprocess.run([str(target)], env={"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"},
                          input='{"cniVersion": "0.4.0"}', capture_output=True, text=True, cwd=tmp_path,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["cniVersion"] == "0.4.0"
    assert len(target.read_bytes().split(b"\n", 1)[0]) <= install_cni.MAX_FIRST_LINE


@pytest.mark.parametrize(("python", "why"), [
    ("python3", "absolute path"), ("/opt/my python/bin/python3", "spaces"),
    ("/" + "p" * 40 + "/bin/python3", "longer than 127")])
def test_an_unusable_python_path_is_refused(tmp_path: Path, python: str, why: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "install-cni", "--output", str(tmp_path / "kube-ovn"),
         "--python", python], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert why in done.stderr and not (tmp_path / "kube-ovn").exists()


def test_the_ipam_call_path_imports_nothing_heavy(tmp_path: Path) -> None:
    """What made a call slow before: runpy (running the zip as a script), os, collections, typing,
    json/re/enum, socket.py, http.client, __future__ (applied at build time). The plugin's IPAM
    path loads none of them."""
    target = tmp_path / "kube-ovn"
    install_cni.build(target)
    probe = ("import sys;sys.path.insert(0,sys.argv[1]);import cni.plugin, cni.client, cni.config;"
             "import cni.result;print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-S", "-c", probe, str(target)], capture_output=True,
                          text=True, check=True)
    loaded = set(done.stdout.split())
    heavy = {"runpy", "os", "collections", "typing", "json", "re", "enum", "socket", "http.client",
             "importlib.util", "contextlib", "dataclasses", "ipaddress", "subprocess", "__future__"}
    assert "cni.plugin" in loaded
    assert not heavy & loaded, sorted(heavy & loaded)


def test_bundled_bytecode_keeps_annotations_lazy_without_importing_future() -> None:
    source = "from __future__ import annotations\n\ndef f(x: Undefined) -> None:\n    pass\n"
    namespace: dict = {}
    exec(marshal.loads(install_cni.bytecode(source, "cni/x.py")[16:]), namespace)
    assert namespace["f"].__annotations__ == {"x": "Undefined", "return": "None"}
    assert "annotations" not in namespace
