"""The program's rich output at a bounded rate (router/display_queue.py): a display updated in
a tight loop reaches IOPub as a few messages carrying its latest data, in order with the other
displays, and everything waiting goes out when the program ends. Virtual time, in memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from commrouter.router.display_queue import DISPLAY_BURST, DisplayQueue, HeldDisplay
from commrouter.transports.memory import InMemoryProgram
from tests.conftest import World, quiet_settings, running_world


def _shown(world, kind: str) -> list[tuple[str | None, str]]:
    return [(p.display_id, p.data["text/plain"]) for p in world.front_end.of_kind(kind)]


@contextmanager
def _displayed(vtime, rate: int, count: int) -> Iterator[tuple[World, InMemoryProgram]]:
    """A program that made `count` new displays (`d<i>`, text `<i>`) at `rate` a second."""
    settings = quiet_settings(program={"display_messages_per_second": rate})
    with running_world(vtime, settings) as world:
        program = world.start_program()
        for i in range(count):
            program.display({"text/plain": str(i)}, display_id=f"d{i}")
        world.settle()
        yield world, program


def test_a_display_updated_in_a_loop_is_published_at_the_rate_with_its_latest_data(vtime):
    settings = quiet_settings(program={"display_messages_per_second": 10})
    with running_world(vtime, settings) as world:
        program = world.start_program()
        program.display({"text/plain": "0"}, display_id="bar")
        for i in range(1, 1001):
            program.display({"text/plain": str(i)}, display_id="bar", update=True)
        world.settle()
        updates = _shown(world, "update")
        assert len(updates) == DISPLAY_BURST - 1  # the burst, then one waits for a token
        assert updates == [("bar", str(i)) for i in range(1, DISPLAY_BURST)]
        world.advance(0.1)  # one token: the one waiting entry, with the latest data
        assert _shown(world, "update")[-1] == ("bar", "1000")
        assert len(_shown(world, "update")) == DISPLAY_BURST
        world.advance(5)
        assert len(_shown(world, "update")) == DISPLAY_BURST  # nothing more to say
        assert _shown(world, "display") == [("bar", "0")]


def test_new_displays_are_never_merged_and_keep_their_order(vtime):
    with _displayed(vtime, rate=10, count=40) as (world, _):
        world.advance(1.05)  # ten tokens
        assert len(_shown(world, "display")) == DISPLAY_BURST + 10
        world.advance(2)
        assert _shown(world, "display") == [(f"d{i}", str(i)) for i in range(40)]


def test_what_waits_is_published_when_the_program_ends(vtime):
    with _displayed(vtime, rate=1, count=30) as (world, program):
        assert len(_shown(world, "display")) == DISPLAY_BURST
        world.router.program_finished(program.program_id)
        world.settle()
        assert _shown(world, "display") == [(f"d{i}", str(i)) for i in range(30)]


def test_an_update_is_not_merged_into_a_waiting_new_display_of_its_id():
    """An update changes every output area of its id, shown ones too: merging it into a new
    display still waiting would leave the areas already shown with old data."""
    queue = DisplayQueue(rate=1, now=0.0)
    for i in range(DISPLAY_BURST):
        assert queue.offer(HeldDisplay({"i": i}, {}, "x", i > 0, None), 0.0)
    queue.offer(HeldDisplay({"i": "new area"}, {}, "x", False, None), 0.0)
    queue.offer(HeldDisplay({"i": "u1"}, {}, "x", True, None), 0.0)
    queue.offer(HeldDisplay({"i": "u2"}, {}, "x", True, None), 0.0)
    held = queue.drain()
    assert [(d.data["i"], d.update) for d in held] == [("new area", False), ("u2", True)]
    assert queue.merged == 1
