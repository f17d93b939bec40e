"""The event catalogue (docs/logging.md) checked against the code that emits the events.

`scan_sources()` reads the package's Python source (never imports it) and finds every call
that emits an event: `<anything>.debug/info/warning/error/critical/exception("area.event", ...)`
(actors' `self.log`, module and kernel loggers, the fifo link's `_log`) and the simulation's
`<anything>.emit("area.event", ...)`, with the level (the method's name, or the level among an
`emit`'s positional arguments) and the keyword fields (a `**local_dict` splat is followed to the
keys the function puts in that dict; a splat of anything else leaves the fields open).

A name built with an f-string (`f"host.{kind}_done"`) becomes a pattern: a catalogue row matches
it when the row's name fits and every `{...}` part is a string literal of the same module. A
name passed in a variable (the simulation's `emit(event, ...)`) is covered by the string
literals of that module.

`compare(scan, rows)` returns the differences, both ways: an emitted name without a row, a row
nothing emits (stale), a level or a field that differs. Fields common to an area (every `page.`
event carries `page`...) are listed once per area in the catalogue, not per row: `AREA_FIELDS`.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AREA_FIELDS",
    "CATALOGUE_HEADING",
    "SUBPACKAGES",
    "Emission",
    "Row",
    "Scan",
    "compare",
    "read_catalogue",
    "scan_sources",
]

SUBPACKAGES = (
    "commrouter",
    "commrouter.actors",
    "commrouter.router",
    "commrouter.transports",
    "commrouter.config",
    "commrouter.timing",
    "commrouter.observability",
    "commrouter.frontend",
    "commrouter.program",
    "commrouter.kernel",
    "commrouter.simulation",
    "commrouter.simulation.scenarios",  # data only: nothing to scan, listed to match pyproject
    "commrouter.ipyhost",
)
"""Every package whose source is scanned (the folders of pyproject.toml's package-dir)."""

LEVELS = ("debug", "info", "warning", "error", "critical")
_METHODS = {*LEVELS, "exception"}
NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")

AREA_FIELDS: dict[str, frozenset[str]] = {
    "sim": frozenset({"kernel_id"}),
    "net": frozenset({"kernel_id"}),
    "iopub": frozenset({"kernel_id"}),
    "host": frozenset({"kernel_id"}),
    "page": frozenset({"kernel_id", "page"}),
    "cell": frozenset({"kernel_id", "program_id"}),
}
"""Fields every event of a simulation area carries (added by the simulation's `emit`
wrappers); the catalogue names them once per area."""


@dataclass
class Emission:
    """One call that emits an event."""

    path: str
    line: int
    name: str | None  # a literal name, or None for a pattern
    pattern: re.Pattern[str] | None  # an f-string name
    parts: tuple[str, ...]  # the f-string's literal pieces (for messages)
    levels: frozenset[str]  # empty if not known
    fields: frozenset[str]
    open_fields: bool  # a splat whose keys are unknown

    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Scan:
    """What the source emits."""

    emissions: list[Emission] = field(default_factory=list)
    literals: dict[str, set[str]] = field(default_factory=dict)  # module -> string literals
    dynamic_modules: set[str] = field(default_factory=set)  # emit names from variables


@dataclass(frozen=True)
class Row:
    """One row of the catalogue table."""

    name: str
    levels: frozenset[str]
    fields: frozenset[str]
    line: int


# ------------------------------------------------------------------------------ source


def source_files(packages: Iterable[str] = SUBPACKAGES) -> Iterator[Path]:
    """The .py files of `packages` (not recursing into subpackages: each is listed)."""
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            yield from sorted(Path(folder).glob("*.py"))


def _constant_level(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and node.value in LEVELS:
        return {str(node.value)}
    if isinstance(node, ast.IfExp):
        return _constant_level(node.body) | _constant_level(node.orelse)
    return set()


def _dict_keys(function: ast.AST | None, name: str) -> set[str] | None:
    """The keys a function puts in its local dict `name` (None if `name` is not such a dict,
    e.g. a `**kwargs` parameter, or if a key is not a literal)."""
    if function is None or not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    keys: set[str] = set()
    built = False
    for node in ast.walk(function):
        value = None
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = node.value if node.target.id == name else None
        if value is not None:
            if not isinstance(value, ast.Dict):
                return None
            for key in value.keys:
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    return None
                keys.add(key.value)
            built = True
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == name
        ):
            if not (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                return None
            keys.add(node.slice.value)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == name
            and node.func.attr in ("update", "setdefault")
        ):
            keys.update(k.arg for k in node.keywords if k.arg is not None)
            if node.func.attr == "setdefault" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    keys.add(first.value)
    return keys if built else None


def _fields(call: ast.Call, function: ast.AST | None) -> tuple[set[str], bool]:
    fields: set[str] = set()
    open_fields = False
    for keyword in call.keywords:
        if keyword.arg is not None:
            if keyword.arg != "level":
                fields.add(keyword.arg)
            continue
        keys = (
            _dict_keys(function, keyword.value.id) if isinstance(keyword.value, ast.Name) else None
        )
        if keys is None:
            open_fields = True
        else:
            fields |= keys
    return fields, open_fields


def _pattern(node: ast.JoinedStr) -> tuple[re.Pattern[str], tuple[str, ...]] | None:
    regex, parts = "", []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            regex += re.escape(value.value)
            parts.append(value.value)
        else:
            regex += "(?P<p%d>[a-z0-9_]+)" % len(parts)  # noqa: UP031 - a regex group name
            parts.append("{}")
    first = node.values[0] if node.values else None
    if not (
        isinstance(first, ast.Constant)
        and isinstance(first.value, str)
        and re.match(r"^[a-z][a-z0-9_]*\.", first.value)
    ):
        return None
    return re.compile(f"^{regex}$"), tuple(parts)


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str, scan: Scan) -> None:
        self.path, self.scan = path, scan
        self.function: ast.AST | None = None

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.scan.literals.setdefault(self.path, set()).add(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Attribute) or not node.args:
            return
        if func.attr not in _METHODS and func.attr != "emit":
            return
        first = node.args[0]
        if func.attr == "emit":
            levels = set().union(*(_constant_level(a) for a in node.args[1:3]))
            for keyword in node.keywords:
                if keyword.arg == "level":
                    levels |= _constant_level(keyword.value)
            if not levels and not any(
                not isinstance(a, ast.Constant) for a in node.args[1:3]
            ):  # no level given: the wrappers' default
                levels = {"info"}
        else:
            levels = {"error" if func.attr == "exception" else func.attr}
        fields, open_fields = _fields(node, self.function)
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            if not NAME.match(first.value):
                return
            self.scan.emissions.append(
                Emission(
                    self.path,
                    node.lineno,
                    first.value,
                    None,
                    (),
                    frozenset(levels),
                    frozenset(fields),
                    open_fields,
                )
            )
        elif isinstance(first, ast.JoinedStr):
            found = _pattern(first)
            if found is not None:
                pattern, parts = found
                self.scan.emissions.append(
                    Emission(
                        self.path,
                        node.lineno,
                        None,
                        pattern,
                        parts,
                        frozenset(levels),
                        frozenset(fields),
                        open_fields,
                    )
                )
        elif func.attr == "emit" and isinstance(first, ast.Name | ast.Subscript | ast.Attribute):
            self.scan.dynamic_modules.add(self.path)


def scan_sources(files: Iterable[Path] | None = None) -> Scan:
    """Every event emission in `files` (default: the package's source)."""
    scan = Scan()
    for path in files if files is not None else source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        _Visitor(_short_path(path), scan).visit(tree)
    return scan


def _short_path(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)


# --------------------------------------------------------------------------- catalogue

_ROW = re.compile(r"^\|\s*`(?P<name>[a-z][a-z0-9_]*\.[a-z0-9_]+)`\s*\|(?P<rest>.*)\|\s*$")


CATALOGUE_HEADING = "## The event catalogue"


def read_catalogue(text: str) -> list[Row]:
    """The rows of the tables under the `## The event catalogue` heading (up to the next `## `
    heading): `| `area.event` | levels | fields | meaning |`, levels comma-separated, fields as
    backticked names (or a dash for none)."""
    rows = []
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            inside = line.strip() == CATALOGUE_HEADING
            continue
        if not inside:
            continue
        match = _ROW.match(line.strip())
        if match is None:
            continue
        cells = [c.strip() for c in match.group("rest").split("|")]
        if len(cells) < 3:
            continue
        levels = frozenset(level.strip() for level in cells[0].split(",") if level.strip())
        fields = frozenset(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[1]))
        rows.append(Row(match.group("name"), levels, fields, number))
    return rows


def _area(name: str) -> str:
    return name.split(".", 1)[0]


def compare(scan: Scan, rows: list[Row]) -> list[str]:
    """Every difference between what the code emits and the catalogue, as messages."""
    problems: list[str] = []
    by_name: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_name[row.name].append(row)
    for name, same in by_name.items():
        if len(same) > 1:
            lines = ", ".join(str(r.line) for r in same)
            problems.append(f"{name}: catalogued more than once (lines {lines})")
    catalogue = {row.name: row for row in rows}

    literal: dict[str, list[Emission]] = defaultdict(list)
    patterns = []
    for emission in scan.emissions:
        if emission.name is not None:
            literal[emission.name].append(emission)
        else:
            patterns.append(emission)

    for name, emissions in sorted(literal.items()):
        row = catalogue.get(name)
        where = ", ".join(e.where() for e in emissions)
        if row is None:
            problems.append(f"{name}: emitted at {where} but not in the catalogue")
            continue
        problems += _check_row(row, emissions, where)

    covered = set(literal)
    for emission in patterns:
        module_literals = scan.literals.get(emission.path, set())
        rows_here = [
            row
            for row in rows
            if row.name not in literal  # a literal emission of that name is checked as such
            and (found := emission.pattern.match(row.name)) is not None  # type: ignore[union-attr]
            and all(part in module_literals for part in found.groupdict().values())
        ]
        shown = "".join(emission.parts)
        if not rows_here:
            problems.append(
                f"{shown}: emitted at {emission.where()} but no catalogue row fits the pattern"
            )
        for row in rows_here:
            covered.add(row.name)
            problems += _check_row(row, [emission], emission.where())

    variable_literals = set().union(*(scan.literals.get(m, set()) for m in scan.dynamic_modules))
    for row in rows:
        if row.name not in covered and row.name not in variable_literals:
            problems.append(f"{row.name}: in the catalogue (line {row.line}) but nothing emits it")
    return problems


def _check_row(row: Row, emissions: list[Emission], where: str) -> list[str]:
    problems = []
    levels = frozenset().union(*(e.levels for e in emissions))
    if levels and levels != row.levels:
        problems.append(
            f"{row.name}: level {_names(row.levels)} in the catalogue (line {row.line}), "
            f"{_names(levels)} in the code ({where})"
        )
    common = AREA_FIELDS.get(_area(row.name), frozenset())
    known = frozenset().union(*(e.fields for e in emissions)) - common
    missing = known - row.fields
    if missing:
        problems.append(
            f"{row.name}: fields {_names(missing)} are emitted ({where}) but not in the "
            f"catalogue (line {row.line})"
        )
    if not any(e.open_fields for e in emissions):
        extra = row.fields - known
        if extra:
            problems.append(
                f"{row.name}: fields {_names(extra)} are in the catalogue (line {row.line}) "
                f"but not emitted ({where})"
            )
    return problems


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "(none)"


def main(argv: list[str] | None = None) -> int:
    """`python -m commrouter.observability.catalogue docs/logging.md`: print the differences."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m commrouter.observability.catalogue CATALOGUE.md", file=sys.stderr)
        return 2
    rows = read_catalogue(Path(args[0]).read_text(encoding="utf-8"))
    problems = compare(scan_sources(), rows)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
