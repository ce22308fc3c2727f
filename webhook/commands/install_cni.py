"""`multinic-ipam install-cni`: write the `kube-ovn` CNI plugin as one self-contained file.

Nodes run the plugin from `/opt/cni/bin` with the host's python3, outside any image or venv. So the
node DaemonSet's init container writes a zipapp holding `cni.plugin` and the `cni` modules it
imports — all standard library, which this command checks — and nothing else.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import contextlib
import importlib.util
import marshal
import os
import sys
import tempfile
import zipapp
from pathlib import Path
from typing import Any

ENTRY_MODULE = "cni.plugin"
ENTRY_POINT = "cni.plugin:main"
PLUGIN_NAME = "kube-ovn"
# The file's first line: `#!<python> -ISc<ENTRY_COMMAND>`. The kernel passes everything after the
# interpreter as one argument, which python reads as -I, -S and -c with the rest as its command.
# `-S`: no site module (the plugin is standard library only; site's .pth processing was a third of
# every call's start-up). `-I`: no PYTHON* variables, user site or working directory on the path,
# whatever the runtime's environment holds. `-c`: the file puts itself on sys.path and calls the
# entry point, because running a zipapp as a script goes through `runpy`, whose imports (importlib.util,
# contextlib, collections) took 4 ms, more than the plugin's own work. The kernel appends the
# file's path, which `-c` leaves in sys.argv[1]. The interpreter by absolute path, not through
# `/usr/bin/env -S python3`: env was one more program to load, about 1 ms a call (benchmarks/cni.py).
ENTRY_COMMAND = "import sys;sys.path.insert(0,sys.argv[1]);from cni.plugin import main;main()"
DEFAULT_PYTHON = "/usr/bin/python3"
MAX_FIRST_LINE = 127  # kernels before 5.1 cut a longer `#!` line


class BundleError(RuntimeError):
    """The plugin cannot be bundled as a standard-library-only file."""


def _package_root() -> Path:
    import cni

    return Path(cni.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Absolute module names imported by the file at `path` (`from cni import x` yields `cni.x`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def plugin_modules() -> list[str]:
    """`cni.plugin` and every `cni` module it reaches; raises when one imports beyond the stdlib."""
    root = _package_root()
    todo, seen = [ENTRY_MODULE], {"cni"}
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = root / f"{module.split('.', 1)[1]}.py"
        for name in sorted(_imports(path)):
            top = name.split(".")[0]
            if top == "cni":
                # `from cni.config import Environment` also yields `cni.config.Environment`: no file.
                if "." in name and (root / f"{name.split('.', 1)[1]}.py").is_file():
                    todo.append(name)
                continue
            if top == "__future__" or top in sys.stdlib_module_names:
                continue
            raise BundleError(
                f"{module} imports {name}, which is not in the standard library; the plugin file must "
                "run on a node with nothing but python3"
            )
    return sorted(seen)


def bytecode(source: str, filename: str) -> bytes:
    """A `.pyc` as `py_compile` writes it (hash-based, unchecked: the zip never changes under it),
    except that `from __future__ import …` is applied when compiling instead of importing the
    `__future__` module on every call; the code is otherwise the same."""
    tree = ast.parse(source, filename)
    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            flags |= sum(getattr(__future__, alias.name).compiler_flag for alias in node.names)
    tree.body = [node for node in tree.body
                 if not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    code = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
    unchecked_hash = (0b01).to_bytes(4, "little")  # PEP 552 flags: hash-based, do not check the source
    return (importlib.util.MAGIC_NUMBER + unchecked_hash + importlib.util.source_hash(source.encode())
            + marshal.dumps(code))


def interpreter(python: str = DEFAULT_PYTHON) -> str:
    """The `#!` line (without `#!`) that runs the plugin file with the node's `python`."""
    if not python.startswith("/") or any(char.isspace() for char in python):
        raise BundleError(f"--python {python!r} must be an absolute path without spaces, "
                          f"e.g. {DEFAULT_PYTHON}")
    line = f"{python} -ISc{ENTRY_COMMAND}"
    if len(line) + 2 > MAX_FIRST_LINE:
        raise BundleError(f"--python {python!r} makes the file's first line longer than {MAX_FIRST_LINE} "
                          "characters, which older kernels cut; use a shorter path or a symlink")
    return line


def build(target: Path, python: str = DEFAULT_PYTHON) -> list[str]:
    """Write the zipapp to `target` atomically (a running plugin is never half-replaced)."""
    first_line = interpreter(python)
    modules = plugin_modules()
    root = _package_root()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        package = Path(staging) / "cni"
        package.mkdir()
        for module in modules:
            relative = "__init__.py" if module == "cni" else f"{module.split('.', 1)[1]}.py"
            source = (root / relative).read_text()
            (package / relative).write_text(source)
            # Bytecode beside the source: zipimport cannot cache, so without it every CNI call
            # compiles the plugin anew. A node python of another version ignores it and compiles.
            (package / relative).with_suffix(".pyc").write_bytes(bytecode(source, f"cni/{relative}"))
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        try:
            zipapp.create_archive(staging, tmp_name, interpreter=first_line, main=ENTRY_POINT)
            os.chmod(tmp_name, 0o755)
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
    return modules


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "install-cni",
        help="write the kube-ovn CNI plugin into a CNI bin folder as one self-contained file",
        description=(
            "Writes the `kube-ovn` CNI plugin as a zipapp that needs only python3 on the node "
            "(standard library only; checked), run by --python. The node DaemonSet's init container "
            "runs it with --cni-bin-dir pointing at the host's /opt/cni/bin."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cni-bin-dir", type=Path, default=Path("/opt/cni/bin"),
                       help="folder to write `kube-ovn` into (default /opt/cni/bin)")
    where.add_argument("--output", type=Path, help="exact file to write instead")
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help=f"the node's python3, by absolute path, that runs the plugin "
                             f"(default {DEFAULT_PYTHON})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = args.output or args.cni_bin_dir / PLUGIN_NAME
    if target.is_dir():
        print(f"error: {target} is a folder; give --output a file path or use --cni-bin-dir", file=sys.stderr)
        return 2
    try:
        modules = build(target, args.python)
    except (BundleError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {target} ({target.stat().st_size} bytes: {', '.join(modules)})")
    return 0
