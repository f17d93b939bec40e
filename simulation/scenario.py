"""Scenario files: a timeline of steps at virtual times, fault settings, and expectations.

A scenario is TOML (format in docs/simulation.md). Loading checks every table, step and
parameter and reports the first problem with the file, the step and the key. The shipped
scenarios live in `simulation/scenarios/*.toml`; `shipped()` lists them by name.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from commrouter.config import Settings, SettingsError

__all__ = [
    "ACTIONS",
    "FrontEndModel",
    "NetworkProfile",
    "Scenario",
    "ScenarioError",
    "Step",
    "dump_scenario",
    "load_scenario",
    "parse_scenario",
    "resolve",
    "shipped",
]


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file, the step and the key."""


# --------------------------------------------------------------------------- the actions

_ANY = object()  # a JSON value
_STR, _NUM, _INT, _BOOL, _LIST = str, float, int, bool, list


@dataclass(frozen=True, slots=True)
class Param:
    kind: Any
    required: bool = False
    choices: tuple[str, ...] = ()


def _p(kind: Any, required: bool = False, choices: tuple[str, ...] = ()) -> Param:
    return Param(kind, required, choices)


MALFORMED_KINDS = (
    "no_content",
    "no_comm_id",
    "unknown_comm",
    "no_data",
    "no_address",
    "no_value",
    "unknown_private",
    "open_no_content",
    "open_wrong_target",
    "open_wrong_kernel",
    "close_unknown",
)
GARBAGE_REASONS = ("malformed JSON", "unknown op", "bad field", "frame too large", "bad secret")
ACTORS = ("connection", "heartbeat", "router", "subscriptions", "program_executor")

PAGE = {"page": _p(_STR)}
CELL = {"program": _p(_STR)}
ADDRESS = {"address": _p(_STR, True)}
VALUES = {"value": _p(_ANY), "values": _p(_LIST)}

#: Every step a scenario can take: action -> its parameters (docs/simulation.md lists them).
ACTIONS: dict[str, dict[str, Param]] = {
    # the browser windows (each runs commrouter.js once an install script ran in it)
    "page.open": {**PAGE},
    "page.send": {**PAGE, **ADDRESS, **VALUES},
    "page.set": {**PAGE, **ADDRESS, "value": _p(_ANY, True)},
    "page.ping": {**PAGE},
    "page.reload": {**PAGE},
    "page.close": {**PAGE},
    "page.vanish": {**PAGE},
    "page.freeze": {**PAGE, "seconds": _p(_NUM, True)},
    "page.ignore_pings": {**PAGE},
    "page.answer_pings": {**PAGE},
    "page.reopen": {**PAGE},
    "page.malformed": {**PAGE, "kind": _p(_STR, choices=MALFORMED_KINDS)},
    # the network between the pages and the kernel (faults on the front-end's messages)
    "net.set": {
        "drop": _p(_NUM),
        "duplicate": _p(_NUM),
        "reorder": _p(_NUM),
        "delay": _p(_NUM),
    },
    # issue 15's faults (simulation/injected.py) and the heal
    "iopub.set": {
        "drop": _p(_NUM),
        "duplicate": _p(_NUM),
        "reorder": _p(_NUM),
        "delay": _p(_NUM),
        "hwm": _p(_INT),
        "rate": _p(_NUM),
    },
    "net.partition": {
        "seconds": _p(_NUM, True),
        "direction": _p(_STR, choices=("both", "to_kernel", "to_page")),
    },
    "net.latency": {"latency": _p(_ANY), "iopub": _p(_ANY)},
    "host.publisher_raises": {
        "seconds": _p(_NUM, True),
        "kind": _p(_STR, choices=("any", "comm_msg", "comm_close", "display", "stream")),
    },
    "host.crash_on": {
        "target": _p(_STR, True, ACTORS),
        "message": _p(_STR, True),
        "nth": _p(_INT),
    },
    "clock.stall": {"seconds": _p(_NUM, True)},
    "sim.heal": {},
    # the cell program (in memory, through the same ProgramLink interface as the pipes)
    "cell.start": {**CELL, **PAGE, "capacity": _p(_INT), "silent": _p(_BOOL)},
    "cell.subscribe": {**CELL, **ADDRESS},
    "cell.unsubscribe": {**CELL, **ADDRESS},
    "cell.send": {**CELL, **ADDRESS, **VALUES, "stream": _p(_BOOL)},
    "cell.read": {**CELL, **ADDRESS},
    "cell.sync": {**CELL},
    "cell.start_link": {**CELL},
    "cell.display": {**CELL, "html": _p(_STR)},
    "cell.flood": {**CELL, **ADDRESS, "count": _p(_INT, True), "stream": _p(_BOOL)},
    "cell.hang": {**CELL},
    "cell.resume": {**CELL},
    "cell.crash": {**CELL},
    "cell.garbage": {**CELL, "reason": _p(_STR, choices=GARBAGE_REASONS)},
    "cell.finish": {**CELL},
    # the kernel host (what embeds the router) and the Jupyter server
    "host.ensure": {**PAGE},
    "host.send": {**ADDRESS, "value": _p(_ANY, True), "stream": _p(_BOOL)},
    "host.heartbeat": {"timeout": _p(_NUM)},
    "host.close": {},
    "host.crash": {"target": _p(_STR, True, ACTORS)},
    "host.restart_kernel": {"websocket": _p(_STR, choices=("close", "keep"))},
    "host.restart_server": {"down": _p(_NUM)},
}


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the timeline: `action` at virtual time `at` with its parameters."""

    at: float
    action: str
    params: Mapping[str, Any]
    index: int  # position in the scenario (0-based), for messages and the log


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """Faults applied to every message a page sends to the kernel (probabilities 0..1)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0  # extra seconds, uniform in [0, delay]; a page's order is kept

    @property
    def faulty(self) -> bool:
        return any((self.drop, self.duplicate, self.reorder, self.delay))


@dataclass(frozen=True, slots=True)
class FrontEndModel:
    """How the simulated browser behaves."""

    pages: int = 1  # windows open at t=0 (window-1, window-2, ...)
    latency: tuple[float, float] = (0.01, 0.01)  # page -> kernel, seconds (a range: jitter)
    install_delay: float = 0.05  # install display rendered -> comm_open leaves the page
    render_parentless: bool = True  # a display without a parent is shown in every window
    iopub_latency: tuple[float, float] = (0.0, 0.0)  # kernel -> page (IOPub), order kept


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario (from a file, or generated by the random explorer)."""

    name: str
    steps: tuple[Step, ...]
    description: str = ""
    duration: float | None = None  # None: run until quiet after the last step
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    frontend: FrontEndModel = field(default_factory=FrontEndModel)
    network: NetworkProfile = field(default_factory=NetworkProfile)
    expect: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<memory>"  # the file, "random" or "<memory>"
    replay: str | None = None  # how `commrouter simulate` names it (path or shipped name)
    heal_at: float | None = None  # every fault is lifted then; liveness is strict after it

    def build_settings(self, base: Settings) -> Settings:
        """`base` with this scenario's [settings] applied (the simulation's log settings win)."""
        changes: dict[str, Any] = {}
        for section, values in self.settings.items():
            current = getattr(base, section)
            try:
                changes[section] = dataclasses.replace(current, **values)
            except (TypeError, SettingsError) as error:
                raise ScenarioError(f"{self.source}: [settings.{section}]: {error}") from None
        log = dataclasses.replace(base.log, level="debug", file="", console=False)
        changes["log"] = log
        return dataclasses.replace(base, **changes)


# ------------------------------------------------------------------------------- loading

_TOP = {"scenario", "settings", "frontend", "network", "expect"}
_SCENARIO_KEYS = {"name", "description", "duration", "heal_at", "steps"}
_EXPECT_KEYS = {
    "events",
    "absent",
    "sequence",
    "program_received",
    "page_received",
    "gave_up",
    "final_link",
}
EVENT_RESERVED = {"event", "count", "min", "max", "at", "between", "matches"}


def shipped() -> dict[str, Path]:
    """The scenarios shipped with commrouter: name -> path."""
    folder = resources.files("commrouter.simulation").joinpath("scenarios")
    found = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            found[entry.name[: -len(".toml")]] = Path(str(entry))
    return dict(sorted(found.items()))


def resolve(name_or_path: str) -> Path:
    """A scenario path from a path or a shipped scenario's name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    known = shipped()
    if name_or_path in known:
        return known[name_or_path]
    raise ScenarioError(
        f"{name_or_path}: no such file, and not a shipped scenario ({', '.join(known)})"
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and check a scenario file (or a shipped scenario by name)."""
    path = resolve(str(name_or_path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: invalid TOML: {error}") from None
    is_shipped = shipped().get(path.stem) == path
    return parse_scenario(
        data, source=str(path), default_name=path.stem, replay=path.stem if is_shipped else None
    )


def parse_scenario(
    data: Mapping[str, Any],
    *,
    source: str = "<memory>",
    default_name: str = "scenario",
    replay: str | None = None,
) -> Scenario:
    """Check a scenario's TOML data (as `tomllib` returns it) and build the `Scenario`."""
    where = source
    _only(data, _TOP, where, "top-level table")
    head = _table(data, "scenario", where)
    _only(head, _SCENARIO_KEYS, where, "key of [scenario]")
    name = head.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(f"{where}: [scenario] name must be a non-empty string")
    duration = head.get("duration")
    if duration is not None:
        duration = _number(duration, f"{where}: [scenario] duration", minimum=0.0)
    heal_at = head.get("heal_at")
    if heal_at is not None:
        heal_at = _number(heal_at, f"{where}: [scenario] heal_at", minimum=0.0)
    raw_steps = head.get("steps", [])
    if not isinstance(raw_steps, list):
        raise ScenarioError(f"{where}: [scenario] steps must be an array of inline tables")
    steps = tuple(_step(raw, index, where) for index, raw in enumerate(raw_steps))
    settings = _settings(_table(data, "settings", where), where)
    scenario = Scenario(
        name=name,
        description=str(head.get("description", "")).strip(),
        steps=steps,
        duration=duration,
        settings=settings,
        frontend=_frontend(_table(data, "frontend", where), where),
        network=_network(_table(data, "network", where), f"{where}: [network]"),
        expect=_expect(_table(data, "expect", where), where),
        source=source,
        replay=replay,
        heal_at=heal_at,
    )
    scenario.build_settings(Settings.defaults())  # report bad settings now, not mid-run
    return scenario


def _only(table: Mapping[str, Any], allowed: set[str], where: str, what: str) -> None:
    for key in table:
        if key not in allowed:
            raise ScenarioError(
                f"{where}: unknown {what} {key!r} (expected one of {', '.join(sorted(allowed))})"
            )


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: {key} must be a table, got {value!r}")
    return value


def _number(value: Any, what: str, minimum: float | None = None, maximum: float | None = None):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{what} must be a number, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"{minimum if minimum is not None else '-inf'}..{maximum or 'inf'}"
        raise ScenarioError(f"{what} = {value!r} is out of range {bounds}")
    return float(value)


def _json_value(value: Any, what: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ScenarioError(f"{what} must be JSON data, got {value!r}") from None
    return value


def _step(raw: Any, index: int, where: str) -> Step:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: step {index + 1} must be an inline table, got {raw!r}")
    action = raw.get("do")
    label = f"{where}: step {index + 1} (do = {action!r})"
    if not isinstance(action, str) or action not in ACTIONS:
        raise ScenarioError(f"{label}: 'do' must name an action: {', '.join(sorted(ACTIONS))}")
    if "at" not in raw:
        raise ScenarioError(f"{label}: 'at' (virtual seconds) is required")
    at = _number(raw["at"], f"{label}: at", minimum=0.0)
    spec = ACTIONS[action]
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("at", "do"):
            continue
        param = spec.get(key)
        if param is None:
            known = ", ".join(sorted(spec)) or "none"
            raise ScenarioError(f"{label}: unknown parameter {key!r} (known: {known})")
        params[key] = _param(value, param, f"{label}: {key}")
    for key, param in spec.items():
        if param.required and key not in params:
            raise ScenarioError(f"{label}: {key!r} is required")
    if "values" in spec and ("value" in params) == ("values" in params):
        raise ScenarioError(f"{label}: give exactly one of 'value' or 'values'")
    if action == "net.latency":
        for key, value in params.items():
            _latency(value, f"{label}: {key}")
    if action == "cell.flood" and params["count"] < 1:
        raise ScenarioError(f"{label}: count must be >= 1")
    return Step(at, action, params, index)


def _param(value: Any, param: Param, what: str) -> Any:
    kind = param.kind
    if kind is _ANY:
        return _json_value(value, what)
    if kind is float:
        return _number(value, what, minimum=0.0)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScenarioError(f"{what} must be a whole number >= 0, got {value!r}")
        return value
    if kind is list:
        if not isinstance(value, list):
            raise ScenarioError(f"{what} must be an array, got {value!r}")
        return [_json_value(v, what) for v in value]
    if not isinstance(value, kind):
        raise ScenarioError(f"{what} must be a {kind.__name__}, got {value!r}")
    if param.choices and value not in param.choices:
        raise ScenarioError(f"{what} = {value!r}: expected one of {', '.join(param.choices)}")
    return value


def _settings(table: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    base = Settings.defaults()
    result: dict[str, dict[str, Any]] = {}
    for section, values in table.items():
        if section == "log" or not hasattr(base, section) or not isinstance(values, Mapping):
            raise ScenarioError(
                f"{where}: [settings.{section}] is not a settings section "
                "(heartbeat, connection, flow, frontend, program, actors)"
            )
        result[section] = dict(values)
    return result


def _frontend(table: Mapping[str, Any], where: str) -> FrontEndModel:
    what = f"{where}: [frontend]"
    keys = {"pages", "latency", "iopub_latency", "install_delay", "render_parentless"}
    _only(table, keys, what, "key")
    pages = table.get("pages", 1)
    if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
        raise ScenarioError(f"{what} pages must be a whole number >= 0, got {pages!r}")
    parentless = table.get("render_parentless", True)
    if not isinstance(parentless, bool):
        raise ScenarioError(f"{what} render_parentless must be true or false")
    return FrontEndModel(
        pages=pages,
        latency=_latency(table.get("latency", 0.01), f"{what} latency"),
        install_delay=_number(table.get("install_delay", 0.05), f"{what} install_delay", 0.0),
        render_parentless=parentless,
        iopub_latency=_latency(table.get("iopub_latency", 0.0), f"{what} iopub_latency"),
    )


def _latency(latency: Any, what: str) -> tuple[float, float]:
    """Seconds, or a range `[low, high]` (jitter)."""
    if isinstance(latency, list):
        if len(latency) != 2:
            raise ScenarioError(f"{what} range must be [low, high], got {latency!r}")
        low = _number(latency[0], what, minimum=0.0)
        return low, _number(latency[1], what, minimum=low)
    low = _number(latency, what, minimum=0.0)
    return low, low


def _network(table: Mapping[str, Any], what: str) -> NetworkProfile:
    _only(table, {"drop", "duplicate", "reorder", "delay"}, what, "key")
    probabilities = {
        key: _number(table.get(key, 0.0), f"{what} {key}", 0.0, 1.0)
        for key in ("drop", "duplicate", "reorder")
    }
    return NetworkProfile(
        **probabilities, delay=_number(table.get("delay", 0.0), f"{what} delay", 0.0)
    )


def _expect(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    what = f"{where}: [expect]"
    _only(table, _EXPECT_KEYS, what, "key")
    for key in ("events", "absent", "sequence", "gave_up"):
        if key in table and not isinstance(table[key], list):
            raise ScenarioError(f"{what} {key} must be an array")
    for index, rule in enumerate(table.get("events", [])):
        if not isinstance(rule, Mapping) or not isinstance(rule.get("event"), str):
            raise ScenarioError(f"{what} events[{index}] must be a table with an 'event' name")
        between = rule.get("between")
        if between is not None and not (isinstance(between, list) and len(between) == 2):
            raise ScenarioError(f"{what} events[{index}].between must be [from, to]")
        _check_matches(rule.get("matches", {}), f"{what} events[{index}].matches")
    for index, item in enumerate(table.get("sequence", [])):
        if not isinstance(item, str) and not (
            isinstance(item, Mapping) and isinstance(item.get("event"), str)
        ):
            raise ScenarioError(
                f"{what} sequence[{index}] must be an event name or a table with 'event'"
            )
    for key in ("program_received", "page_received", "final_link"):
        if key in table and not isinstance(table[key], Mapping):
            raise ScenarioError(f"{what} {key} must be a table")
    for key in ("program_received", "page_received"):
        for address, values in table.get(key, {}).items():
            if not isinstance(values, list):
                raise ScenarioError(f"{what} {key}.{address!r} must be an array of values")
    for actor in table.get("gave_up", []):
        if actor not in ACTORS:
            raise ScenarioError(f"{what} gave_up: {actor!r} is not an actor ({', '.join(ACTORS)})")
    return dict(table)


# ------------------------------------------------------------------------------ dumping


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as TOML that `load_scenario` reads back (for generated scenarios)."""
    lines = ["[scenario]", f"name = {_toml(scenario.name)}"]
    if scenario.description:
        lines.append(f"description = {_toml(scenario.description)}")
    if scenario.duration is not None:
        lines.append(f"duration = {_toml(scenario.duration)}")
    if scenario.heal_at is not None:
        lines.append(f"heal_at = {_toml(scenario.heal_at)}")
    lines.append("steps = [")
    for step in scenario.steps:
        fields = {"at": step.at, "do": step.action, **step.params}
        inner = ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in fields.items())
        lines.append(f"  {{ {inner} }},")
    lines.append("]")
    for section, values in scenario.settings.items():
        lines += ["", f"[settings.{section}]"]
        lines += [f"{_key(k)} = {_toml(v)}" for k, v in values.items()]
    fe = scenario.frontend
    lines += [
        "",
        "[frontend]",
        f"pages = {fe.pages}",
        f"latency = {_toml(list(fe.latency))}",
        f"install_delay = {_toml(fe.install_delay)}",
        f"render_parentless = {_toml(fe.render_parentless)}",
        f"iopub_latency = {_toml(list(fe.iopub_latency))}",
        "",
        "[network]",
    ]
    net = scenario.network
    lines += [f"{k} = {_toml(getattr(net, k))}" for k in ("drop", "duplicate", "reorder", "delay")]
    if scenario.expect:
        lines += ["", "[expect]"]
        lines += [f"{_key(k)} = {_toml(v)}" for k, v in scenario.expect.items()]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else json.dumps(key)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if value is None:
        raise ScenarioError("TOML has no null; use another value")
    raise ScenarioError(f"cannot write {value!r} as TOML")


def _check_matches(matches: Any, what: str) -> None:
    """`matches = { field = "regex" }`: the field's text must match (re.search)."""
    if not isinstance(matches, Mapping):
        raise ScenarioError(f"{what} must be a table of field = regular expression")
    for key, pattern in matches.items():
        try:
            re.compile(pattern)
        except (TypeError, re.error) as error:
            raise ScenarioError(f"{what}.{key}: not a regular expression: {error}") from None
