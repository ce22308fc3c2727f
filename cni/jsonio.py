"""JSON for the plugin without importing `json`: the C accelerator `_json` that `json` itself uses.

`import json` pulls in `re` and `enum` (to compile its whitespace patterns), which made up the
biggest share of a CNI call's start-up (benchmarks/cni.py). The C scanner and encoder do the same
parsing and escaping; only whitespace handling and the result checks are here. Where `_json`
is missing or its constructor signatures differ (another Python), the `json` module is used.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as in cni.config: no `typing` import at run time
if TYPE_CHECKING:
    from collections.abc import Callable

_WHITESPACE = " \t\n\r"


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


class _ScannerContext:
    """The attributes `_json.make_scanner` reads from a `json.JSONDecoder`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constants)
    memo: dict[str, str] = {}


def _no_default(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_scan: Callable[[str, int], tuple[object, int]] | None
_encode: Callable[[object, int], list[str]] | None
try:
    import _json

    _scan = _json.make_scanner(_ScannerContext())
    _encode = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None, ": ", ", ",
                                 False, False, False)
except (ImportError, TypeError, AttributeError):  # pragma: no cover - other Pythons
    _scan = _encode = None


def loads(data: bytes | str) -> object:
    """Like `json.loads`; raises ValueError for anything that is not exactly one JSON value."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if _scan is None:
        import json

        return json.loads(text, parse_constant=_no_constants)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"expecting a JSON value at character {stop.value}") from None
    except Exception:
        # The C scanner raises json.decoder.JSONDecodeError only once that module is loaded
        # (otherwise a SystemError); let `json` parse the bad input for its precise message.
        import json

        return json.loads(text, parse_constant=_no_constants)
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def dumps(value: object) -> str:
    """Like `json.dumps(value)` (ASCII, no NaN): results and errors on stdout, requests to the daemon."""
    if _encode is None:
        import json

        return json.dumps(value, allow_nan=False)
    return "".join(_encode(value, 0))
