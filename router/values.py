"""JSON checks at the edge: values are refused before they enter the actor system."""

from __future__ import annotations

import json
import math
from typing import Any

from commrouter.router.errors import InvalidAddress, ValueNotJSON

_encode = json.JSONEncoder(allow_nan=False, check_circular=True, ensure_ascii=False).encode
_PLAIN = (str, int, float, bool, type(None))


def check_address(address: Any, *, allow_private: bool = False) -> str:
    """Return `address` if it is a usable address, else raise InvalidAddress."""
    if not isinstance(address, str) or not address:
        raise InvalidAddress(f"address must be a non-empty string, got {address!r}")
    if address[0] == "#" and not allow_private:
        raise InvalidAddress(f"address {address!r} is private to the protocol (starts with '#')")
    return address


def check_json(address: str, value: Any) -> Any:
    """Return `value` if it is JSON data (what json.dumps accepts, finite numbers, string keys).

    Raises ValueNotJSON naming the address and the offending type.
    """
    kind = type(value)
    if (kind is str and value.isascii()) or kind is int or kind is bool or value is None:
        return value
    if kind is float and math.isfinite(value):
        return value
    try:
        _encode(value).encode("utf-8")  # a lone surrogate cannot be UTF-8 on the wire
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueNotJSON(address, _offending_type(value), str(error)) from None
    return value


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _offending_type(value: Any) -> str:
    """Name the first value inside `value` that JSON cannot hold."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, dict | list | tuple):
            if id(item) in seen:
                return f"{type(item).__name__} (circular)"
            seen.add(id(item))
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, _PLAIN):
                    return f"{type(key).__name__} (as a mapping key)"
                if isinstance(key, str) and not _utf8(key):
                    return "str (with a lone surrogate, as a mapping key)"
                stack.append(sub)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "float (NaN or infinity)"
        elif isinstance(item, str) and not _utf8(item):
            return "str (with a lone surrogate)"
        elif not isinstance(item, _PLAIN):
            return type(item).__name__
    return type(value).__name__
