"""The browser side: the install script the kernel publishes as a transient display."""

from __future__ import annotations

from commrouter.frontend.install import (
    INSTALL_MARKER,
    render_install_html,
    render_widget_bootstrap,
)

__all__ = ["INSTALL_MARKER", "render_install_html", "render_widget_bootstrap"]
