"""Renders the install script once per router: the hub (`commrouter.js`) and a call that
installs the link for this kernel, with the comm target and the debug switch; and the link
widget's module (the hub and `widget.js`) for the widget transport."""

from __future__ import annotations

import html
import json
from importlib import resources

from commrouter.config import Settings

INSTALL_MARKER = "data-commrouter-install"


def _read(name: str) -> str:
    return resources.files("commrouter.frontend").joinpath(name).read_text("utf-8")


def hub_script() -> str:
    """The source of `commrouter.js` (defines `globalThis.commrouter`)."""
    return _read("commrouter.js")


def widget_module() -> str:
    """The link widget's ES module (its `_esm`): the hub, then `widget.js` (anywidget's
    `initialize`/`render`, the channel over the widget model's custom messages)."""
    return hub_script() + "\n" + _read("widget.js")


def page_config(kernel_id: str, settings: Settings) -> dict[str, object]:
    """The hub's config for `kernel_id`: what `commrouter.install` and `connect` take."""
    return {
        "kernel_id": kernel_id,
        "target_name": settings.connection.target_name,
        "debug": settings.frontend.debug,
        "open_ack_timeout": settings.frontend.open_ack_timeout,
        "queue_limit": settings.frontend.queue_limit,
    }


def _safe_hub_script() -> str:
    script = hub_script()
    if "</script" in script.lower():
        raise ValueError("commrouter.js must not contain '</script'")
    return script


def render_install_html(kernel_id: str, settings: Settings) -> str:
    """The HTML published (transiently) to install the front-end for `kernel_id`."""
    config = page_config(kernel_id, settings)
    script = _safe_hub_script()
    values = {
        "@@KERNEL_ID@@": html.escape(kernel_id, quote=True),
        "@@TARGET_NAME@@": html.escape(settings.connection.target_name),
        "@@CONFIG_JSON@@": json.dumps(config).replace("</", "<\\/"),
        "@@SCRIPT@@": script,
    }
    text = _read("install.html")
    for placeholder in ("@@KERNEL_ID@@", "@@TARGET_NAME@@", "@@CONFIG_JSON@@", "@@SCRIPT@@"):
        text = text.replace(placeholder, values[placeholder])  # the script last: never rescanned
    return text
