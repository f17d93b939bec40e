"""Module-level `__getattr__` that imports a package's public names on first use (PEP 562).

Standard library only: `commrouter/__init__.py` uses it, and a cell program imports
`commrouter.program` without the router's dependencies.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A `__getattr__` for `package`: `exports` maps each public name to its module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)  # imported once; later reads are plain
        return value

    return __getattr__
