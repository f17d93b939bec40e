"""Renders the install script: a template filled once per router with the kernel id, the comm
target and the debug switch."""

from __future__ import annotations

import html
import json
from importlib import resources

from commrouter.config import Settings

INSTALL_MARKER = "data-commrouter-install"


def render_install_html(kernel_id: str, settings: Settings) -> str:
    """The HTML published (transiently) to install the front-end for `kernel_id`."""
    template = resources.files("commrouter.frontend").joinpath("install.html").read_text("utf-8")
    config = {
        "kernel_id": kernel_id,
        "target_name": settings.connection.target_name,
        "debug": settings.frontend.debug,
        "open_ack_timeout": settings.frontend.open_ack_timeout,
    }
    # "</" must not appear inside the <script> element.
    config_json = json.dumps(config).replace("</", "<\\/")
    return template.format(
        kernel_id=html.escape(kernel_id, quote=True),
        target_name=html.escape(settings.connection.target_name),
        config_json=config_json,
    )
