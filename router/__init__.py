"""The router part: the message vocabulary, errors, JSON checks at the edge, the address table."""

from __future__ import annotations
