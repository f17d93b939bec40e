"""MIME bundles for `display` / `update_display`: `display(html("<b>hi</b>"))`.

Each helper returns a `{mime type: data}` dict; merge several to give the front-end a choice,
e.g. `display({**svg(markup), **text("a chart")})`.
"""

from __future__ import annotations

import base64
import uuid


def html(markup: str) -> dict[str, str]:
    return {"text/html": markup}


def markdown(source: str) -> dict[str, str]:
    return {"text/markdown": source}


def png(data: bytes) -> dict[str, str]:
    """PNG image bytes, base64-encoded as Jupyter expects."""
    return {"image/png": base64.b64encode(bytes(data)).decode("ascii")}


def svg(markup: str) -> dict[str, str]:
    return {"image/svg+xml": markup}


def text(plain: str) -> dict[str, str]:
    return {"text/plain": plain}


def new_display_id() -> str:
    """A fresh display id, to display something now and update it later."""
    return f"commrouter-{uuid.uuid4().hex}"
