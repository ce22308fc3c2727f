"""cni.jsonio agrees with the json module on everything the plugin reads and writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cni import jsonio

REPO = Path(__file__).resolve().parents[3]
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_round_trip_and_same_text_as_json(value: object) -> None:
    text = jsonio.dumps(value)
    assert text == json.dumps(value)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(f" \n{text}\t\r\n".encode()) == json.loads(text)


@pytest.mark.parametrize("bad", ["", "   ", "{", "[1,]", "{} x", "NaN", "{'a': 1}", "{not json", '"open'])
def test_invalid_json_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(bad)


def test_invalid_json_is_a_value_error_in_a_fresh_interpreter_without_json_loaded() -> None:
    code = ("import sys; from cni import jsonio\n"
            "try:\n    jsonio.loads('{not json')\nexcept ValueError as e:\n    print(type(e).__name__)\n"
            "print('json' in sys.modules)")
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.stdout.split() == ["JSONDecodeError", "True"], done.stderr


def test_plugin_path_never_imports_json_or_re() -> None:
    code = ("import sys; from cni import plugin, client, config\n"
            "print(sorted(m for m in ('json', 're', 'enum', 'socket', 'typing', 'dataclasses') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("value", [float("nan"), object(), {1j: 1}])
def test_unencodable_values_raise(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        jsonio.dumps(value)
