"""Hypothesis strategies for the fuzzing suite: JSON values with what JSON cannot hold mixed
in, raw JSON text, random and structured garbage, and the budget of each run.

The budget: `COMMROUTER_FUZZ_EXAMPLES` examples per property (default 60, which keeps the
whole suite to a few seconds inside `make test`); set it higher for a long run, e.g.
`COMMROUTER_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz_*.py`.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from commrouter.transports.json_edge import MAX_DEPTH

EXAMPLES = int(os.environ.get("COMMROUTER_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# live properties (real actors, a real program, a real kernel) do more per example
LIVE = settings(FUZZ, max_examples=max(10, EXAMPLES // 3))

LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
text = st.text(alphabet=st.characters() | LONE_SURROGATES, max_size=12)
clean_text = st.text(max_size=12)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
clean_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text
)


def nested(depth: int) -> Any:
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# Values as a program or a page may produce them: JSON data, with NaN, infinities, lone
# surrogates and deep nesting mixed in.
_shallow = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
_deep = st.integers(min_value=MAX_DEPTH - 2, max_value=600).map(nested)
values = st.integers(0, 9).flatmap(lambda n: _deep if n == 9 else _shallow)  # deep: 1 in 10

# JSON data only (what a well-behaved peer sends).
clean_values = st.recursive(
    clean_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=4),
    max_leaves=12,
)


def to_json(value: Any, ascii_only: bool) -> bytes:
    """Python's json.dumps, which writes NaN and Infinity; lone surrogates become `\\ud800`
    escapes (ascii_only) or bytes that are not UTF-8."""
    return json.dumps(value, allow_nan=True, ensure_ascii=ascii_only).encode(
        "utf-8", "surrogatepass"
    )


def _mutate(data: bytes, where: int, how: int) -> bytes:
    if not data:
        return data
    i = where % len(data)
    if how == 0:
        return data[:i]  # truncated
    if how == 1:
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]  # one byte flipped
    return data[:i] + data[i:] * 2  # a piece repeated


json_text = (
    st.builds(to_json, values, st.booleans())
    | st.builds(
        _mutate, st.builds(to_json, values, st.booleans()), st.integers(0), st.integers(0, 2)
    )
    | st.binary(max_size=64)
    | st.integers(0, 4000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(0, 4000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
    | st.sampled_from([b"NaN", b"-Infinity", b'{"x": Infinity}', b'"\\ud800"', b"1e999", b""])
)


def strict(value: Any, depth: int = 0) -> bool:
    """The reference: is a decoded value JSON data within the depth limit?"""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return depth < MAX_DEPTH and all(strict(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return depth < MAX_DEPTH and all(
            strict(k, depth + 1) and strict(v, depth + 1) for k, v in value.items()
        )
    return True
