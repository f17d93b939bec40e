"""Test harness for real-subprocess programs: a router on the in-memory front-end, in real time,
whose front-end wakes waiters on every publish, and a check that no pipe is left behind."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from commrouter import CommRouter, RealTime, Settings
from commrouter.observability import Recorder
from commrouter.transports.memory import InMemoryFrontEnd, Published
from commrouter.transports.process import ProgramRun
from tests.conftest import KERNEL_ID, quiet_settings

PROGRAMS = Path(__file__).parent
WAIT = 15.0  # bound on every wait for a program (they take well under a second)


class WatchedFrontEnd(InMemoryFrontEnd):
    """The in-memory front-end, plus `wait_for(predicate)` woken by every publish."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._changed = threading.Condition()

    def _record(self, item: Published) -> None:
        super()._record(item)
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
        with self._changed:
            result = self._changed.wait_for(predicate, timeout)
        assert result, f"front-end condition not met within {timeout} s"
        return result

    def output(self, name: str) -> str:
        return "".join(p.data["text"] for p in self.of_kind("stream") if p.data["name"] == name)

    def comm_values(self, address: str) -> list[Any]:
        """The values published for `address`, batches unpacked."""
        return [
            item.get("value")
            for p in self.of_kind("comm_msg")
            for item in comm_items(p)
            if item.get("address") == address and not item.get("read_request")
        ]


def comm_items(p: Published) -> list[Any]:
    """The items of one published comm_msg: a batch's, or the message itself."""
    batch = (p.data or {}).get("batch")
    return batch if isinstance(batch, list) else [p.data or {}]


@dataclasses.dataclass
class Rig:
    router: CommRouter
    fe: WatchedFrontEnd
    log: Recorder
    pipes_dir: Path

    def run(self, script: str, *args: str, **kwargs: Any) -> ProgramRun:
        """Run tests/programs/<script> with this interpreter."""
        return self.router.run_program([sys.executable, str(PROGRAMS / script), *args], **kwargs)

    def finish(self, run: ProgramRun, timeout: float = WAIT) -> int:
        """Wait (bounded) for the program to be finished; returns its exit status."""
        return run.wait(timeout)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.pipes_dir.iterdir())

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        found = self.log.find(name, **fields)
        assert found, f"no {name} {fields} in {self.log.names()}"
        return found[-1]


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll a condition that has no event to wait on (e.g. a router query), bounded."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.005)
    return result


def make_rig(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    config: Settings | None = None,
    front_end: type[WatchedFrontEnd] = WatchedFrontEnd,
    **fe: Any,
) -> Rig:
    pipes_dir = tmp_path / "pipes"
    pipes_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(pipes_dir))  # where FifoLink makes its dirs
    log = Recorder()
    watched = front_end(KERNEL_ID, **fe)
    router = CommRouter(
        KERNEL_ID, watched, settings=config or quiet_settings(), time=RealTime(), log_sinks=[log]
    )
    watched.connect(router)
    router.start()
    return Rig(router, watched, log, pipes_dir)


def running_rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Rig]:
    """Body of the test modules' `rig` fixture: a started rig, stopped and checked after."""
    r = make_rig(monkeypatch, tmp_path)
    try:
        yield r
    finally:
        r.router.stop()
    assert r.leftovers() == [], "a FIFO directory was left behind"
