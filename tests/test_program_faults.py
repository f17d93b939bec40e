"""Programs that misbehave: each is a clear logged error, the kernel is unharmed, and no FIFO
or directory is left behind (the `rig` fixture checks that after every test)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import quiet_settings
from tests.programs.harness import WAIT, Rig, WatchedFrontEnd, make_rig, running_rig


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Rig]:
    yield from running_rig(monkeypatch, tmp_path)


def assert_kernel_unharmed(rig: Rig) -> None:
    run = rig.run("sender.py", "3")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/out")[-3:] == [0, 1, 2]
    assert all(rig.router.health().values())


def faults(rig: Rig, program_id: str) -> list[tuple[str, str]]:
    found = rig.log.find("program.link_fault", program_id=program_id)
    return [(e["reason"], e["detail"]) for e in found]


@pytest.mark.parametrize(
    ("mode", "reason", "detail"),
    [
        ("garbage", "frame too large", "above the program link's limit"),
        ("wrong_secret", "bad secret", "secret is not this run's"),
        ("no_hello", "hello expected", "the first frame must be hello"),
        ("truncated", "truncated frame", "ended inside a frame: 10 of 100 payload bytes"),
        ("oversized", "frame too large", "1048577 bytes is above"),
    ],
)
def test_a_broken_stream_is_a_logged_fault_that_closes_the_link(
    rig: Rig, mode: str, reason: str, detail: str
) -> None:
    run = rig.run("raw.py", mode)
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    [(got_reason, got_detail)] = faults(rig, run.program_id)
    assert got_reason == reason and detail in got_detail
    assert rig.event("program.link_closed", program_id=run.program_id)["reason"] == reason
    assert rig.fe.comm_values("/sneaky") == []
    if mode == "truncated":
        assert rig.fe.comm_values("/whole") == [1]  # whole frames before the cut still count
    assert_kernel_unharmed(rig)


def test_bad_frames_are_logged_and_the_link_keeps_serving(rig: Rig) -> None:
    run = rig.run("raw.py", "bad_frames")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    reasons = [reason for reason, _ in faults(rig, run.program_id)]
    assert reasons == [
        "malformed JSON",
        "malformed JSON",
        "unknown op",
        "bad field",
        "bad field",
        "bad field",
        "bad field",
        "malformed JSON",
    ]
    details = " | ".join(detail for _, detail in faults(rig, run.program_id))
    assert "'value' is missing" in details and "private to the protocol" in details
    assert "NaN is not JSON data" in details and "'fly'" in details
    assert rig.fe.comm_values("/still_serving") == ["yes"]
    assert rig.fe.comm_values("/x") == []
    assert rig.event("program.link_closed", program_id=run.program_id)["reason"] == "program exited"
    assert_kernel_unharmed(rig)


def test_a_program_that_never_opens_its_pipes_is_finished_and_cleaned_up(rig: Rig) -> None:
    run = rig.run("no_link.py", "exit")
    assert rig.finish(run) == 0
    assert rig.fe.output("stdout") == "no link: exit\n"
    assert rig.event("program.finished", program_id=run.program_id)["reason"] == "exited"
    assert rig.router.program_state().program_id is None


def test_a_program_that_opens_one_pipe_only(rig: Rig) -> None:
    run = rig.run("no_link.py", "one_pipe")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/half") == [1]
    assert faults(rig, run.program_id) == []


def test_a_hanging_program_that_never_opens_its_pipes_can_be_killed(rig: Rig) -> None:
    run = rig.run("no_link.py", "hang")
    rig.fe.wait_for(lambda: "hang" in rig.fe.output("stdout"))
    rig.fe.send("/ignored", 1)  # values for a program without a subscription are dropped
    run.kill()
    assert rig.finish(run) == -signal.SIGKILL
    assert rig.event("program.exited", program_id=run.program_id)["returncode"] == -9


class StallingFrontEnd(WatchedFrontEnd):
    """Its stream publishing blocks until released: the program's stdout pipe fills up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stalled = threading.Event()
        self.release = threading.Event()

    def stream(self, name: str, text: str, parent: Any) -> None:
        self.stalled.set()
        self.release.wait(WAIT)
        super().stream(name, text, parent)


def test_a_program_hung_on_a_full_pipe_is_killed_and_cleaned_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = quiet_settings(program={"drain_timeout": 0.2})
    r = make_rig(monkeypatch, tmp_path, config, StallingFrontEnd)
    try:
        code = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"
        run = r.router.run_program([sys.executable, "-c", code])
        assert r.fe.stalled.wait(WAIT)  # the pipe fills: the program blocks in write
        run.kill()
        assert r.finish(run) == -signal.SIGKILL
        event = r.event("program.drain_timeout", program_id=run.program_id)
        assert event["output_open"] and event["requests_drained"] is True
        assert r.leftovers() == []
    finally:
        r.fe.release.set()
        r.router.stop()


def test_stopping_the_router_kills_the_running_program_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    r = make_rig(monkeypatch, tmp_path)
    run = r.run("no_link.py", "hang")
    r.fe.wait_for(lambda: "hang" in r.fe.output("stdout"))
    r.router.stop()
    assert run.wait(WAIT) == -signal.SIGKILL
    assert r.event("program.killed", program_id=run.program_id)["reason"] == "router stopping"
    assert r.leftovers() == []
