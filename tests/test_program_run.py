"""Real cell programs on real FIFOs: the program API end to end, through the router."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from commrouter.transports.process import ProgramRun
from tests.conftest import quiet_settings
from tests.programs.harness import Rig, comm_items, make_rig, running_rig


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Rig]:
    yield from running_rig(monkeypatch, tmp_path)


def test_subscribed_program_receives_values_in_order(rig: Rig) -> None:
    run = rig.run("echo.py", "200")
    rig.fe.wait_for(lambda: rig.fe.comm_values("/ready"))
    for i in range(200):
        rig.fe.send("/in", i)
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/got") == [list(range(200))]
    assert rig.router.subscriptions() == frozenset()  # reset when the program finished


def test_sends_reach_the_front_end_and_sync_waits_for_them(rig: Rig) -> None:
    run = rig.run("sender.py", "1000")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/out") == list(range(1000))
    # the program printed "synced" once sync returned: every value was published before
    published = rig.fe.published
    synced_at = next(
        i for i, p in enumerate(published) if p.kind == "stream" and "synced" in p.data["text"]
    )
    last_value_at = max(
        i
        for i, p in enumerate(published)
        if p.kind == "comm_msg" and any(x.get("address") == "/out" for x in comm_items(p))
    )
    assert last_value_at < synced_at


def test_read_answered_by_the_page_and_read_of_nothing_failing_fast(rig: Rig) -> None:
    rig.fe.synced["/x"] = {"answer": 42}
    run = rig.run("reader.py")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/answer") == [{"answer": 42}]
    [no_value] = rig.fe.comm_values("/no_value")  # the page said it holds nothing there:
    assert no_value["after"] < 10  # an answer, not the 30 s timeout
    assert "/nothing" in no_value["error"] and "no synced variable" in no_value["error"]
    assert rig.fe.comm_values("/default") == ["fallback"]
    assert rig.router.subscriptions() == frozenset()


def test_a_headless_run_completes_with_one_warning(monkeypatch, tmp_path) -> None:
    """No page ever opens the comm (nbconvert, papermill): sends are counted as not shown,
    sync returns, and the cell gets one warning."""
    config = quiet_settings(connection={"wait_for_connection_timeout": 0.3})
    r = make_rig(monkeypatch, tmp_path, config, auto_open=False)
    try:
        code = (
            "from commrouter import program as p\n"
            "for i in range(3):\n    p.send('/a', i)\n    p.sync()\n"
            "print('done')"
        )
        run = r.router.run_program([sys.executable, "-c", code])
        assert r.finish(run) == 0, r.fe.output("stderr")
        assert r.fe.output("stdout") == "done\n"
        assert r.fe.output("stderr").count("no page has opened this kernel's link") == 1
        assert r.router.link_state().not_shown == 3
    finally:
        r.router.stop()
    assert r.leftovers() == []


def test_display_and_update_by_id(rig: Rig) -> None:
    run = rig.run("display.py")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    by_id = {p.display_id: p.data for p in rig.fe.of_kind("display")}
    assert by_id["d1"] == {"text/html": "<b>first</b>"}
    assert by_id[None] == {"text/markdown": "*md*", "text/plain": "md"}
    assert by_id["img"] == {"image/png": "iVBORw0K"}
    [update] = [p for p in rig.fe.of_kind("update") if p.display_id == "d1"]
    assert update.data == {"image/svg+xml": "<svg/>", "text/plain": "second"}


def test_stdout_and_stderr_stream_while_the_program_runs(rig: Rig) -> None:
    parent = {"msg_id": "execute-1"}
    run = rig.run("streams.py", parent=parent)
    rig.fe.wait_for(lambda: "one\n" in rig.fe.output("stdout"))
    rig.fe.wait_for(lambda: rig.fe.comm_values("/waiting"))
    assert "err one\n" in rig.fe.output("stderr")
    assert not run.done  # still waiting for /go: the output came as it was written
    rig.fe.send("/go", "now")
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.output("stdout") == "one\ntwo now\ncaf\ufffd \ufffd\n"
    assert all(p.parent == parent for p in rig.fe.of_kind("stream"))


def test_a_crash_mid_stream_is_reported_and_the_router_serves_the_next_program(rig: Rig) -> None:
    run = rig.run("crash.py")
    assert rig.finish(run) == 1
    assert "RuntimeError: boom in the middle of the stream" in rig.fe.output("stderr")
    assert rig.fe.comm_values("/before_crash") == list(range(50))  # drained after the exit
    assert rig.event("program.exited", program_id=run.program_id)["returncode"] == 1
    assert rig.leftovers() == []

    rig.fe.synced["/x"] = "still here"
    second = rig.run("reader.py")
    assert rig.finish(second) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/answer") == ["still here"]
    assert all(rig.router.health().values())


def test_a_raising_callback_is_reported_and_counted(rig: Rig) -> None:
    run = rig.run("callback_error.py")
    rig.fe.wait_for(lambda: rig.fe.comm_values("/ready"))
    rig.fe.send("/in", 7)
    assert rig.finish(run) == 0, rig.fe.output("stderr")
    assert rig.fe.comm_values("/errors") == [1]
    stderr = rig.fe.output("stderr")
    assert "callback error #1" in stderr and "ValueError: bad value 7" in stderr
    assert "Traceback" in stderr


def test_interrupt_reaches_a_program_blocked_in_listen(rig: Rig) -> None:
    run = rig.run("listener.py")
    rig.fe.wait_for(lambda: rig.fe.comm_values("/listening"))
    run.interrupt()
    assert rig.finish(run) in (1, -signal.SIGINT)
    assert "KeyboardInterrupt" in rig.fe.output("stderr")
    assert rig.event("program.signalled", program_id=run.program_id)["signum"] == signal.SIGINT


def test_handle_reports_spawn_failure_and_signals_after_exit_are_ignored(rig: Rig) -> None:
    run = rig.router.run_program(["/nonexistent/program"])
    try:
        run.wait(5)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("a program that cannot start must fail its handle")
    assert run.returncode is None and run.done
    assert rig.event("program.spawn_failed", program_id=run.program_id)

    quick = rig.router.run_program([sys.executable, "-c", "pass"], program_id="quick")
    assert isinstance(quick, ProgramRun) and quick.program_id == "quick"
    assert rig.finish(quick) == 0 and quick.returncode == 0
    quick.kill()
    rig.router.program_state()  # the signal was handled before this answer
    assert rig.event("program.signal_ignored", program_id="quick")
