"""Every exit of the real kernel cleans up, during and after traffic: signals, shutdown,
restart, SIGKILL; and control is answered during a shell flood (docs/reliability.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.kernel_harness import iopub_until, log_events, open_comm, running_kernel
from tests.wire_attack import RawPeer, dumps, header

TIMEOUT = 30
EXIT_BOUND = 10.0  # seconds a kernel may take to exit once told to

# A cell that says where it runs, listens on /in and counts what it gets.
LISTENING_CELL = """
import os
from commrouter import program
print('pid', os.getpid(), os.path.dirname(os.environ['COMMROUTER_LINK_TO_KERNEL']), flush=True)
with program.listen('/in') as values:
    program.send('/listening', True)
    for n, _ in enumerate(values):
        pass
"""


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple]:
    links = tmp_path / "links"
    links.mkdir()
    with running_kernel(tmp_path, env={"TMPDIR": str(links)}) as (manager, client, log_file):
        yield manager, client, log_file, links


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(FileNotFoundError):  # a zombie not reaped yet counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


def wait_until(predicate, timeout: float = EXIT_BOUND, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout} s")
        time.sleep(0.02)


def start_listening_cell(manager, client) -> tuple[str, int, Path, str]:
    """Run LISTENING_CELL, open the comm as a page; returns (msg_id, pid, link dir, comm)."""
    msg_id = client.execute(LISTENING_CELL)
    chunks: list[str] = []

    def line_printed(message: dict) -> bool:
        if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
            chunks.append(message["content"]["text"])
        return "\n" in "".join(chunks)

    iopub_until(client, line_printed, TIMEOUT)
    _, pid, directory = "".join(chunks).split()
    comm_id, _ = open_comm(client, manager, TIMEOUT)
    iopub_until(
        client,
        lambda m: m["msg_type"] == "comm_msg" and m["content"]["data"]["address"] == "/listening",
        TIMEOUT,
    )
    return msg_id, int(pid), Path(directory), comm_id


class Flood:
    """A thread sending comm_msgs for `/in` on a raw shell peer until stopped."""

    def __init__(self, manager, comm_id: str, msg_type: str = "comm_msg") -> None:
        self.peer = RawPeer(manager)
        self.comm_id = comm_id
        self.msg_type = msg_type
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        content = {"comm_id": self.comm_id, "data": {"address": "/in", "value": 1}}
        while not self._stop.is_set():
            try:  # never blocks: a socket must not be closed under a blocked send
                self.peer.send_parts(
                    dumps(header(self.msg_type)), content=dumps(content), flags=zmq.NOBLOCK
                )
            except zmq.Again:  # the kernel is gone or not reading: its queue is full
                time.sleep(0.01)
                continue
            self.sent += 1
            if self.sent % 500 == 0:
                time.sleep(0.001)  # let the test's own thread in

    def __enter__(self) -> Flood:
        self._thread.start()
        wait_until(lambda: self.sent > 2000, TIMEOUT, "a flood under way")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self.peer.close()


def assert_clean_exit(manager, pid: int, directory: Path, links: Path) -> int:
    process = manager.provisioner.process
    returncode = process.wait(EXIT_BOUND)
    wait_until(lambda: gone(pid), what=f"the cell's program {pid} gone")
    wait_until(lambda: not directory.exists(), what="the link's directory removed")
    assert list(links.iterdir()) == []
    return returncode


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_during_traffic_stops_the_kernel_cleanly(kernel, signum) -> None:
    manager, client, log_file, links = kernel
    _, pid, directory, comm_id = start_listening_cell(manager, client)
    with Flood(manager, comm_id):
        os.kill(manager.provisioner.process.pid, signum)
        assert assert_clean_exit(manager, pid, directory, links) == 0
    [stopping] = log_events(log_file, "kernel.stopping")
    assert stopping["reason"] == signal.Signals(signum).name


def test_control_is_answered_within_a_bound_during_a_shell_flood(kernel) -> None:
    manager, client, _, _ = kernel
    _, _pid, _directory, comm_id = start_listening_cell(manager, client)
    control = RawPeer(manager, "control")

    def answered_in_time(request: str) -> None:
        started = time.monotonic()
        msg_id = control.request(request)
        reply = control.reply_to(msg_id, TIMEOUT)
        assert reply is not None and reply["content"]["status"] == "ok"
        assert time.monotonic() - started < 2.0, request

    try:
        with Flood(manager, comm_id, "comm_msg"):  # values for the running cell
            answered_in_time("kernel_info_request")
            answered_in_time("interrupt_request")  # ends the cell
        with Flood(manager, comm_id, "kernel_info_request"):  # requests, each answered
            answered_in_time("kernel_info_request")
            answered_in_time("interrupt_request")
    finally:
        control.close()


@pytest.mark.parametrize("when", ["during", "after"])
def test_shutdown_with_shell_traffic_exits_cleanly(kernel, when) -> None:
    manager, client, log_file, links = kernel
    _, pid, directory, comm_id = start_listening_cell(manager, client)
    with Flood(manager, comm_id):
        started = time.monotonic()
        reply = client.shutdown(reply=True, timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"
        assert time.monotonic() - started < 2.0
        if when == "after":
            time.sleep(0.5)  # traffic keeps coming after the shutdown was handled
        assert assert_clean_exit(manager, pid, directory, links) == 0
    assert log_events(log_file, "kernel.stopping")[0]["reason"] == "shutdown_request"


def test_restart_during_traffic_needs_no_signal(kernel) -> None:
    manager, client, _, links = kernel
    _, pid, directory, comm_id = start_listening_cell(manager, client)
    old = manager.provisioner.process
    with Flood(manager, comm_id):
        manager.restart_kernel(now=False)
    assert old.wait(EXIT_BOUND) == 0  # it exited by itself, not by jupyter_client's SIGTERM
    wait_until(lambda: gone(pid) and not directory.exists(), what="program and pipes gone")
    client.wait_for_ready(timeout=60)
    assert client.kernel_info(reply=True, timeout=TIMEOUT)["content"]["status"] == "ok"
    assert [p.name for p in links.iterdir()] == []


def test_a_program_outlives_no_kernel_killed_by_sigkill(kernel) -> None:
    manager, client, _, links = kernel
    _, pid, directory, comm_id = start_listening_cell(manager, client)
    with Flood(manager, comm_id):
        os.kill(manager.provisioner.process.pid, signal.SIGKILL)
        assert manager.provisioner.process.wait(EXIT_BOUND) == -signal.SIGKILL
    wait_until(lambda: gone(pid), what=f"the orphaned program {pid} gone")
    wait_until(lambda: not directory.exists(), what="the link's directory removed")
    assert list(links.iterdir()) == []


def test_a_program_killed_during_a_page_flood_ends_its_cell_at_once(kernel) -> None:
    manager, client, _, _ = kernel
    msg_id, pid, _directory, comm_id = start_listening_cell(manager, client)
    with Flood(manager, comm_id) as flood:
        wait_until(lambda: flood.sent > 20000, TIMEOUT, "a long flood")
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        reply = client.get_shell_msg(timeout=TIMEOUT)
        took = time.monotonic() - killed
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert took < 3.0, f"the cell's reply came {took:.1f} s after its program was killed"
    assert client.kernel_info(reply=True, timeout=TIMEOUT)["content"]["status"] == "ok"


@pytest.fixture
def kernel_with_small_inboxes(tmp_path: Path) -> Iterator[tuple]:
    links = tmp_path / "links"
    links.mkdir()
    env = {"TMPDIR": str(links), "COMMROUTER_ACTORS_INBOX_LIMIT": "50"}
    with running_kernel(tmp_path, env=env) as (manager, client, log_file):
        yield manager, client, log_file, links


def test_a_sustained_shell_flood_is_held_at_the_wire(kernel_with_small_inboxes) -> None:
    """The actors' inboxes stay bounded: past `actors.inbox_limit` waiting messages (50 here;
    the default 10,000 is more than this machine's flood reaches) the kernel stops reading
    shell (zmq queues, then holds the sender), and reads it again once they drained."""
    manager, client, log_file, _ = kernel_with_small_inboxes
    _, _pid, _directory, comm_id = start_listening_cell(manager, client)
    control = RawPeer(manager, "control")
    try:
        with Flood(manager, comm_id):
            wait_until(lambda: log_events(log_file, "kernel.shell_held"), TIMEOUT, "shell held")
            msg_id = control.request("kernel_info_request")  # control is read while held
            assert control.reply_to(msg_id, TIMEOUT)["content"]["status"] == "ok"
        wait_until(lambda: log_events(log_file, "kernel.shell_resumed"), TIMEOUT, "resumed")
    finally:
        control.close()
    held = log_events(log_file, "kernel.shell_held")
    assert all(50 < e["backlog"] < 50 + 3 * 32 for e in held)  # at most a batch's worth more
    assert client.kernel_info(reply=True, timeout=TIMEOUT)["content"]["status"] == "ok"
