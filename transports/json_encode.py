"""Compact JSON encoding for the Jupyter wire, with orjson when it is importable.

`dumps(obj)` returns the same bytes whichever encoder runs: the standard library's
`json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)` in UTF-8, with
datetimes as `isoformat()` and bytes refused. orjson (an optional extra: `pip install
commrouter[fast]`) writes the same text for JSON data (dicts with str keys, lists, tuples, str,
int, float, bool, None) except in three places, each of which is detected on its output and
sent to the standard library instead, so that the bytes (and the HMAC over them) never differ:

- a float below 1e-4 in magnitude: orjson writes `0.0000123` or `1e-7`, Python `1.23e-05` and
  `1e-07` (any such output holds `0.0000` or `e-`);
- NaN and infinities: orjson writes `null`, the standard library refuses them (any output
  holding `null` is encoded again);
- anything orjson refuses (an integer beyond 64 bits, a non-str key, a lone surrogate, a str,
  int, dict or list subclass, a datetime: passed through to a `default` that refuses): the
  standard library then encodes it, or raises its own error.

Values reach the encoder through the strict edges (`json_edge.loads`), so the re-encodings are
rare; a string holding `null` or `e-` costs one orjson pass more than the standard library.
Types that are not JSON data (an Enum, a UUID, a dataclass) are outside the contract: orjson
would encode some of them where the standard library refuses; nothing in commrouter publishes
them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

try:  # optional: the `fast` extra
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

ORJSON = orjson is not None


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray | memoryview):
        raise TypeError("bytes belong in buffers, not in JSON parts")
    raise TypeError(f"type {type(obj).__name__} is not JSON serializable")


_std_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
).encode


def dumps_stdlib(obj: Any) -> bytes:
    """The reference encoding (the standard library)."""
    return _std_encode(obj).encode("utf-8")


def _refuse(obj: Any) -> Any:
    raise TypeError  # hand the whole object to the standard library


if orjson is not None:
    _orjson_dumps = orjson.dumps
    _OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
    _OPTIONS |= orjson.OPT_PASSTHROUGH_DATACLASS

    def dumps_orjson(obj: Any) -> bytes:
        """orjson where its text is the standard library's, the standard library elsewhere."""
        try:
            out = _orjson_dumps(obj, default=_refuse, option=_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return dumps_stdlib(obj)
        if b"null" in out or b"e-" in out or b"0.0000" in out:
            return dumps_stdlib(obj)
        return out

    dumps: Callable[[Any], bytes] = dumps_orjson
else:  # pragma: no cover - depends on the environment
    dumps = dumps_stdlib
