"""The widget transport's host edge without a kernel: which transport `connection.transport`
picks, the bounded last values, and how the publisher turns a window's comm messages into the
widget's custom messages (and leaves every other comm alone)."""

from __future__ import annotations

from typing import Any

import pytest

from commrouter.ipyhost.widget_transport import (
    WIDGET_VIEW_MIME,
    LastValues,
    WidgetEdge,
    WidgetPublisher,
    choose_transport,
)


def test_the_setting_picks_the_transport():
    assert choose_transport("auto", lambda: True) == "widget"
    assert choose_transport("auto", lambda: False) == "script"
    assert choose_transport("script", lambda: True) == "script"
    assert choose_transport("widget", lambda: True) == "widget"
    with pytest.raises(RuntimeError, match="needs ipywidgets and anywidget"):
        choose_transport("widget", lambda: False)


def test_last_values_keep_the_newest_per_address_within_the_bound():
    values = LastValues(limit=3)
    values.note({"address": "/a", "value": 1, "seq": 1})
    values.note({"seq": 2, "batch": [{"address": "/b", "value": 2}, {"address": "/a", "value": 3}]})
    values.note({"address": "#heartbeat/ping", "value": 9})  # protocol, not a value
    values.note({"seq": 4, "batch": [{"address": "/r", "read_request": True}, "junk"]})
    assert values.snapshot() == {"/b": 2, "/a": 3}
    values.note({"seq": 5, "batch": [{"address": f"/n{i}", "value": i} for i in range(3)]})
    assert values.snapshot() == {"/n0": 0, "/n1": 1, "/n2": 2}  # the oldest went


class Recorder:
    """The kernel's session and IOPub socket, recording what is published."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.session = self
        self.iopub_socket = object()

    def send(self, socket: Any, msg_type: str, content: dict[str, Any], parent: Any) -> None:
        self.sent.append((msg_type, content, parent))


def test_the_publisher_sends_a_windows_comm_messages_as_custom_messages():
    kernel = Recorder()
    closed: list[str] = []
    edge = WidgetEdge("m1", "commrouter")
    publisher = WidgetPublisher(kernel, edge, closed.append)
    parent = {"header": {"msg_id": "p1"}}
    publisher.comm_msg(edge.comm_id("w1"), {"address": "/a", "value": 5, "seq": 1}, parent)
    publisher.comm_close(edge.comm_id("w1"), {}, parent)
    publisher.comm_msg("a-script-comm", {"address": "/a", "value": 6}, parent)
    publisher.comm_close("a-script-comm", {}, parent)
    custom = [
        ("comm_msg", {"comm_id": "m1", "data": {"method": "custom", "content": content}}, parent)
        for content in (
            {"window": "w1", "data": {"address": "/a", "value": 5, "seq": 1}},
            {"window": "w1", "close": True},
        )
    ]
    assert kernel.sent == [
        *[(kind, content, {"msg_id": "p1"}) for kind, content, _ in custom],
        (
            "comm_msg",
            {"comm_id": "a-script-comm", "data": {"address": "/a", "value": 6}},
            {"msg_id": "p1"},
        ),
        ("comm_close", {"comm_id": "a-script-comm", "data": {}}, {"msg_id": "p1"}),
    ]
    assert closed == ["a-script-comm"]  # the widget's own comm is never forgotten
    assert edge.values.snapshot() == {"/a": 5}  # only what went to a window
    assert edge.install_display()[WIDGET_VIEW_MIME]["model_id"] == "m1"
    assert edge.window_of("m1/w1") == "w1" and edge.window_of("m2/w1") is None
