"""A real ipykernel started by jupyter_client, a notebook client that runs cells, and a page
client that acts as the browser's commrouter hub over its own channels (as the hub opens its
own WebSocket): it opens the comm when the install display comes, answers pings and reads,
and, like the hub, uses a kernel subshell for its comm traffic when the kernel offers them.
Every wait is bounded."""

from __future__ import annotations

import os
import queue
import re
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.manager import KernelManager

from commrouter.transports.page_stream import PageStream

TIMEOUT = 60.0
INSTALL = re.compile(r'data-commrouter-install="([^"]+)"')


@contextmanager
def running_ipykernel(
    tmp: Path, transport: str = "script"
) -> Iterator[tuple[KernelManager, BlockingKernelClient, Path]]:
    """Yield (manager, notebook client, router log file) for a fresh ipykernel (python3), whose
    commrouter uses the page `transport` ("script": `Page` below plays the install script's hub;
    "widget": the link widget)."""
    manager = KernelManager(kernel_name="python3")
    manager.connection_file = str(tmp / f"kernel-{uuid.uuid4()}.json")
    log_file = tmp / "router.jsonl"
    env = {
        **os.environ,
        "COMMROUTER_LOG_FILE": str(log_file),
        "COMMROUTER_LOG_LEVEL": "debug",
        "COMMROUTER_CONNECTION_TRANSPORT": transport,
        # after a burst of 10, displays wait for the rate: the cells' ends and the unload must
        # publish what waits (with the default of 50 a second it would rarely wait at all)
        "COMMROUTER_PROGRAM_DISPLAY_MESSAGES_PER_SECOND": "1",
    }
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield manager, client, log_file
    finally:
        client.stop_channels()
        if manager.has_kernel and manager.is_alive():
            manager.shutdown_kernel(now=False)


class Cell:
    """One execution: its request id, and (once `wait`ed) its reply and IOPub messages."""

    def __init__(self, client: BlockingKernelClient, code: str) -> None:
        self.client = client
        self.msg_id = client.execute(textwrap.dedent(code))
        self.reply: dict[str, Any] | None = None
        self.outputs: list[dict[str, Any]] = []

    def wait(self, timeout: float = TIMEOUT) -> Cell:
        """Until the cell's idle status, then its reply."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"cell {self.msg_id} not idle within {timeout} s: {self.outputs}"
            message = self.client.get_iopub_msg(timeout=left)
            self.outputs.append(message)
            if (
                message["parent_header"].get("msg_id") == self.msg_id
                and message["msg_type"] == "status"
                and message["content"]["execution_state"] == "idle"
            ):
                break
        while self.reply is None:
            reply = self.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if reply["parent_header"].get("msg_id") == self.msg_id:
                self.reply = reply
        return self

    def wait_for_text(self, text: str, timeout: float = TIMEOUT) -> None:
        """Until the cell (still running) printed `text` on stdout."""
        deadline = time.monotonic() + timeout
        while text not in self.stdout:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} within {timeout} s: {self.stdout!r}"
            self.outputs.append(self.client.get_iopub_msg(timeout=left))

    def mine(self) -> list[dict[str, Any]]:
        return [m for m in self.outputs if m["parent_header"].get("msg_id") == self.msg_id]

    def stream(self, name: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.mine()
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.reply["content"]["status"] == "ok"


def run(client: BlockingKernelClient, code: str, timeout: float = TIMEOUT) -> Cell:
    """Run a cell to its end; asserts it succeeded and wrote nothing to stderr."""
    cell = Cell(client, code).wait(timeout)
    assert cell.ok, (cell.reply, cell.stream("stderr"))
    assert cell.stream("stderr") == "", cell.stream("stderr")
    return cell


class Page:
    """The browser's hub, played by a jupyter_client client on its own channels and thread."""

    def __init__(self, manager: KernelManager, *, subshell: bool = True) -> None:
        # its own session (the manager's clients share one, and with it their shell identity)
        self.client = BlockingKernelClient(connection_file=manager.connection_file)
        self.client.load_connection_file()
        self.use_subshell = subshell
        self.subshell_id: str | None = None
        self.comm_id: str | None = None
        self.values: dict[str, Any] = {}  # what the page answers to reads, by address
        self.received: list[tuple[str, Any, str]] = []  # (address, value, parent msg_id)
        self.opened = threading.Event()
        self.installs = 0
        self.numbering = PageStream()
        self._outbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-page", daemon=True)

    def __enter__(self) -> Page:
        self.client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.stop_channels()

    # ------------------------------------------------------------------ test thread API

    def send(self, address: str, value: Any) -> None:
        self._outbox.put((address, value))

    def wait_open(self, timeout: float = TIMEOUT) -> None:
        assert self.opened.wait(timeout), "the page's comm was not acknowledged"

    def wait_value(self, address: str, timeout: float = TIMEOUT) -> tuple[Any, str]:
        """The first value received at `address` (and the msg_id of its parent)."""
        with self._cond:
            found = self._cond.wait_for(
                lambda: [r for r in self.received if r[0] == address], timeout
            )
        assert found, f"no value at {address!r} within {timeout} s: {self.received}"
        return found[0][1], found[0][2]

    # ------------------------------------------------------------------- page thread

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self._outbox.empty() and self.opened.is_set():
                address, value = self._outbox.get()
                self._comm_msg({"address": address, "value": value})
            try:
                message = self.client.iopub_channel.get_msg(timeout=0.05)
            except queue.Empty:
                continue
            self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind, content = message["msg_type"], message["content"]
        if kind in ("display_data", "update_display_data"):
            found = INSTALL.search(content.get("data", {}).get("text/html", ""))
            if found:
                self._open(found.group(1))
        elif kind == "comm_close" and content.get("comm_id") == self.comm_id:
            self.opened.clear()
        elif kind == "comm_msg" and content.get("comm_id") == self.comm_id:
            data = content["data"]
            address = data.get("address")
            if address == "#comm_open_ack":
                self.numbering.opened(data.get("value"))
                self.opened.set()
            elif address == "#heartbeat/ping":
                self._comm_msg({"address": "#heartbeat/pong", "value": data.get("value")})
            elif "seq" in data:  # numbered values and read requests: taken once, in order
                items, gap = self.numbering.accept(data)
                parent = message["parent_header"].get("msg_id", "")
                for item in items:
                    self._item(item, parent)
                ack = {"address": "#ack", "value": self.numbering.received}
                self._comm_msg({**ack, "gap": True} if gap else ack)

    def _item(self, item: dict[str, Any], parent: str) -> None:
        address = item.get("address")
        if item.get("read_request"):
            if address in self.values:
                self._comm_msg({"address": address, "value": self.values[address]})
            return
        with self._cond:
            self.received.append((address, item.get("value"), parent))
            self._cond.notify_all()

    def _open(self, kernel_id: str) -> None:
        self.installs += 1
        self.opened.clear()
        self.numbering = PageStream()  # a new install: as a fresh hub (no resume)
        if self.use_subshell:  # one per link, as the hub does: a restarted kernel has new ones
            self.subshell_id = None
            self.subshell_id = self._create_subshell()
        self.comm_id = uuid.uuid4().hex
        content = {"comm_id": self.comm_id, "target_name": "commrouter"}
        self._shell("comm_open", {**content, "data": {"kernel_id": kernel_id}})

    def _create_subshell(self) -> str | None:
        """As the hub does: only when kernel_info lists "kernel subshells"."""
        # on control, like the hub: on shell it would wait behind a running cell. The channels'
        # own blocking calls: jupyter_client's sync wrappers are for one thread
        self.client.control_channel.send(self.client.session.msg("kernel_info_request", {}))
        info = self._reply(self.client.control_channel.get_msg)
        if "kernel subshells" not in info["content"].get("supported_features", []):
            return None
        self.client.control_channel.send(self.client.session.msg("create_subshell_request", {}))
        return self._reply(self.client.control_channel.get_msg)["content"]["subshell_id"]

    def _reply(self, get: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        return get(timeout=TIMEOUT)

    def _comm_msg(self, data: dict[str, Any]) -> None:
        self._shell("comm_msg", {"comm_id": self.comm_id, "data": data})

    def _shell(self, msg_type: str, content: dict[str, Any]) -> None:
        message = self.client.session.msg(msg_type, content)
        if self.subshell_id is not None:
            message["header"]["subshell_id"] = self.subshell_id
        self.client.shell_channel.send(message)
