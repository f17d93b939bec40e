"""The widget transport at the host edge, in a real ipykernel (started by jupyter_client), with a
client playing the widget manager and the link widget's module: the widget's comm_open carries
the module and the config; a window opens the link with a custom message and gets
`#comm_open_ack`; values go both ways as window-tagged custom messages; malformed custom
messages are logged with their reason and lose nothing else; another window's messages are
refused by the router; `request_state` (a reload) gets the last values."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import BlockingKernelClient, KernelManager

from tests.ipykernel_harness import TIMEOUT, Cell, run, running_ipykernel

pytestmark = pytest.mark.timeout(180)


class WidgetPage:
    """One page view of the link widget: a window id, its custom messages, on its own client."""

    def __init__(self, manager: KernelManager) -> None:
        self.client = BlockingKernelClient(connection_file=manager.connection_file)
        self.client.load_connection_file()
        self.window = uuid.uuid4().hex
        self.model_id: str | None = None
        self.subshell_id: str | None = None
        self.on_close: Any = None  # called with the comm id of each comm_close
        self.state: dict[str, Any] = {}
        self.custom: list[dict[str, Any]] = []  # custom messages for any window
        self.updates: list[dict[str, Any]] = []  # state updates (request_state answers)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="widget-page", daemon=True)

    def __enter__(self) -> WidgetPage:
        self.client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        # as JupyterLab does for its comms (one subshell per comm target): on control
        self.client.control_channel.send(self.client.session.msg("create_subshell_request", {}))
        reply = self.client.control_channel.get_msg(timeout=TIMEOUT)
        self.subshell_id = reply["content"]["subshell_id"]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.stop_channels()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.client.iopub_channel.get_msg(timeout=0.05)
            except queue.Empty:
                continue
            kind, content = message["msg_type"], message["content"]
            with self._cond:
                if kind == "comm_open" and "config" in content["data"].get("state", {}):
                    self.model_id, self.state = content["comm_id"], content["data"]["state"]
                elif kind == "comm_close" and self.on_close is not None:
                    self.on_close(content["comm_id"])
                elif kind == "comm_msg" and content["comm_id"] == self.model_id:
                    data = content["data"]
                    if data.get("method") == "custom":
                        self.custom.append(data["content"])
                    elif data.get("method") == "update":
                        self.updates.append(data["state"])
                self._cond.notify_all()

    def wait(self, test: Any, what: str) -> Any:
        with self._cond:
            found = self._cond.wait_for(test, TIMEOUT)
        assert found, f"no {what} within {TIMEOUT} s: {self.custom[-5:]}"
        return found

    def mine(self, window: str | None = None) -> list[dict[str, Any]]:
        return [c["data"] for c in self.custom if c.get("window") == (window or self.window)]

    def wait_data(self, test: Any, what: str, window: str | None = None) -> dict[str, Any]:
        return self.wait(lambda: next((d for d in self.mine(window) if test(d)), None), what)

    def send(self, data: Any) -> None:
        """One comm_msg of the widget's comm (what `model.send` and ipywidgets do)."""
        message = self.client.session.msg("comm_msg", {"comm_id": self.model_id, "data": data})
        message["header"]["subshell_id"] = self.subshell_id
        self.client.shell_channel.send(message)

    def custom_msg(self, content: Any) -> None:
        self.send({"method": "custom", "content": content})


def events(log: Path, name: str) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == name]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ipywidget")
    with (
        running_ipykernel(tmp, transport="widget") as (manager, client, log),
        WidgetPage(manager) as page,
    ):
        run(client, "%load_ext commrouter\nfrom commrouter import program")
        page.wait(lambda: page.model_id, "link widget comm_open")
        yield client, page, log


def test_the_widget_carries_the_module_and_a_window_opens_the_link(kernel):
    client, page, _ = kernel
    state = page.state
    assert state["_model_module"] == "anywidget"
    assert "globalThis.commrouter" in state["_esm"] and "export default" in state["_esm"]
    kernel_id = state["config"]["kernel_id"]
    assert state["config"]["target_name"] == "commrouter"
    page.custom_msg({"window": page.window, "open": {"kernel_id": kernel_id}})
    ack = page.wait_data(lambda d: d.get("address") == "#comm_open_ack", "#comm_open_ack")
    assert set(ack["value"]) == {"stream", "seq"}
    run(client, 'program.send("/w/out", 42)')
    value = page.wait_data(lambda d: d.get("address") == "/w/out", "/w/out")
    assert value["value"] == 42 and value["seq"] >= 1
    page.custom_msg({"window": page.window, "data": {"address": "#ack", "value": value["seq"]}})


LISTEN = """
with program.listen("/w/in") as got:
    program.sync()  # the subscription is in place
    print("ready", flush=True)
    print("got", next(iter(got)), flush=True)
"""


def test_page_values_reach_a_busy_cell_and_malformed_messages_lose_nothing_else(kernel):
    client, page, log = kernel
    cell = Cell(client, LISTEN)
    cell.wait_for_text("ready")  # the main shell is busy: the page talks on its subshell
    bad = [
        "not an object",
        {"data": {"address": "/w/in", "value": 0}},  # no window
        {"window": "a window/with a slash", "data": {"address": "/w/in", "value": 0}},
        {"window": page.window, "data": 5},
        {"window": page.window, "open": {}, "data": {}},
        {"window": page.window, "close": "yes"},
    ]
    for content in bad:
        page.custom_msg(content)
    page.custom_msg({"window": page.window, "data": {"address": "/w/in", "value": 7}})
    cell.wait()
    assert "got 7" in cell.stdout  # the good one arrived, after six refused
    reasons = [e["reason"] for e in events(log, "ipyhost.widget_message_ignored")]
    assert reasons == [
        "not an object",
        "window id missing or malformed",
        "window id missing or malformed",
        "data is not an object",
        "not exactly one of open, data, close",
        "close is not true",
    ]


def test_another_windows_values_are_refused_by_the_router(kernel):
    client, page, log = kernel
    stranger = uuid.uuid4().hex
    cell = Cell(client, LISTEN)
    cell.wait_for_text("ready")
    page.custom_msg({"window": stranger, "data": {"address": "/w/in", "value": 1}})
    page.custom_msg({"window": page.window, "data": {"address": "/w/in", "value": 2}})
    cell.wait()  # handled in order: the stranger's message was refused before this one came
    assert "got 2" in cell.stdout
    refused = [e for e in events(log, "connection.msg_dropped") if stranger in e["comm_id"]]
    assert [(e["reason"], e["address"]) for e in refused] == [
        ("comm_id is not an open comm", "/w/in")
    ]
    assert page.mine(stranger) == []  # nothing was sent to that window


def test_request_state_returns_the_last_values(kernel):
    client, page, _ = kernel
    run(client, 'program.send("/w/state", {"a": 1})\nprogram.send("/w/state", {"a": 2})')
    page.wait_data(lambda d: d.get("address") == "/w/state" or "batch" in d, "/w/state")
    page.send({"method": "request_state"})  # what a reloading widget manager asks
    state = page.wait(lambda: next((u for u in page.updates if "values" in u), None), "state")
    assert state["values"]["/w/state"] == {"a": 2}
    assert state["values"]["/w/out"] == 42


def test_unload_closes_the_window_then_the_widget_and_load_makes_a_new_one(kernel):
    client, page, _ = kernel
    old = page.model_id
    closed: list[str] = []
    page.on_close = closed.append
    run(client, "%unload_ext commrouter")
    page.wait(lambda: {"window": page.window, "close": True} in page.custom, "the window's close")
    page.wait(lambda: old in closed, "the widget's comm_close")
    run(client, "%load_ext commrouter")
    page.wait(lambda: page.model_id != old, "a new link widget")


REPORT = """
from commrouter.ipyhost import current_host
print("transport", current_host().transport)
"""
HIDE_ANYWIDGET = 'import sys\nsys.modules["anywidget"] = None  # its import fails, as if missing\n'


def test_auto_falls_back_to_the_install_script_without_anywidget(tmp_path):
    with running_ipykernel(tmp_path, transport="auto") as (_, client, _):
        cell = run(client, HIDE_ANYWIDGET + "%load_ext commrouter\n" + REPORT)
    assert cell.stdout.strip() == "transport script"


def test_auto_takes_the_widget_with_anywidget(tmp_path):
    with running_ipykernel(tmp_path, transport="auto") as (_, client, _):
        cell = run(client, "%load_ext commrouter\n" + REPORT)
    assert cell.stdout.strip() == "transport widget"
