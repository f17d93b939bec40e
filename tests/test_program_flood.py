"""10,000 values each way through real pipes: none lost silently.

Program -> front-end: the kernel holds a fast sender (it stops reading the pipe once
`program.inflight_limit` requests wait), so every value arrives, in order.
Front-end -> a slow program: the executor's outbox merges per address once full; every value
is either delivered or merged (counted and logged), and the newest value always gets through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import quiet_settings
from tests.programs.harness import make_rig, wait_until

N = 10_000


def test_ten_thousand_sends_from_the_program_all_arrive_in_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    r = make_rig(monkeypatch, tmp_path, quiet_settings(program={"inflight_limit": 16}))
    try:
        run = r.run("sender.py", str(N))
        assert r.finish(run, 30) == 0, r.fe.output("stderr")
        assert r.fe.comm_values("/out") == list(range(N))
        stats = r.event("pipe.closed", program_id=run.program_id)
        assert stats["frames_in"] == N + 2  # hello, the values, sync
        # whether the reader had to stop depends on the machine's speed; that it stops and the
        # program's writes wait is tested deterministically in test_pipe_link.py
        assert r.log.find("connection.value_dropped") == []
    finally:
        r.router.stop()
    assert r.leftovers() == []


def test_ten_thousand_values_to_a_slow_program_are_delivered_or_merged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    r = make_rig(monkeypatch, tmp_path, quiet_settings(program={"outbox_limit": 64}))
    gate = tmp_path / "gate"
    try:
        run = r.run("flood_in.py", str(gate))
        r.fe.wait_for(lambda: r.fe.comm_values("/ready"))
        for i in range(N):
            r.fe.send("/flood", i)

        def accounted() -> bool:
            s = r.router.program_state()
            return s.delivered + s.merged + s.outbox == N

        wait_until(accounted)
        state = r.router.program_state()
        assert state.merged > 0  # the program's pipe filled up: more than fits in it was sent
        gate.touch()  # let the program's callback go on
        r.fe.send("/done", True)
        assert r.finish(run, 30) == 0, r.fe.output("stderr")

        [seen] = r.fe.comm_values("/count")
        state = r.router.program_state()
        assert state.dropped == 0
        assert state.delivered + state.merged == N + 1  # + /done
        assert seen["count"] == state.delivered - 1
        assert seen["last"] == N - 1 and seen["in_order"]  # the newest value is never lost
        assert len(r.log.find("program.value_merged", address="/flood")) == state.merged
        assert r.event("pipe.closed", program_id=run.program_id)["refused"] > 0
    finally:
        r.router.stop()
    assert r.leftovers() == []
