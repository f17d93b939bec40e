"""A full link toward the program: values for an address merge (latest wins), never silently."""

from __future__ import annotations

import dataclasses

from tests.conftest import make_world, quiet_settings


def test_slow_program_gets_latest_values_and_every_merge_is_counted(vtime):
    settings = quiet_settings(program={"outbox_limit": 4})
    world = make_world(vtime, settings)
    try:
        world.open_link()
        program = world.start_program(capacity=2)  # the program reads slowly
        for address in ("/a", "/b"):
            program.subscribe(address)
        world.settle()
        for i in range(100):
            world.front_end.send("/a", i)
            world.front_end.send("/b", -i)
        world.settle()
        snapshot = world.router.program_state()
        assert snapshot.outbox <= 4
        for _ in range(10):
            program.poll()
            world.settle()
        a, b = program.received("/a"), program.received("/b")
        assert a == sorted(a) and a[-1] == 99  # in order, and the newest value arrives
        assert b == sorted(b, reverse=True) and b[-1] == -99
        merged = world.log.find("program.value_merged")
        final = world.router.program_state()
        assert final.merged == len(merged) > 0
        assert len(a) + len(b) + final.merged == 200  # every value delivered or merged
    finally:
        world.router.stop()


def test_values_waiting_when_the_program_finishes_are_counted_as_dropped(vtime):
    world = make_world(vtime)
    try:
        world.open_link()
        program = world.start_program(capacity=1)
        program.subscribe("/a")
        world.settle()
        for i in range(3):
            world.front_end.send("/a", i)
        world.settle()
        world.router.program_finished(program.program_id)
        world.settle()
        dropped = world.log.find("program.values_dropped", reason="finished")
        assert [d["count"] for d in dropped] == [2]
        assert world.router.program_state().dropped == 2
    finally:
        world.router.stop()


def test_settings_are_used_as_given():
    settings = quiet_settings(program={"outbox_limit": 7})
    assert settings.program.outbox_limit == 7
    assert dataclasses.replace(settings).log.console is False
