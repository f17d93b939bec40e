"""The browser side: the install script the kernel publishes as a transient display."""

from __future__ import annotations

from commrouter.frontend.install import INSTALL_MARKER, page_config, render_install_html

__all__ = ["INSTALL_MARKER", "page_config", "render_install_html"]
