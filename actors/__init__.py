"""The actors: Connection, Heartbeat, Subscriptions, ProgramExecutor, Router and the
Supervisor that starts, restarts and stops them. One actor per module."""

from __future__ import annotations
