"""Typed, validated runtime settings for commrouter.

Settings are layered; a later layer wins over an earlier one:

1. the packaged ``defaults.toml`` (the single source of default values),
2. a user TOML file: the ``user_file`` argument of :func:`load_settings`, else the file
   named by ``$COMMROUTER_CONFIG``,
3. environment variables ``COMMROUTER_<SECTION>_<KEY>`` (e.g. ``COMMROUTER_HEARTBEAT_TIMEOUT``).

Every value is checked as it is read, so a bad value is reported together with the layer
(file path or environment variable) it came from, as a :class:`SettingsError`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar, Final

__all__ = [
    "CONFIG_ENV_VAR",
    "ENV_ALIASES",
    "ENV_PREFIX",
    "KERNEL_PATH_FIELDS",
    "LOG_LEVELS",
    "TRANSPORTS",
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

ENV_PREFIX: Final = "COMMROUTER_"
CONFIG_ENV_VAR: Final = "COMMROUTER_CONFIG"
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
TRANSPORTS: Final = ("auto", "widget", "script")  # connection.transport (docs/frontend.md)
KERNEL_PATH_FIELDS: Final = ("connection_dir", "kernel_id")

#: Short environment variables for settings users reach for by name: alias -> (section, key).
ENV_ALIASES: Final = {"COMMROUTER_HEADLESS": ("connection", "headless")}

_DEFAULTS_SOURCE: Final = "package defaults commrouter.config/defaults.toml"


class SettingsError(ValueError):
    """A setting is unknown, malformed or out of range; the message names key, value and source."""


# Kinds of setting: how a value is checked and how an environment string is parsed.
_SECONDS: Final = "seconds"  # float > 0, finite
_FACTOR: Final = "factor"  # float > 0, finite (a multiplier, not a duration)
_COUNT: Final = "count"  # int >= 1, bool excluded
_FLAG: Final = "flag"  # bool
_TEXT: Final = "text"  # any str
_NAME: Final = "name"  # non-empty str
_LEVEL: Final = "level"  # one of LOG_LEVELS, case-insensitive, stored lower-case
_TRANSPORT: Final = "transport"  # one of TRANSPORTS, case-insensitive, stored lower-case
_KERNEL_PATH: Final = "kernel path"  # str; its {placeholders} among KERNEL_PATH_FIELDS

_EXPECTED: Final = {
    _SECONDS: "a number of seconds > 0",
    _FACTOR: "a number > 0",
    _COUNT: "a whole number >= 1",
    _FLAG: "a boolean (true or false)",
    _TEXT: "a string",
    _NAME: "a non-empty string",
    _LEVEL: "one of " + ", ".join(LOG_LEVELS),
    _TRANSPORT: "one of " + ", ".join(TRANSPORTS),
    _KERNEL_PATH: "a path whose {placeholders} are among "
    + ", ".join("{" + name + "}" for name in KERNEL_PATH_FIELDS),
}
_ENV_FLAG_EXPECTED: Final = "a boolean (true/false, 1/0, yes/no, on/off)"
_ENV_BOOLS: Final = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}
_ENV_INT: Final = re.compile(r"[+-]?[0-9]+")
_INVALID: Final = object()


def _setting(kind: str, constructed: Any = dataclasses.MISSING) -> Any:
    """Declare a dataclass field of the given kind. Defaults live in the TOML; `constructed` is
    only for a field added later, so that constructing its section by hand keeps working."""
    return field(default=constructed, metadata={"kind": kind})


def _error(section: str, key: str, value: object, source: str, expected: str) -> SettingsError:
    """Build the uniform ``section.key = value (from source): expected ...`` error."""
    return SettingsError(f"{section}.{key} = {value!r} (from {source}): expected {expected}")


def _normalize(kind: str, value: object) -> object:
    """Return ``value`` checked and normalized for ``kind``, or ``_INVALID``."""
    if kind in (_SECONDS, _FACTOR):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _INVALID
        try:
            seconds = float(value)
        except OverflowError:
            return _INVALID
        return seconds if math.isfinite(seconds) and seconds > 0 else _INVALID
    if kind == _COUNT:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return value if ok else _INVALID
    if kind == _FLAG:
        return value if isinstance(value, bool) else _INVALID
    if kind == _TEXT:
        return value if isinstance(value, str) else _INVALID
    if kind == _NAME:
        return value if isinstance(value, str) and value.strip() else _INVALID
    if kind == _LEVEL:
        ok = isinstance(value, str) and value.lower() in LOG_LEVELS
        return value.lower() if ok and isinstance(value, str) else _INVALID
    if kind == _TRANSPORT:
        ok = isinstance(value, str) and value.lower() in TRANSPORTS
        return value.lower() if ok and isinstance(value, str) else _INVALID
    if kind == _KERNEL_PATH:
        return value if isinstance(value, str) and _plain_placeholders(value) else _INVALID
    raise AssertionError(f"unknown setting kind {kind!r}")


def _plain_placeholders(text: str) -> bool:
    """True if every `{...}` in `text` is a bare name from KERNEL_PATH_FIELDS."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError:  # an unmatched brace
        return False
    return all(
        name is None or (name in KERNEL_PATH_FIELDS and not spec and conversion is None)
        for _, name, spec, conversion in parts
    )


def _parse_env(kind: str, text: str) -> object:
    """Parse an environment string into the Python type ``kind`` expects, or ``_INVALID``."""
    if kind in (_TEXT, _NAME, _KERNEL_PATH):
        return text
    word = text.strip()
    if kind in (_LEVEL, _TRANSPORT):
        return word
    if kind == _FLAG:
        return _ENV_BOOLS.get(word.lower(), _INVALID)
    if kind == _COUNT:
        return int(word) if _ENV_INT.fullmatch(word) else _INVALID
    try:
        return float(word)
    except ValueError:
        return _INVALID


class _Section:
    """Base of the section dataclasses: validates and normalizes fields on construction."""

    __slots__ = ()
    SECTION: ClassVar[str]

    def __post_init__(self) -> None:
        for name, kind in _kinds(type(self)).items():
            raw = getattr(self, name)
            value = _normalize(kind, raw)
            if value is _INVALID:
                source = f"{type(self).__name__}(...)"
                raise _error(self.SECTION, name, raw, source, _EXPECTED[kind])
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class HeartbeatSettings(_Section):
    """Liveness probing of the browser front-end."""

    SECTION: ClassVar[str] = "heartbeat"
    timeout: float = _setting(_SECONDS)
    request_threshold: float = _setting(_SECONDS)
    rtt_multiplier: float = _setting(_FACTOR, constructed=3.0)
    timeout_ceiling: float = _setting(_SECONDS, constructed=2.5)
    dead_after: float = _setting(_SECONDS, constructed=3.0)


@dataclass(frozen=True, slots=True)
class ConnectionSettings(_Section):
    """The Jupyter comm between kernel and front-end."""

    SECTION: ClassVar[str] = "connection"
    target_name: str = _setting(_NAME)
    wait_for_connection_timeout: float = _setting(_SECONDS)
    replaced_grace: float = _setting(_SECONDS, constructed=2.0)
    queue_limit: int = _setting(_COUNT, constructed=100_000)
    queue_max_age: float = _setting(_SECONDS, constructed=30.0)
    headless: bool = _setting(_FLAG, constructed=False)
    headless_retry: float = _setting(_SECONDS, constructed=30.0)
    transport: str = _setting(_TRANSPORT, constructed="auto")
    snapshot_limit: int = _setting(_COUNT, constructed=1000)


@dataclass(frozen=True, slots=True)
class FlowSettings(_Section):
    """Flow control toward the page: the window of unacknowledged values, the message rate,
    and when unacknowledged values are sent again."""

    SECTION: ClassVar[str] = "flow"
    window: int = _setting(_COUNT, constructed=128)
    max_messages_per_second: int = _setting(_COUNT, constructed=400)
    ack_timeout: float = _setting(_SECONDS, constructed=1.0)
    ack_timeout_ceiling: float = _setting(_SECONDS, constructed=8.0)
    drain_batching: bool = _setting(_FLAG, constructed=True)


@dataclass(frozen=True, slots=True)
class FrontendSettings(_Section):
    """Values rendered into the browser-side install script."""

    SECTION: ClassVar[str] = "frontend"
    open_ack_timeout: float = _setting(_SECONDS)
    debug: bool = _setting(_FLAG)
    queue_limit: int = _setting(_COUNT, constructed=10_000)


@dataclass(frozen=True, slots=True)
class ProgramSettings(_Section):
    """The pipes and queue between the router and the cell program."""

    SECTION: ClassVar[str] = "program"
    outbox_limit: int = _setting(_COUNT)
    max_frame_bytes: int = _setting(_COUNT)
    read_timeout: float = _setting(_SECONDS)
    inflight_limit: int = _setting(_COUNT)
    drain_timeout: float = _setting(_SECONDS)
    output_messages_per_second: int = _setting(_COUNT, constructed=10)
    display_messages_per_second: int = _setting(_COUNT, constructed=50)
    sync_timeout: float = _setting(_SECONDS, constructed=60.0)
    direct_sends: bool = _setting(_FLAG, constructed=False)


@dataclass(frozen=True, slots=True)
class ActorSettings(_Section):
    """Timeouts and restart policy of the actor system."""

    SECTION: ClassVar[str] = "actors"
    ask_timeout: float = _setting(_SECONDS)
    stop_timeout: float = _setting(_SECONDS)
    restart_limit: int = _setting(_COUNT)
    restart_window: float = _setting(_SECONDS)
    inbox_limit: int = _setting(_COUNT)


@dataclass(frozen=True, slots=True)
class LogSettings(_Section):
    """Logging output: level, optional JSON-lines file, console switch, and where the
    reference kernel writes its log by default."""

    SECTION: ClassVar[str] = "log"
    level: str = _setting(_LEVEL)
    file: str = _setting(_TEXT)
    console: bool = _setting(_FLAG)
    kernel_file: str = _setting(_KERNEL_PATH, constructed="")
    refusals_per_second: int = _setting(_COUNT, constructed=20)


_SECTIONS: Final[dict[str, type[_Section]]] = {
    cls.SECTION: cls
    for cls in (
        HeartbeatSettings,
        ConnectionSettings,
        FlowSettings,
        FrontendSettings,
        ProgramSettings,
        ActorSettings,
        LogSettings,
    )
}


def _kinds(cls: type[_Section]) -> dict[str, str]:
    """Map each field name of a section class to its kind."""
    return {f.name: f.metadata["kind"] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Settings:
    """All commrouter settings, one attribute per section."""

    heartbeat: HeartbeatSettings
    connection: ConnectionSettings
    flow: FlowSettings
    frontend: FrontendSettings
    program: ProgramSettings
    actors: ActorSettings
    log: LogSettings

    @classmethod
    def defaults(cls) -> Settings:
        """Return the packaged defaults, ignoring user files and the environment."""
        return load_settings(environ={})


_Values = dict[str, dict[str, object]]


def _read_toml(path: str, label: str) -> dict[str, Any]:
    """Parse the TOML file at ``path``; errors name ``label``."""
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SettingsError(f"cannot read settings file {label}: {reason}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"invalid TOML in settings file {label}: {exc}") from exc


def _read_defaults() -> dict[str, Any]:
    """Parse the packaged ``defaults.toml`` via importlib.resources (works from a wheel)."""
    package = __package__ or "commrouter.config"
    text = resources.files(package).joinpath("defaults.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _merge_toml(values: _Values, data: Mapping[str, Any], source: str) -> None:
    """Check the tables of one TOML document and merge them into ``values``."""
    for section, table in data.items():
        cls = _SECTIONS.get(section)
        if cls is None:
            known = ", ".join(_SECTIONS)
            raise SettingsError(
                f"unknown section [{section}] (from {source}): expected one of {known}"
            )
        if not isinstance(table, dict):
            raise SettingsError(
                f"{section} = {table!r} (from {source}): expected a [{section}] table"
            )
        kinds = _kinds(cls)
        for key, raw in table.items():
            kind = kinds.get(key)
            if kind is None:
                known = ", ".join(kinds)
                raise _error(section, key, raw, source, f"a known key of [{section}]: {known}")
            value = _normalize(kind, raw)
            if value is _INVALID:
                raise _error(section, key, raw, source, _EXPECTED[kind])
            values[section][key] = value


def _env_section(name: str) -> str | None:
    """Return the section an environment variable name addresses, if any."""
    for section in _SECTIONS:
        if name.startswith(f"{ENV_PREFIX}{section.upper()}_"):
            return section
    return None


def _merge_env(values: _Values, environ: Mapping[str, str]) -> None:
    """Merge ``COMMROUTER_<SECTION>_<KEY>`` variables (and the short aliases in
    ``ENV_ALIASES``, which the long form overrides) into ``values``."""
    names = [n for n in ENV_ALIASES if n in environ]
    names += [n for n in sorted(environ) if n not in ENV_ALIASES]
    for name in names:
        alias = ENV_ALIASES.get(name)
        section = alias[0] if alias else _env_section(name)
        if section is None:
            continue
        prefix = f"{ENV_PREFIX}{section.upper()}_"
        key = alias[1] if alias else name[len(prefix) :].lower()
        text = environ[name]
        kinds = _kinds(_SECTIONS[section])
        kind = kinds.get(key)
        if kind is None or (alias is None and name != prefix + key.upper()):
            known = ", ".join(prefix + k.upper() for k in kinds)
            raise _error(section, key, text, name, f"a known variable: {known}")
        value = _normalize(kind, _parse_env(kind, text))
        if value is _INVALID:
            expected = _ENV_FLAG_EXPECTED if kind == _FLAG else _EXPECTED[kind]
            raise _error(section, key, text, name, expected)
        values[section][key] = value


def _build(values: _Values) -> Settings:
    """Construct :class:`Settings` from merged, already-checked values."""
    sections: dict[str, _Section] = {}
    for section, cls in _SECTIONS.items():
        missing = [key for key in _kinds(cls) if key not in values[section]]
        if missing:
            raise SettingsError(
                f"{section}.{missing[0]} is not set (from {_DEFAULTS_SOURCE}): "
                "expected the packaged defaults to define every setting"
            )
        sections[section] = cls(**values[section])
    return Settings(**sections)  # type: ignore[arg-type]


def load_settings(
    user_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings: packaged defaults, then a user TOML file, then the environment.

    ``user_file`` is read if given; otherwise the file named by ``$COMMROUTER_CONFIG`` is
    read if that variable is set and non-empty. ``environ`` defaults to ``os.environ``.
    Raises :class:`SettingsError` naming the key, value and source of the first bad setting.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    values: _Values = {section: {} for section in _SECTIONS}
    _merge_toml(values, _read_defaults(), _DEFAULTS_SOURCE)
    if user_file is not None:
        path = os.fspath(user_file)
        _merge_toml(values, _read_toml(path, path), path)
    elif env.get(CONFIG_ENV_VAR):
        path = env[CONFIG_ENV_VAR]
        label = f"{path} (named by {CONFIG_ENV_VAR})"
        _merge_toml(values, _read_toml(path, label), label)
    _merge_env(values, env)
    return _build(values)
