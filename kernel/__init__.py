"""The reference kernel: a Jupyter kernel that hosts commrouter through its public facade."""

from __future__ import annotations
