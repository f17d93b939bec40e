"""`commrouter.program` on its own: errors a cell program sees before anything is written."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from commrouter import program
from commrouter.program import (
    FrameTooLarge,
    Link,
    LinkClosedError,
    LinkTimeout,
    NotUnderRouter,
    ProgramLinkError,
    wire,
)

LINK_VARS = (
    wire.ENV_TO_KERNEL,
    wire.ENV_TO_PROGRAM,
    wire.ENV_SECRET,
    wire.ENV_PROGRAM_ID,
    wire.ENV_MAX_FRAME,
    wire.ENV_READ_TIMEOUT,
)


@pytest.fixture
def nowhere(tmp_path: Path) -> Iterator[Link]:
    """A link whose FIFOs do not exist: anything that reaches the pipe fails."""
    yield Link(
        {
            wire.ENV_TO_KERNEL: str(tmp_path / "gone" / "to_kernel"),
            wire.ENV_TO_PROGRAM: str(tmp_path / "gone" / "to_program"),
            wire.ENV_SECRET: "s",
            wire.ENV_MAX_FRAME: "100",
        }
    )


def test_outside_a_router_the_first_call_raises_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in LINK_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(program, "_link", None)
    with pytest.raises(NotUnderRouter) as caught:
        program.send("/a", 1)
    message = str(caught.value)
    assert "must run under a commrouter kernel" in message
    for name in wire.REQUIRED_ENV:
        assert name in message
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, ProgramLinkError)
    assert caught.value.missing == wire.REQUIRED_ENV
    with pytest.raises(NotUnderRouter):
        program.subscribe("/a", print)


def test_the_first_call_fails_not_the_import() -> None:
    code = (
        "from commrouter import program\n"
        "try:\n"
        "    program.read('/a')\n"
        "except program.NotUnderRouter as e:\n"
        "    print('refused:', e.missing)\n"
    )
    env = {"PATH": "", "COMMROUTER_LINK_SECRET": "only this one"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("refused: ('COMMROUTER_LINK_TO_KERNEL', 'COMMROUTER_LINK_TO_PROGRAM')\n")


def test_the_program_package_imports_only_the_standard_library_and_itself() -> None:
    for module in Path(program.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or name.startswith("commrouter.program")
                assert ok, f"{module.name} imports {name}"


def test_send_refuses_what_is_not_json_naming_address_and_type(nowhere: Link) -> None:
    with pytest.raises(TypeError, match=r"'/a'.*type set"):
        nowhere.send("/a", {1, 2})
    with pytest.raises(TypeError, match=r"'/b'.*NaN or infinity"):
        nowhere.send("/b", [1.0, math.nan])
    with pytest.raises(TypeError, match=r"'/c'.*object \(as a mapping key\)"):
        nowhere.send("/c", {object(): 1})
    with pytest.raises(TypeError, match="lone surrogate"):
        nowhere.send("/d", "\udc80")
    with pytest.raises(ValueError, match="non-empty string"):
        nowhere.send("", 1)
    with pytest.raises(ValueError, match="private to the protocol"):
        nowhere.send("#heartbeat/ping", 1)


def test_a_frame_above_the_limit_is_refused_before_any_write(nowhere: Link) -> None:
    with pytest.raises(FrameTooLarge) as caught:
        nowhere.send("/a", "x" * 200)
    assert isinstance(caught.value, ValueError)
    assert "value for '/a'" in str(caught.value) and "limit of 100 bytes" in str(caught.value)
    with pytest.raises(LinkClosedError, match="was the program finished"):
        nowhere.send("/a", "small")  # reaching the pipe fails: the big one never got there


def test_display_arguments_are_checked(nowhere: Link) -> None:
    with pytest.raises(TypeError, match="mime type"):
        nowhere.display(["<b>"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="display_id"):
        nowhere.update_display("", {"text/plain": "x"})
    with pytest.raises(TypeError, match="callable"):
        nowhere.subscribe("/a", "not a function")  # type: ignore[arg-type]


def test_mime_helpers() -> None:
    assert program.html("<b>") == {"text/html": "<b>"}
    assert program.markdown("*m*") == {"text/markdown": "*m*"}
    assert program.png(b"\x89PNG") == {"image/png": "iVBORw=="}
    assert program.svg("<svg/>") == {"image/svg+xml": "<svg/>"}
    assert program.text("t") == {"text/plain": "t"}
    assert program.new_display_id() != program.new_display_id()


def test_timeouts_are_timeout_errors() -> None:
    assert issubclass(LinkTimeout, TimeoutError)
    assert Link({name: "x" for name in wire.REQUIRED_ENV}).timeout == 5.0
    env = {**{name: "x" for name in wire.REQUIRED_ENV}, wire.ENV_READ_TIMEOUT: "0.25"}
    assert Link(env).timeout == 0.25


def test_importing_the_program_library_loads_no_third_party_module() -> None:
    """`commrouter/__init__.py` is lazy: a cell program may run without the router's deps."""
    code = (
        "import sys, commrouter.program\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pykka', 'structlog', 'zmq', 'freezegun', 'jupyter_client')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
