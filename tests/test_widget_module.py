"""The link widget's module (`frontend/widget.js` after the hub) against anywidget's documented
front-end API (a fake `model` with get/set/save_changes/on/off/send, as VS Code's and Colab's
widget managers give it), in headless Chromium without any Jupyter: what the widget channel adds
to the protocol (which the hub tests run over both transports): window ids, the open message,
resume, the `values` state both ways, the model going away, and a render re-opening a link that
gave up."""

from __future__ import annotations

from typing import Any

import pytest

from commrouter.frontend.install import widget_module
from tests.browser_harness import chromium
from tests.test_browser_hub import FAKE_MODEL, LOAD_MODULE


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("widget-module")) as browser:
        yield browser


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content("<!doctype html><title>widget module</title>")
    page.add_script_tag(content=FAKE_MODEL)
    page.evaluate(LOAD_MODULE, widget_module())
    yield page
    page.close()
    assert errors == []


def run(page: Any, body: str) -> Any:
    return page.evaluate(f"async () => {{ const hub = globalThis.commrouter; {body} }}")


def test_a_window_opens_with_its_id_and_takes_only_its_own_messages(page):
    result = run(
        page,
        """
        const model = await newModel();
        const open = model.sent[0];
        const window = model.window();
        model.custom({ window: "another", data: { address: "#comm_open_ack",
                                                  value: { stream: "s", seq: 1 } } });
        const afterStranger = hub.opened;
        model.deliver({ address: "#comm_open_ack", value: { stream: "s", seq: 1 } });
        const got = [];
        hub.subscribe("/a", value => got.push(value));
        model.custom({ window: "another", data: { address: "/a", value: "not mine", seq: 1 } });
        model.deliver({ address: "/a", value: "mine", seq: 1 });
        model.custom({ window });  // neither data nor close: counted, ignored
        model.custom("nonsense");
        await nextTask();
        const channel = model.commrouterChannel;
        model.custom({ window, close: true });
        return { open, window, afterStranger, got, ignored: channel.ignored,
                 sent: model.sent.slice(1), closed: !hub.opened,
                 transport: hub.kernel("k1").transport };
        """,
    )
    assert result["open"] == {"window": result["window"], "open": {"kernel_id": "k1"}}
    assert len(result["window"]) == 32
    assert result["afterStranger"] is False  # another window's ack opens nothing here
    assert result["got"] == ["mine"]
    assert result["ignored"] == 1
    assert result["sent"] == [{"window": result["window"], "data": {"address": "#ack", "value": 1}}]
    assert result["closed"] is True
    assert result["transport"] == "widget"


def test_a_new_view_of_the_same_kernel_resumes_and_the_old_one_is_dropped(page):
    result = run(
        page,
        """
        const first = await link("s1", 1);
        first.deliver({ seq: 1, batch: [{ address: "/a", value: 1 },
                                        { address: "/a", value: 2 }] });
        await nextTask();
        const second = await newModel();  // e.g. the notebook opened in a second panel
        const open = second.sent[0].open;
        first.deliver({ address: "/a", value: 3, seq: 3 });  // the old window: not the link's
        second.deliver({ address: "#comm_open_ack", value: { stream: "s1", seq: 3 } });
        const got = [];
        hub.subscribe("/a", value => got.push(value));
        second.deliver({ address: "/a", value: 3, seq: 3 });
        await nextTask();
        return { open, got, firstAcks: first.messages(), secondAcks: second.messages() };
        """,
    )
    assert result["open"] == {"kernel_id": "k1", "resume": {"stream": "s1", "seq": 2}}
    assert result["got"] == [3]
    assert result["firstAcks"] == [{"address": "#ack", "value": 2}]
    assert result["secondAcks"] == [{"address": "#ack", "value": 3}]


def test_values_state_seeds_the_link_and_follows_what_arrives_locally(page):
    result = run(
        page,
        """
        const model = await newModel({}, { "/w": 96, "/x": "saved" });
        model.deliver({ address: "#comm_open_ack", value: { stream: "s", seq: 1 } });
        const widget = hub.newSyncedVariable("/w", 50);  // starts from the saved value
        model.deliver({ seq: 1, batch: [{ address: "/x", value: "new" },
                                        { address: "/y", value: [1, 2] }] });
        await nextTask();
        await nextTask();
        return { widget: widget.get(), values: model.get("values"), saves: model.saves,
                 sent: model.messages() };
        """,
    )
    assert result["widget"] == 96
    assert result["values"] == {"/w": 96, "/x": "new", "/y": [1, 2]}
    assert result["saves"] == 0  # local only: the kernel keeps its own copy, nothing is sent
    assert result["sent"] == [{"address": "#ack", "value": 2}]  # not /w's initial 50 either


def test_when_the_model_goes_the_link_is_down_and_its_sends_wait(page):
    result = run(
        page,
        """
        const model = await link("s", 1);
        model.cleanup();  // anywidget calls initialize's cleanup when the model is destroyed
        hub.send("/after", 1);
        model.deliver({ address: "/a", value: "late", seq: 1 });
        await nextTask();
        return { opened: hub.opened, handlers: model.handlers.length, sent: model.messages(),
                 queued: hub.kernel("k1").queue.length };
        """,
    )
    assert result["opened"] is False
    assert result["handlers"] == 0
    assert result["sent"] == []
    assert result["queued"] == 1  # sent by the next link (e.g. the restored model's)


def test_a_render_reopens_a_link_that_gave_up_as_a_new_window(page):
    result = run(
        page,
        """
        const model = await newModel();
        const link = hub.kernel("k1");
        link.dropLink();  // as after three unanswered opens: the page gave up
        const el = document.createElement("div");
        widgetModule.render({ model, el });  // the kernel's install display shows a view
        const opens = model.sent.filter(m => m.open).map(m => m.window);
        // the first open's window is not this link's any more: its ack opens nothing
        model.custom({ window: opens[0], data: { address: "#comm_open_ack",
                                                 value: { stream: "s", seq: 1 } } });
        const byOld = hub.opened;
        model.deliver({ address: "#comm_open_ack", value: { stream: "s", seq: 1 } });
        return { opens, byOld, opened: hub.opened, hidden: el.style.display,
                 marker: el.getAttribute("data-commrouter-link") };
        """,
    )
    assert len(result["opens"]) == 2
    assert result["opens"][0] != result["opens"][1]  # each open is a new window
    assert result["byOld"] is False
    assert result["opened"] is True
    assert (result["hidden"], result["marker"]) == ("none", "k1")
