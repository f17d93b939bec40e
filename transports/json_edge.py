"""Strict JSON decoding for the edges: the Jupyter wire and the program pipes.

Python's `json.loads` accepts more than JSON: `NaN`, `Infinity`, `-Infinity` and lone UTF-16
surrogates (`"\\ud800"`), and it nests as deep as the interpreter's recursion limit (deeper
raises `RecursionError`, which is not a `ValueError`). Any of these, let in, breaks something
later: the reply that echoes a parent header cannot be encoded, a value cannot be written to a
program, a log line cannot be rendered. `loads` refuses them all, once, where the bytes arrive:

- constants: `parse_constant` raises, inside the C decoder, at no cost to ordinary input; a
  number too large for a float (`1e999`, which Python reads as infinity) is refused by
  `parse_float` (called only for numbers with a fraction or an exponent: about 0.07 µs each);
- depth: a fast upper bound (`count("[") + count("{")`) settles almost every message; only one
  with more brackets than the limit is scanned, at C speed (`nesting_within`);
- lone surrogates: only text holding a `\\uD...` escape is walked (every other string is valid
  UTF-8 by construction: it came from UTF-8 bytes).

Everything past an edge can therefore assume JSON data that re-encodes (`allow_nan=False`,
UTF-8) without error.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # arrays and objects nested deeper than this are refused

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


class NotJSON(ValueError):
    """Input that is not strict JSON data; `str()` says why, in a few words."""


def _refuse_constant(name: str) -> Any:
    raise NotJSON(f"{name} is not JSON data")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 is valid JSON text but overflows to infinity
        raise NotJSON(f"the number {literal[:40]} is out of range")
    return value


_decode = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float).decode


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Decode strict JSON (UTF-8 when bytes) or raise NotJSON with the reason."""
    if isinstance(data, str):
        try:
            text, raw = data, data.encode("utf-8")
        except UnicodeEncodeError:
            raise NotJSON("a string holds a lone UTF-16 surrogate (not Unicode text)") from None
    else:
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NotJSON(f"not UTF-8: {error.reason} at byte {error.start}") from None
    if raw.count(b"[") + raw.count(b"{") > max_depth and not nesting_within(raw, max_depth):
        raise NotJSON(f"nested deeper than the limit of {max_depth} (or unbalanced)")
    try:
        obj = _decode(text)
    except NotJSON:
        raise
    except (ValueError, RecursionError) as error:
        raise NotJSON(str(error)[:200]) from None
    if ("\\ud" in text or "\\uD" in text) and has_lone_surrogate(obj):
        raise NotJSON("a string holds a lone UTF-16 surrogate (not Unicode text)")
    return obj


def nesting_within(raw: bytes, limit: int) -> bool:
    """True if the arrays and objects of JSON text `raw` nest at most `limit` deep (brackets
    inside strings do not count). All at C speed: drop escapes, then strings (every other
    piece between quotes), keep only brackets, make them all square, and remove the innermost
    pairs (`[]`) once per level."""
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    brackets = b"".join(raw.split(b'"')[::2]).translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return True
        brackets = brackets.replace(b"[]", b"")
    return not brackets


def has_lone_surrogate(obj: Any) -> bool:
    """True if any string in decoded JSON `obj` (keys included) is not encodable as UTF-8."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
