"""Tests for commrouter.config: layering, parsing, validation and error messages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from commrouter.config import (
    ActorSettings,
    ConnectionSettings,
    FrontendSettings,
    HeartbeatSettings,
    LogSettings,
    ProgramSettings,
    Settings,
    SettingsError,
    load_settings,
)

SEED = {
    "heartbeat": {
        "timeout": 0.5,
        "request_threshold": 1.0,
        "rtt_multiplier": 3.0,
        "timeout_ceiling": 2.5,
        "dead_after": 3.0,
    },
    "connection": {
        "target_name": "commrouter",
        "wait_for_connection_timeout": 3.0,
        "replaced_grace": 2.0,
        "queue_limit": 100_000,
        "queue_max_age": 30.0,
        "headless": False,
        "headless_retry": 30.0,
        "transport": "auto",
        "snapshot_limit": 1000,
    },
    "flow": {
        "window": 128,
        "max_messages_per_second": 400,
        "ack_timeout": 1.0,
        "ack_timeout_ceiling": 8.0,
        "drain_batching": True,
    },
    "frontend": {"open_ack_timeout": 2.0, "debug": False, "queue_limit": 10_000},
    "program": {
        "outbox_limit": 1024,
        "max_frame_bytes": 1048576,
        "read_timeout": 5.0,
        "sync_timeout": 60.0,
        "inflight_limit": 256,
        "drain_timeout": 2.0,
        "output_messages_per_second": 10,
        "display_messages_per_second": 50,
        "direct_sends": False,
    },
    "actors": {
        "ask_timeout": 5.0,
        "stop_timeout": 5.0,
        "restart_limit": 5,
        "restart_window": 10.0,
        "inbox_limit": 10000,
    },
    "log": {
        "level": "info",
        "file": "",
        "console": True,
        "kernel_file": "{connection_dir}/commrouter-{kernel_id}.jsonl",
        "refusals_per_second": 20,
    },
}


def _write(tmp_path: Path, text: str, name: str = "user.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _as_dict(settings: Settings) -> dict[str, dict[str, object]]:
    return {
        f.name: dataclasses.asdict(getattr(settings, f.name)) for f in dataclasses.fields(settings)
    }


def _assert_error(exc: pytest.ExceptionInfo[SettingsError], *parts: str) -> None:
    message = str(exc.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# --- defaults and layering ------------------------------------------------------------------


def test_defaults_match_seed_values() -> None:
    assert _as_dict(Settings.defaults()) == SEED


def test_defaults_have_declared_types() -> None:
    settings = Settings.defaults()
    assert type(settings.heartbeat.timeout) is float
    assert type(settings.program.outbox_limit) is int
    assert type(settings.frontend.debug) is bool
    assert type(settings.log.level) is str


def test_load_without_file_or_env_gives_defaults() -> None:
    assert load_settings(environ={}) == Settings.defaults()


def test_the_short_headless_variable_sets_connection_headless() -> None:
    assert load_settings(environ={"COMMROUTER_HEADLESS": "1"}).connection.headless is True
    long_wins = {"COMMROUTER_HEADLESS": "1", "COMMROUTER_CONNECTION_HEADLESS": "no"}
    assert load_settings(environ=long_wins).connection.headless is False
    with pytest.raises(SettingsError, match="COMMROUTER_HEADLESS"):
        load_settings(environ={"COMMROUTER_HEADLESS": "maybe"})


def test_section_classes_are_the_attributes() -> None:
    settings = Settings.defaults()
    assert isinstance(settings.heartbeat, HeartbeatSettings)
    assert isinstance(settings.connection, ConnectionSettings)
    assert isinstance(settings.frontend, FrontendSettings)
    assert isinstance(settings.program, ProgramSettings)
    assert isinstance(settings.actors, ActorSettings)
    assert isinstance(settings.log, LogSettings)


def test_user_file_overrides_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[heartbeat]\ntimeout = 0.2\n[log]\nlevel = "DEBUG"\nfile = "x.jsonl"\n'
        "[program]\noutbox_limit = 8\n",
    )
    settings = load_settings(path, environ={})
    assert settings.heartbeat.timeout == 0.2
    assert settings.heartbeat.request_threshold == 1.0
    assert settings.log.level == "debug"
    assert settings.log.file == "x.jsonl"
    assert settings.program.outbox_limit == 8


def test_user_file_accepts_str_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "[actors]\nrestart_limit = 2\n")
    assert load_settings(str(path), environ={}).actors.restart_limit == 2


def test_int_accepted_for_float_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[connection]\nwait_for_connection_timeout = 7\n")
    value = load_settings(path, environ={}).connection.wait_for_connection_timeout
    assert value == 7.0
    assert type(value) is float


def test_env_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[heartbeat]\ntimeout = 0.2\nrequest_threshold = 3\n")
    settings = load_settings(path, environ={"COMMROUTER_HEARTBEAT_TIMEOUT": "0.1"})
    assert settings.heartbeat.timeout == 0.1
    assert settings.heartbeat.request_threshold == 3.0


def test_env_values_are_parsed_to_field_types() -> None:
    settings = load_settings(
        environ={
            "COMMROUTER_CONNECTION_WAIT_FOR_CONNECTION_TIMEOUT": "1",
            "COMMROUTER_CONNECTION_TARGET_NAME": "other",
            "COMMROUTER_LOG_CONSOLE": "false",
            "COMMROUTER_FRONTEND_DEBUG": "Yes",
            "COMMROUTER_PROGRAM_MAX_FRAME_BYTES": "4096",
            "COMMROUTER_LOG_LEVEL": "Warning",
            "COMMROUTER_LOG_FILE": "/tmp/log.jsonl",
        }
    )
    assert settings.connection.wait_for_connection_timeout == 1.0
    assert type(settings.connection.wait_for_connection_timeout) is float
    assert settings.connection.target_name == "other"
    assert settings.log.console is False
    assert settings.frontend.debug is True
    assert settings.program.max_frame_bytes == 4096
    assert settings.log.level == "warning"
    assert settings.log.file == "/tmp/log.jsonl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        ("on", True),
        ("OFF", False),
    ],
)
def test_env_bool_words(text: str, expected: bool) -> None:
    settings = load_settings(environ={"COMMROUTER_LOG_CONSOLE": text})
    assert settings.log.console is expected


def test_commrouter_config_env_is_honoured(tmp_path: Path) -> None:
    path = _write(tmp_path, "[actors]\nask_timeout = 1.5\n")
    settings = load_settings(environ={"COMMROUTER_CONFIG": str(path)})
    assert settings.actors.ask_timeout == 1.5


def test_user_file_argument_wins_over_commrouter_config(tmp_path: Path) -> None:
    named = _write(tmp_path, "[actors]\nask_timeout = 1.5\n", "named.toml")
    given = _write(tmp_path, "[actors]\nstop_timeout = 2.5\n", "given.toml")
    settings = load_settings(given, environ={"COMMROUTER_CONFIG": str(named)})
    assert settings.actors.stop_timeout == 2.5
    assert settings.actors.ask_timeout == 5.0


def test_unrelated_commrouter_vars_are_ignored() -> None:
    settings = load_settings(
        environ={
            "COMMROUTER_LINK_ADDRESS": "tcp://x",
            "COMMROUTER_SOMETHING": "1",
            "COMMROUTER_": "",
            "COMMROUTER_HEARTBEAT": "no trailing underscore",
            "HOME": "/root",
        }
    )
    assert settings == Settings.defaults()


# --- errors -----------------------------------------------------------------------------------


def test_negative_duration_in_env() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={"COMMROUTER_HEARTBEAT_TIMEOUT": "-1"})
    _assert_error(exc, "heartbeat.timeout", "'-1'", "COMMROUTER_HEARTBEAT_TIMEOUT", "> 0")


def test_negative_duration_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[actors]\nrestart_window = -2.5\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "actors.restart_window", "-2.5", str(path), "seconds > 0")


def test_zero_duration_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "[program]\nread_timeout = 0\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "program.read_timeout", "0", str(path))


def test_non_finite_duration_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "[program]\nread_timeout = inf\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "program.read_timeout", "inf", str(path))


def test_wrong_type_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[heartbeat]\ntimeout = "fast"\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "heartbeat.timeout", "'fast'", str(path), "number")


def test_float_for_int_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[program]\noutbox_limit = 10.0\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "program.outbox_limit", "10.0", str(path), "whole number")


def test_zero_limit_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[actors]\nrestart_limit = 0\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "actors.restart_limit", "0", str(path), ">= 1")


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[heartbeat]\ntimeout = true\n", "heartbeat.timeout"),
        ("[program]\nmax_frame_bytes = false\n", "program.max_frame_bytes"),
    ],
)
def test_bool_where_number_expected(tmp_path: Path, toml: str, key: str) -> None:
    path = _write(tmp_path, toml)
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    assert "True" in str(exc.value) or "False" in str(exc.value)
    _assert_error(exc, key, str(path))


def test_number_where_bool_expected(tmp_path: Path) -> None:
    path = _write(tmp_path, "[log]\nconsole = 1\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "log.console", "1", str(path), "boolean")


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        ("COMMROUTER_HEARTBEAT_TIMEOUT", "soon", "heartbeat.timeout"),
        ("COMMROUTER_HEARTBEAT_TIMEOUT", "", "heartbeat.timeout"),
        ("COMMROUTER_ACTORS_STOP_TIMEOUT", "nan", "actors.stop_timeout"),
        ("COMMROUTER_PROGRAM_OUTBOX_LIMIT", "12.5", "program.outbox_limit"),
        ("COMMROUTER_PROGRAM_OUTBOX_LIMIT", "lots", "program.outbox_limit"),
        ("COMMROUTER_PROGRAM_OUTBOX_LIMIT", "0", "program.outbox_limit"),
        ("COMMROUTER_LOG_CONSOLE", "maybe", "log.console"),
        ("COMMROUTER_CONNECTION_TARGET_NAME", "  ", "connection.target_name"),
    ],
)
def test_bad_env_strings(name: str, text: str, key: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={name: text})
    _assert_error(exc, key, repr(text), name, "expected")


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[heartbeat]\ntimeuot = 0.2\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "heartbeat.timeuot", "0.2", str(path), "timeout")


def test_unknown_section_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[hearbeat]\ntimeout = 0.2\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "hearbeat", "unknown section", str(path))


def test_top_level_value_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "heartbeat = 3\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "heartbeat", "3", str(path), "table")


def test_typo_in_env_key() -> None:
    name = "COMMROUTER_HEARTBEAT_TIMOUT"
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={name: "0.2"})
    _assert_error(exc, "heartbeat.timout", "'0.2'", name, "COMMROUTER_HEARTBEAT_TIMEOUT")


def test_lower_case_env_key_is_a_typo() -> None:
    name = "COMMROUTER_LOG_level"
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={name: "debug"})
    _assert_error(exc, "log.level", "'debug'", name)


def test_bad_log_level_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[log]\nlevel = "verbose"\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "log.level", "'verbose'", str(path), "debug, info, warning, error")


def test_bad_log_level_in_env() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={"COMMROUTER_LOG_LEVEL": "trace"})
    _assert_error(exc, "log.level", "'trace'", "COMMROUTER_LOG_LEVEL")


def test_missing_user_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, str(path))


def test_missing_file_named_by_commrouter_config(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(SettingsError) as exc:
        load_settings(environ={"COMMROUTER_CONFIG": str(path)})
    _assert_error(exc, str(path), "COMMROUTER_CONFIG")


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "[heartbeat\ntimeout = \n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, str(path), "TOML")


def test_bad_value_in_file_reported_even_if_env_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "[heartbeat]\ntimeout = -1\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={"COMMROUTER_HEARTBEAT_TIMEOUT": "0.2"})
    _assert_error(exc, "heartbeat.timeout", "-1", str(path))


def test_settings_error_is_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# --- dataclass behaviour ------------------------------------------------------------------------


def test_settings_is_frozen() -> None:
    settings = Settings.defaults()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.heartbeat = settings.heartbeat  # type: ignore[misc]


@pytest.mark.parametrize("section", list(SEED))
def test_sections_are_frozen(section: str) -> None:
    obj = getattr(Settings.defaults(), section)
    key = next(iter(SEED[section]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, key, SEED[section][key])


def test_sections_are_slotted() -> None:
    settings = Settings.defaults()
    for obj in (settings, *(getattr(settings, name) for name in SEED)):
        assert not hasattr(obj, "__dict__")


def test_dataclasses_replace_works_and_validates() -> None:
    heartbeat = Settings.defaults().heartbeat
    faster = dataclasses.replace(heartbeat, timeout=0.2)
    assert faster.timeout == 0.2
    assert faster.request_threshold == heartbeat.request_threshold
    with pytest.raises(SettingsError) as exc:
        dataclasses.replace(heartbeat, timeout=-1)
    _assert_error(exc, "heartbeat.timeout", "-1", "HeartbeatSettings")


def test_direct_construction_normalizes() -> None:
    log = LogSettings(level="ERROR", file="", console=False)
    assert log.level == "error"
    assert type(ActorSettings(1, 2, 3, 4, 5).ask_timeout) is float


def test_transport_choice_from_env_and_file(tmp_path: Path) -> None:
    assert load_settings(environ={}).connection.transport == "auto"
    env = {"COMMROUTER_CONNECTION_TRANSPORT": " Script "}
    assert load_settings(environ=env).connection.transport == "script"
    path = _write(tmp_path, '[connection]\ntransport = "WIDGET"\n')
    assert load_settings(path, environ={}).connection.transport == "widget"


def test_bad_transport_names_the_choices(tmp_path: Path) -> None:
    path = _write(tmp_path, '[connection]\ntransport = "websocket"\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(path, environ={})
    _assert_error(exc, "connection.transport", "'websocket'", str(path), "auto, widget, script")
