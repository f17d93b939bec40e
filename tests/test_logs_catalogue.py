"""docs/logging.md's event catalogue and the code stay in step, both ways."""

from __future__ import annotations

import ast
import textwrap
import tomllib
from pathlib import Path

from commrouter.observability.catalogue import (
    NAME,
    SUBPACKAGES,
    compare,
    read_catalogue,
    scan_sources,
    source_files,
)
from commrouter.observability.trace import _Tracer

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "docs" / "logging.md"


def rows():
    return read_catalogue(CATALOGUE.read_text(encoding="utf-8"))


def test_the_catalogue_lists_every_event_the_code_emits_and_nothing_else():
    problems = compare(scan_sources(), rows())
    assert problems == [], "docs/logging.md and the code differ:\n" + "\n".join(problems)


def test_every_source_package_is_scanned():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert sorted(SUBPACKAGES) == sorted(pyproject["tool"]["setuptools"]["packages"])
    files = {path.resolve() for path in source_files()}
    assert ROOT / "actors" / "connection.py" in files
    assert ROOT / "transports" / "fifo_link.py" in files and ROOT / "kernel" / "kernel.py" in files
    scan = scan_sources()
    assert len(scan.emissions) > 150
    found = {e.name for e in scan.emissions}
    for name in ("connection.opened", "pipe.connected", "kernel.started", "sim.verdict"):
        assert name in found  # self.log, a module's _log, the kernel's, the simulation's emit


def test_the_tools_only_use_catalogued_names():
    """The trace, the statistics and the simulation's invariants name events: renaming one
    in the code without them would silently break them."""
    catalogued = {row.name for row in rows()}
    areas = {name.split(".")[0] for name in catalogued}
    used: dict[str, str] = {}
    for module in ("trace.py", "journey.py", "stats.py", "outages.py"):  # all event names here
        tree = ast.parse((ROOT / "observability" / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                used[node.value] = module
    tree = ast.parse((ROOT / "simulation" / "invariants.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # there, the names queried (others are scenario actions)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("query", "named")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            used[str(node.args[0].value)] = "invariants.py"
    for name, module in used.items():
        if NAME.match(name) and name.split(".")[0] in areas:
            assert name in catalogued, f"{module} uses {name}, which is not catalogued"
    assert "heartbeat.pong_received" in used and "cell.received" in used
    for handler in [name for name in dir(_Tracer) if name.startswith("on_")]:
        area, _, rest = handler[3:].partition("_")
        assert f"{area}.{rest}" in catalogued, f"the trace handles {handler}: not catalogued"


def check(tmp_path: Path, source: str, catalogue: str) -> list[str]:
    path = tmp_path / "module.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    text = "## The event catalogue\n\n| event | level | fields | meaning |\n|---|---|---|---|\n"
    return compare(scan_sources([path]), read_catalogue(text + textwrap.dedent(catalogue)))


def test_the_check_fails_both_ways(tmp_path):
    source = """
        def handler(self, m):
            self.log.info("area.one", address=m.address, reason="x")
            _log.warning(
                "area.two",
                count=1,
            )
    """
    good = """
        | `area.one` | info | `address`, `reason` | one |
        | `area.two` | warning | `count` | two |
    """
    assert check(tmp_path, source, good) == []
    missing = check(tmp_path, source, "| `area.one` | info | `address`, `reason` | one |\n")
    assert len(missing) == 1 and missing[0].startswith("area.two: emitted at")
    assert missing[0].endswith("module.py:4 but not in the catalogue")
    stale = check(tmp_path, source, good + "| `area.three` | info | — | gone |\n")
    assert len(stale) == 1 and "area.three: in the catalogue" in stale[0]
    assert "nothing emits it" in stale[0]
    level = check(tmp_path, source, good.replace("| warning |", "| error |"))
    assert len(level) == 1 and "area.two: level error in the catalogue" in level[0]
    fields = check(tmp_path, source, good.replace("`address`, `reason`", "`address`, `why`"))
    assert any("fields reason are emitted" in p for p in fields)
    assert any("fields why are in the catalogue" in p for p in fields)
    twice = check(tmp_path, source, good + "| `area.one` | info | `address`, `reason` | again |\n")
    assert any("catalogued more than once" in p for p in twice)


def test_patterns_splats_and_names_in_variables(tmp_path):
    source = """
        class Sim:
            def track(self, kind, **fields):
                self.emit(f"host.{kind}_done", "host", index=1, **fields)

            def use(self):
                self.track("ensure")
                self.track("send", address="/a")

            def report(self):
                fields = {"page": "w"}
                fields["why"] = "x"
                self.emit("host.unheard", "host", "warning", **fields)

            def step(self, event):
                self.emit(event, "sim")

            def steps(self):
                self.step("sim.step")
    """
    catalogue = """
        | `host.ensure_done` | info | `index` | done |
        | `host.send_done` | info | `index`, `address` | done |
        | `host.unheard` | warning | `page`, `why` | unheard |
        | `sim.step` | info | `index`, `do` | a step (not checked: named in a variable) |
    """
    assert check(tmp_path, source, catalogue) == []
    # a row the pattern fits but whose variable part is not a literal of the module: stale
    problems = check(tmp_path, source, catalogue + "| `host.close_done` | info | `index` | x |\n")
    assert len(problems) == 1 and problems[0].startswith("host.close_done: in the catalogue")
    # a local dict's keys are known: a field more is an error
    problems = check(tmp_path, source, catalogue.replace("`page`, `why`", "`page`, `why`, `x`"))
    assert problems and "fields x are in the catalogue" in problems[0]
    # a pattern no row fits
    unfit = catalogue.replace("`host.ensure_done`", "`host.a`").replace(
        "`host.send_done`", "`host.b`"
    )
    problems = check(tmp_path, source, unfit)
    assert any(p.startswith("host.{}_done: emitted at") for p in problems)
