"""Benchmarks: commrouter against ipykernel's comms and against a no-framework floor.

Run with `make bench` (or `.venv/bin/python -m benchmarks --help`). Not an installed package:
it runs from the repository root. See docs/performance.md for what it measures and a recorded
run.
"""

from __future__ import annotations
