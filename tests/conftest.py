"""Shared fixtures. `vtime` is virtual time in one line; `world` is a running router on the
in-memory transports with a recorder of every log event."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from commrouter import CommRouter, Settings, VirtualTime
from commrouter.observability import Recorder
from commrouter.transports.memory import InMemoryFrontEnd, InMemoryProgram

KERNEL_ID = "kernel-under-test"


def quiet_settings(**sections: dict[str, Any]) -> Settings:
    """Defaults with console logging off, and any section fields replaced."""
    settings = Settings.defaults()
    changes: dict[str, Any] = {"log": dataclasses.replace(settings.log, console=False)}
    for section, fields in sections.items():
        changes[section] = dataclasses.replace(
            changes.get(section, getattr(settings, section)), **fields
        )
    return dataclasses.replace(settings, **changes)


@pytest.fixture
def vtime() -> Iterator[VirtualTime]:
    """Virtual time driven by freezegun; advance it with `vtime.advance(seconds)`."""
    with VirtualTime.frozen() as virtual:
        yield virtual


@dataclasses.dataclass
class World:
    """A started router on in-memory transports, in virtual time."""

    router: CommRouter
    front_end: InMemoryFrontEnd
    time: VirtualTime
    log: Recorder

    def settle(self) -> None:
        self.time.settle()

    def advance(self, seconds: float) -> None:
        self.time.advance(seconds)

    def comm_msgs(self, address: str) -> list:
        """Every item the router published for `address` in a comm_msg, one `Published` each
        (a batch's items one by one; the number, `seq`, left out)."""
        items = []
        for p in self.front_end.of_kind("comm_msg"):
            batch = p.data.get("batch")
            for item in batch if isinstance(batch, list) else [p.data]:
                if item.get("address") == address:
                    data = {k: v for k, v in item.items() if k != "seq"}
                    items.append(dataclasses.replace(p, data=data))
        return items

    def open_link(self) -> str:
        """Install the front-end and wait for its comm; returns the comm id."""
        promise = self.router.ensure_front_end()
        self.settle()
        assert promise.get(1.0) is True
        assert self.front_end.comm_id is not None
        return self.front_end.comm_id

    def start_program(
        self, program_id: str = "prog-1", capacity: int = 1_000_000
    ) -> InMemoryProgram:
        program = InMemoryProgram(program_id, capacity)
        self.router.program_started(program_id, program.link)
        self.settle()
        return program


def numbered_messages(world: World) -> list[dict[str, Any]]:
    """Every numbered comm_msg the router published, in order."""
    return [p.data for p in world.front_end.of_kind("comm_msg") if "seq" in p.data]


@contextlib.contextmanager
def running_world(
    vtime: VirtualTime, settings: Settings | None = None, **front_end: Any
) -> Iterator[World]:
    """`make_world`, stopped at the end of the `with` block."""
    world = make_world(vtime, settings, **front_end)
    try:
        yield world
    finally:
        world.router.stop()


def make_world(vtime: VirtualTime, settings: Settings | None = None, **front_end: Any) -> World:
    log = Recorder()
    fe = InMemoryFrontEnd(KERNEL_ID, **front_end)
    router = CommRouter(
        KERNEL_ID, fe, settings=settings or quiet_settings(), time=vtime, log_sinks=[log]
    )
    fe.connect(router)
    router.start()
    return World(router, fe, vtime, log)


@pytest.fixture
def world(vtime: VirtualTime) -> Iterator[World]:
    w = make_world(vtime)
    try:
        yield w
    finally:
        w.router.stop()
