"""commrouter settings: packaged defaults, an optional user TOML file, then the environment."""

from __future__ import annotations

from .settings import (
    ActorSettings,
    ConnectionSettings,
    FlowSettings,
    FrontendSettings,
    HeartbeatSettings,
    LogSettings,
    ProgramSettings,
    Settings,
    SettingsError,
    load_settings,
)

__all__ = [
    "ActorSettings",
    "ConnectionSettings",
    "FlowSettings",
    "FrontendSettings",
    "HeartbeatSettings",
    "LogSettings",
    "ProgramSettings",
    "Settings",
    "SettingsError",
    "load_settings",
]
