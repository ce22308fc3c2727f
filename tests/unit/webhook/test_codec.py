"""webhook.codec: standard JSON in and out, including what orjson alone would refuse."""

from __future__ import annotations

import json

import pytest

from webhook import codec


def test_round_trip_is_standard_compact_json():
    value = {"a": [1, 2.5, None, True], "ü": "ß", "nested": {"x": ""}}
    assert codec.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert codec.loads(codec.dumps(value)) == value
    assert codec.loads(codec.dumps_text(value)) == value


def test_integers_beyond_64_bits_and_non_string_keys_still_encode():
    big = {"cidrBlock": -(2**63) - 1, 1: "one"}
    assert json.loads(codec.dumps(big)) == {"cidrBlock": -(2**63) - 1, "1": "one"}
    assert json.loads(codec.dumps_text({"when": object.__new__(object), "n": 2**70}))["n"] == 2**70


def test_text_writes_unknown_values_as_their_str():
    class Name:
        def __str__(self) -> str:
            return "net1"

    assert json.loads(codec.dumps_text({"interface": Name()})) == {"interface": "net1"}


def test_invalid_json_is_a_value_error():
    with pytest.raises(ValueError):
        codec.loads(b"{not json")
