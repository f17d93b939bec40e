"""The systems under test, each started as its own kernel process and driven by the same
`FrontEnd` client: commrouter's reference kernel, a real ipykernel, the conformant floor, and
the minimal floor (the floor without the status busy/idle pair around each comm message: one
IOPub message per echo).

commrouter's kernel is started with `flow.max_messages_per_second` raised (`FLOW_RATE`, through
`COMMROUTER_FLOW_MAX_MESSAGES_PER_SECOND`): its default, 400, keeps a kernel behind
jupyter_server under the server's IOPub rate limit and so caps sequential round trips at about
400 a second; the benchmark talks to the kernel directly over ZeroMQ, with no server between.

Each system offers the same conversation: `start()` (process up, comm open and acknowledged),
`load(n)` (an echo for `n` subscribed addresses is in place), `stop()`. For commrouter and the
floor the echo is `echo_program.py`, run as the cell's program behind two FIFOs; for ipykernel
it is a comm target registered by executing a cell (the path Python users have today).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import zmq

from benchmarks.client import FrontEnd, KernelGone
from benchmarks.echo_program import HOT, READY, STOP
from benchmarks.threads import thread_names

ROOT = Path(__file__).resolve().parent.parent
ECHO_PROGRAM = Path(__file__).resolve().parent / "echo_program.py"
IPYKERNEL_TARGET = "commrouter-bench"
FLOW_RATE = 100_000  # commrouter's flow.max_messages_per_second here (0: the kernel's default)
FLOW_ENV = "COMMROUTER_FLOW_MAX_MESSAGES_PER_SECOND"

# Executed once in the ipykernel: a comm target that acknowledges the open (with no `seq`: its
# values are not numbered, and the client acknowledges nothing) and echoes every comm_msg whose
# address is subscribed (BENCH_SUBS), back on the same comm, one message per value.
IPYKERNEL_SETUP = f"""
BENCH_SUBS = {{{HOT!r}}}

def _bench_target(comm, open_msg):
    def on_msg(msg):
        data = msg["content"]["data"]
        if data.get("address") in BENCH_SUBS:
            comm.send(data)
    comm.on_msg(on_msg)
    comm.send({{"address": "#comm_open_ack", "value": True}})

get_ipython().kernel.comm_manager.register_target({IPYKERNEL_TARGET!r}, _bench_target)
"""


def ipykernel_load(count: int) -> str:
    return (
        f"BENCH_SUBS.clear(); BENCH_SUBS.add({HOT!r}); "
        f"BENCH_SUBS.update(f'{HOT}-{{i}}' for i in range(1, {count}))"
    )


def echo_cell(count: int) -> str:
    path = str(ECHO_PROGRAM)
    return (
        f"import runpy, sys; sys.argv = [{path!r}, '{count}']; "
        f"runpy.run_path({path!r}, run_name='__main__')"
    )


def write_connection_file(directory: Path) -> tuple[Path, dict[str, Any], str]:
    """A connection file named as jupyter_server names them (`kernel-<id>.json`), free ports."""
    from jupyter_client.connect import write_connection_file as write

    kernel_id = str(uuid.uuid4())
    path = directory / f"kernel-{kernel_id}.json"
    write(str(path), ip="127.0.0.1", key=uuid.uuid4().hex.encode(), transport="tcp")
    return path, json.loads(path.read_text()), kernel_id


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a live process, from /proc/<pid>/stat (0.0 if gone)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int | None) -> int:
    """Resident set size of a live process, from /proc/<pid>/status (0 if gone)."""
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class System:
    """One kernel process and its front-end client."""

    name = "system"
    target = "commrouter"
    batches = True  # the kernel accepts front-end batch messages (docs/protocol.md)

    def __init__(
        self, workdir: Path, *, timeout: float = 60.0, label: str = "", flow_rate: int = FLOW_RATE
    ) -> None:
        self.flow_rate = flow_rate  # commrouter only
        self.label = label  # tells apart several kernels of one system (one per load)
        self.workdir = workdir / f"{self.name}{label}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.connection_file, self.connection, self.kernel_id = write_connection_file(self.workdir)
        self.log_path = self.workdir / "kernel.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: FrontEnd | None = None
        self.program_pid: int | None = None
        self.subscriptions = 0
        self.threads: dict[str, str] = {}  # OS thread id -> Python name, once the echo runs
        self._execution: str | None = None  # the running echo cell's msg_id

    # ------------------------------------------------------------- what differs

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": _pythonpath()}

    def open_data(self) -> dict[str, Any]:
        return {"kernel_id": self.kernel_id}

    def after_connect(self) -> None:
        """Set-up before the comm is opened (ipykernel registers its target here)."""

    # ---------------------------------------------------------------- lifecycle

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv(),
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.client = FrontEnd(self.connection, self.describe)
        self.client.batches = self.batches
        self.client.connect(self.timeout)
        self.after_connect()
        self.client.open_comm(self.target, self.open_data(), self.timeout)

    def load(self, count: int, timeout: float | None = None) -> float:
        """Make the echo serve `count` subscribed addresses; returns the seconds it took."""
        seconds = self._load(count, timeout)
        if self.pid is not None:
            self.threads = thread_names(self.pid)
        return seconds

    def _load(self, count: int, timeout: float | None = None) -> float:
        client = self._client()
        began = time.perf_counter()
        self._stop_program()
        self._execution = client.execute(echo_cell(count))
        client.wait_until(
            lambda: client.has_comm(READY),
            timeout or self.timeout,
            f"{self.name}: echo program ready with {count} subscriptions",
        )
        ready = client.take_comm(READY)
        self.program_pid = int(ready["pid"])
        self.subscriptions = count
        return time.perf_counter() - began

    def _stop_program(self) -> None:
        if self._execution is None:
            return
        client = self._client()
        client.comm_send(STOP, True)
        reply = client.reply_to(self._execution, self.timeout, f"{self.name}: echo cell ended")
        self._execution = None
        self.program_pid = None
        if reply.content.get("status") != "ok":
            raise KernelGone(f"{self.name}: the echo cell failed: {dict(reply.content)}")

    def stop(self) -> None:
        """Stop the echo, ask the kernel to shut down, and make sure the process is gone."""
        try:
            alive = self.process is not None and self.process.poll() is None
            if self.client is not None and alive:
                self._stop_program()
                self.client.send("shutdown_request", {"restart": False})
        except (KernelGone, zmq.ZMQError):
            pass  # stopping anyway: the process is killed below if it does not exit
        finally:
            if self.process is not None:
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(10)
            if self.client is not None:
                self.client.close()
                self.client = None

    # ------------------------------------------------------------------ helpers

    def _client(self) -> FrontEnd:
        assert self.client is not None, "start() first"
        return self.client

    def describe(self) -> str:
        state = "not started"
        if self.process is not None:
            code = self.process.poll()
            state = "running" if code is None else f"exited with {code}"
        tail = ""
        if self.log_path.exists():
            tail = self.log_path.read_bytes()[-1500:].decode("utf-8", "replace")
        return f"[{self.name}{self.label}: kernel {state}; log {self.log_path}]" + (
            f"\nkernel log tail:\n{tail}" if tail else ""
        )


class Commrouter(System):
    """The reference kernel: `python -m commrouter.kernel -f CONN`, default settings."""

    name = "commrouter"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "commrouter.kernel", "-f", str(self.connection_file)]

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.flow_rate:
            env[FLOW_ENV] = str(self.flow_rate)
        return env


class Floor(System):
    """The no-framework forwarder (benchmarks/floor.py) with the same echo program."""

    name = "floor"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.floor", "-f", str(self.connection_file)]


class Minimal(Floor):
    """The floor publishing one IOPub message per echo: no status pair around comm messages
    (not conformant: a front-end tracking the kernel's state would never see it busy)."""

    name = "minimal"

    def argv(self) -> list[str]:
        return [*super().argv(), "--minimal"]


class IPyKernel(System):
    """A real ipykernel; the echo is a comm target registered by executing a cell."""

    name = "ipykernel"
    target = IPYKERNEL_TARGET
    batches = False  # one value per comm message: what an ipykernel comm takes today

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "ipykernel_launcher", "-f", str(self.connection_file)]

    def env(self) -> dict[str, str]:
        ipython_dir = self.workdir / "ipython"
        return {**super().env(), "IPYTHONDIR": str(ipython_dir)}

    def open_data(self) -> dict[str, Any]:
        return {}

    def after_connect(self) -> None:
        self._run_cell(IPYKERNEL_SETUP, "register the echo comm target")

    def _load(self, count: int, timeout: float | None = None) -> float:
        began = time.perf_counter()
        self._run_cell(ipykernel_load(count), f"subscribe {count} addresses", timeout)
        self.subscriptions = count
        return time.perf_counter() - began

    def _stop_program(self) -> None:
        return

    def _run_cell(self, code: str, what: str, timeout: float | None = None) -> None:
        client = self._client()
        msg_id = client.execute(code)
        reply = client.reply_to(msg_id, timeout or self.timeout, f"ipykernel: {what}")
        if reply.content.get("status") != "ok":
            raise KernelGone(f"ipykernel: {what} failed: {dict(reply.content)}")


SYSTEMS: dict[str, type[System]] = {
    "commrouter": Commrouter,
    "ipykernel": IPyKernel,
    "floor": Floor,
    "minimal": Minimal,
}


def ipykernel_available() -> bool:
    try:
        import ipykernel  # noqa: F401
    except ImportError:
        return False
    return True


def _pythonpath() -> str:
    existing = os.environ.get("PYTHONPATH")
    return str(ROOT) if not existing else f"{ROOT}{os.pathsep}{existing}"
