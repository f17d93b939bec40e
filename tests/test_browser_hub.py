"""The page's hub (`frontend/commrouter.js`) alone, in headless Chromium, on a scripted
WebSocket: numbered values taken once and in order, cumulative acks (one per JS task), numbered
pongs, resume after a re-open, page -> kernel batches and the bounded queue while the link is
down. The protocol tests also run over the link widget's module (`frontend/widget.js`) on a fake
anywidget model. The same hub against a real JupyterLab and kernel is tests/test_browser.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from commrouter.frontend.install import hub_script, widget_module
from tests.browser_harness import chromium

# A WebSocket the test drives: `open()` it, `deliver(data)` a comm_msg on the hub's comm, read
# what the hub sent in `sent` (decoded). Installed before the hub so that the hub uses it.
FAKE_WEBSOCKET = """
class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    FakeWebSocket.all.push(this);
  }
  send(text) {
    const message = JSON.parse(text);
    if (message.header.msg_type === "kernel_info_request") {  // a kernel without subshells
      const reply = { channel: message.channel, msg_type: "kernel_info_reply",
                      parent_header: { msg_id: message.header.msg_id },
                      content: { status: "ok", supported_features: [] } };
      setTimeout(() => this.onmessage({ data: JSON.stringify(reply) }), 0);
      return;
    }
    this.sent.push(message);
  }
  async opened() {  // the hub asks kernel_info first: wait (bounded) for its comm_open
    for (let i = 0; i < 100 && !this.sent.some(m => m.header.msg_type === "comm_open"); i++) {
      await new Promise(resolve => setTimeout(resolve, 0));
    }
    return this;
  }
  close() { this.readyState = FakeWebSocket.CLOSED; }
  open() { this.readyState = FakeWebSocket.OPEN; this.onopen(); }
  commId() { return this.sent.find(m => m.header.msg_type === "comm_open").content.comm_id; }
  deliver(data, msgType = "comm_msg") {
    const content = { comm_id: this.commId(), data };
    this.onmessage({ data: JSON.stringify({ channel: "iopub", msg_type: msgType, content }) });
  }
  messages() {
    return this.sent.filter(m => m.header.msg_type === "comm_msg").map(m => m.content.data);
  }
  clear() { this.sent = this.sent.filter(m => m.header.msg_type === "comm_open"); }
}
Object.assign(FakeWebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3, all: [] });
globalThis.WebSocket = FakeWebSocket;
globalThis.socket = () => FakeWebSocket.all[FakeWebSocket.all.length - 1];
globalThis.nextTask = () => new Promise(resolve => setTimeout(resolve, 0));
globalThis.warnings = [];
console.warn = (...args) => warnings.push(args.join(" "));
globalThis.link = async (stream, seq, config = {}) => {
  commrouter.install({ kernel_id: "k1", target_name: "commrouter", ...config });
  socket().open();
  await socket().opened();
  socket().deliver({ address: "#comm_open_ack", value: { stream, seq } });
  return socket();
};
"""


# anywidget's documented front-end model API (https://anywidget.dev/en/afm/): get, set,
# save_changes, on, off, send; `deliver(data)` plays the kernel's custom message `{window, data}`
# to this model's window, and the helpers mirror FakeWebSocket's (`messages`, `clear`, `link`),
# so the protocol tests below run unchanged over both transports.
FAKE_MODEL = """
class FakeModel {
  constructor(state) {
    this.state = { ...state };
    this.handlers = [];  // [event, callback]
    this.sent = [];
    this.saves = 0;
    FakeModel.all.push(this);
  }
  get(name) { return this.state[name]; }
  set(name, value) {
    this.state[name] = value;
    this.emit(`change:${name}`, value);
  }
  save_changes() { this.saves++; }
  on(event, callback) { this.handlers.push([event, callback]); }
  off(event, callback) {
    this.handlers = this.handlers.filter(([e, c]) =>
      !((event == null || e === event) && (callback == null || c === callback)));
  }
  send(content, callbacks, buffers) { this.sent.push(JSON.parse(JSON.stringify(content))); }
  emit(event, ...args) {
    for (const [e, callback] of this.handlers) if (e === event) callback(...args);
  }
  window() { return this.sent.filter(m => m.open).pop().window; }  // its latest open's
  custom(content) { this.emit("msg:custom", content, []); }
  deliver(data) { this.custom({ window: this.window(), data }); }
  messages() { return this.sent.filter(m => m.data).map(m => m.data); }
  clear() { this.sent = this.sent.filter(m => m.open); }
}
FakeModel.all = [];
globalThis.FakeModel = FakeModel;
globalThis.nextTask = () => new Promise(resolve => setTimeout(resolve, 0));
globalThis.warnings = [];
console.warn = (...args) => warnings.push(args.join(" "));
globalThis.newModel = async (config = {}, values = {}) => {
  const model = new FakeModel({
    config: { kernel_id: "k1", target_name: "commrouter", ...config }, values });
  model.cleanup = await widgetModule.initialize({ model });
  return model;
};
globalThis.link = async (stream, seq, config = {}) => {
  const model = await newModel(config);
  model.deliver({ address: "#comm_open_ack", value: { stream, seq } });
  return model;
};
"""

# Loads the link widget's module (as anywidget does: an ES module) into the page.
LOAD_MODULE = """async source => {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  globalThis.widgetModule = (await import(url)).default;
}"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("hub")) as browser:
        yield browser


@pytest.fixture
def page(browser, request):
    """A page with the hub over a fake WebSocket (the install script's transport), or, for
    `transport` "widget", the link widget's module over a fake anywidget model."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_content("<!doctype html><title>hub</title>")
    if getattr(request, "param", "socket") == "widget":
        page.add_script_tag(content=FAKE_MODEL)
        page.evaluate(LOAD_MODULE, widget_module())
    else:
        page.add_script_tag(content=FAKE_WEBSOCKET)
        page.add_script_tag(content=hub_script())
    yield page
    page.close()
    assert errors == []


# the protocol tests that run over both transports: the same assertions, either channel
both_transports = pytest.mark.parametrize("page", ["socket", "widget"], indirect=True)


def run(page: Any, body: str) -> Any:
    """Run `body` (the inside of an async function, with `hub` in scope) in the page."""
    return page.evaluate(f"async () => {{ const hub = globalThis.commrouter; {body} }}")


def test_comm_open_then_numbered_pongs(page):
    result = run(
        page,
        """
        const ws = await link("s1", 1);
        ws.deliver({ address: "#heartbeat/ping", value: 7 });
        ws.deliver({ address: "#heartbeat/ping", value: 8 });
        const open = ws.sent[0].content;
        return { open, opened: hub.opened, messages: ws.messages() };
        """,
    )
    assert result["open"]["target_name"] == "commrouter"
    assert result["open"]["data"] == {"kernel_id": "k1"}  # a new page: no resume
    assert result["opened"] is True
    assert result["messages"] == [
        {"address": "#heartbeat/pong", "value": 7},
        {"address": "#heartbeat/pong", "value": 8},
    ]


@both_transports
def test_numbered_values_are_taken_once_in_order_and_acked_once_per_task(page):
    result = run(
        page,
        """
        const ws = await link("s1", 1);
        const got = [];
        hub.subscribe("/a", value => got.push(value));
        ws.deliver({ address: "/a", value: "one", seq: 1 });
        ws.deliver({ seq: 2, batch: [{ address: "/a", value: "two" },
                                     { address: "/a", value: "three" }] });
        ws.deliver({ address: "/a", value: "two again", seq: 2 });  // a duplicate
        ws.deliver({ seq: 3, batch: [{ address: "/a", value: "three again" },
                                     { address: "/a", value: "four" }] });  // overlaps
        const before = ws.messages().length;
        await nextTask();
        const firstAcks = ws.messages();
        ws.clear();
        ws.deliver({ seq: 6, batch: [{ address: "/a", value: "six" },
                                     { address: "/a", value: "seven" }] });  // 5 is missing
        await nextTask();
        const gapAck = ws.messages();
        ws.clear();
        ws.deliver({ seq: 5, batch: [{ address: "/a", value: "five" },
                                     { address: "/a", value: "six" }] });
        await nextTask();
        return { got, before, firstAcks, gapAck, lastAck: ws.messages(),
                 counters: hub.counters };
        """,
    )
    assert result["got"] == ["one", "two", "three", "four", "five", "six"]
    assert result["before"] == 0  # nothing is acked before the task ends...
    assert result["firstAcks"] == [{"address": "#ack", "value": 4}]  # ...then one ack for all
    assert result["gapAck"] == [
        {"address": "#ack", "value": 4, "gap": True}
    ]  # the same, saying gap
    assert result["lastAck"] == [{"address": "#ack", "value": 6}]
    counters = result["counters"]
    assert (counters["received"], counters["duplicates"], counters["gaps"]) == (6, 2, 1)
    assert counters["acks"] == 3


@both_transports
def test_read_requests_are_numbered_and_answered_from_the_synced_variable(page):
    result = run(
        page,
        """
        const ws = await link("s1", 10);
        hub.newSyncedVariable("/slider/1", 3);
        ws.deliver({ seq: 10, batch: [{ address: "/slider/1", value: 4 },
                                      { address: "/slider/1", read_request: true }] });
        await nextTask();
        return ws.messages();
        """,
    )
    assert result == [
        {"batch": [{"address": "/slider/1", "value": 3}, {"address": "/slider/1", "value": 4}]},
        {"address": "#ack", "value": 11},
    ]  # the variable's initial value (the seed's newSyncedVariable sends it), then the answer


def test_a_re_opened_link_resumes_where_the_stream_stopped(page):
    result = run(
        page,
        """
        const got = [];
        hub.subscribe("/a", value => got.push(value));
        let ws = await link("s1", 1);
        ws.deliver({ seq: 1, batch: [{ address: "/a", value: 1 }, { address: "/a", value: 2 }] });
        commrouter.install({ kernel_id: "k1" });  // the kernel installs again: a new comm
        ws = socket();
        ws.open();
        await ws.opened();
        const resume = ws.sent[0].content.data.resume;
        ws.deliver({ address: "#comm_open_ack", value: { stream: "s1", seq: 2 } });
        ws.deliver({ seq: 2, batch: [{ address: "/a", value: 2 }, { address: "/a", value: 3 }] });
        // the kernel restarted (same kernel id, new stream): numbering starts again
        ws = await link("s2", 1);
        const restartResume = ws.sent[0].content.data.resume;
        ws.deliver({ address: "/a", value: "new 1", seq: 1 });
        await nextTask();
        return { resume, restartResume, got, acks: ws.messages() };
        """,
    )
    assert result["resume"] == {"stream": "s1", "seq": 2}
    assert result["restartResume"] == {"stream": "s1", "seq": 3}
    assert result["got"] == [1, 2, 3, "new 1"]  # 2 came twice, was taken once
    assert result["acks"] == [{"address": "#ack", "value": 1}]


@both_transports
def test_an_ack_after_a_gap_says_so_and_one_after_duplicates_does_not(page):
    """A resend crossing its original brings only numbers the page has: its ack repeats the
    last one without `gap`, so the kernel sends nothing again; a skipped number's ack says
    `gap` (docs/protocol.md)."""
    result = run(
        page,
        """
        const ws = await link("s1", 1);
        ws.deliver({ seq: 1, batch: [{ address: "/a", value: 1 }, { address: "/a", value: 2 }] });
        await nextTask();
        const first = ws.messages();
        ws.clear();
        ws.deliver({ seq: 1, batch: [{ address: "/a", value: 1 }, { address: "/a", value: 2 }] });
        await nextTask();
        const duplicates = ws.messages();
        ws.clear();
        ws.deliver({ address: "/a", value: 4, seq: 4 });  // 3 was lost on the way
        await nextTask();
        return { first, duplicates, gap: ws.messages() };
        """,
    )
    assert result["first"] == [{"address": "#ack", "value": 2}]
    assert result["duplicates"] == [{"address": "#ack", "value": 2}]  # no gap: no flag
    assert result["gap"] == [{"address": "#ack", "value": 2, "gap": True}]


@both_transports
def test_sends_in_one_task_go_as_one_batch_and_a_single_send_alone(page):
    result = run(
        page,
        """
        const ws = await link("s1", 1);
        hub.send("/a", 1);
        hub.send("/b", { x: 2 });
        hub.newSyncedVariable("/c", 0).set(3);
        const before = ws.messages().length;
        await nextTask();
        const batch = ws.messages();
        ws.clear();
        hub.send("/a", 4);
        await nextTask();
        return { before, batch, single: ws.messages(), counters: hub.counters };
        """,
    )
    assert result["before"] == 0
    assert result["batch"] == [
        {
            "batch": [
                {"address": "/a", "value": 1},
                {"address": "/b", "value": {"x": 2}},
                {"address": "/c", "value": 0},  # the synced variable's initial value
                {"address": "/c", "value": 3},
            ]
        }
    ]
    assert result["single"] == [{"address": "/a", "value": 4}]
    assert (result["counters"]["sent"], result["counters"]["batches"]) == (5, 1)


def test_the_queue_while_the_link_is_down_is_bounded_and_its_drops_counted(page):
    result = run(
        page,
        """
        commrouter.install({ kernel_id: "k1", queue_limit: 5 });
        for (let i = 1; i <= 8; i++) hub.send("/a", i);
        const overflow = { dropped: hub.counters.dropped, warnings: warnings.length };
        for (let i = 9; i <= 12; i++) hub.send("/a", i);  // the same episode: no new warning
        const ws = socket();
        ws.open();
        await ws.opened();
        const early = ws.messages();  // nothing goes before the kernel acks the comm
        ws.deliver({ address: "#comm_open_ack", value: { stream: "s1", seq: 1 } });
        return { overflow, early, messages: ws.messages(), dropped: hub.counters.dropped,
                 warnings };
        """,
    )
    assert result["overflow"] == {"dropped": 3, "warnings": 1}
    assert result["early"] == []
    assert result["messages"] == [
        {"batch": [{"address": "/a", "value": i} for i in range(8, 13)]}  # the 5 newest
    ]
    assert result["dropped"] == 7
    assert len(result["warnings"]) == 1
    assert "dropping the oldest" in result["warnings"][0]


def test_a_newer_hub_keeps_the_widgets_of_the_one_it_replaces(page):
    result = run(
        page,
        """
        const got = [];
        const variable = hub.newSyncedVariable("/s", 1);
        variable.subscribe(value => got.push(value));
        const ws = await link("s1", 1);
        const old = globalThis.commrouter;
        old.version = 1;  // as if the page had an older commrouter.js
        const script = document.createElement("script");
        script.textContent = window.hubSource;
        document.body.appendChild(script);
        const hub2 = globalThis.commrouter;
        const closed = ws.sent.some(m => m.header.msg_type === "comm_close");
        const ws2 = await link("s9", 1);
        ws2.deliver({ address: "/s", value: 5, seq: 1 });
        variable.set(6);
        await nextTask();
        return { replaced: hub2 !== old, closed, got, sent: ws2.messages() };
        """.replace("window.hubSource", json.dumps(hub_script())),
    )
    assert result["replaced"] is True
    assert result["closed"] is True  # the old hub closed its comm
    assert result["got"] == [5, 6]
    assert result["sent"] == [{"address": "/s", "value": 6}, {"address": "#ack", "value": 1}]


def test_each_kernel_has_its_own_link_and_the_top_level_api_follows_the_last_installed(page):
    result = run(
        page,
        """
        const ws1 = await link("s1", 1);  // kernel k1
        commrouter.install({ kernel_id: "k2", target_name: "commrouter" });
        const ws2 = socket();
        ws2.open();
        await ws2.opened();
        ws2.deliver({ address: "#comm_open_ack", value: { stream: "t1", seq: 1 } });
        const k1 = hub.kernel("k1"), k2 = hub.kernel("k2");
        const got = [];
        k1.subscribe("/a", (value, address) => got.push(["k1", value, address]));
        k2.subscribe("/a", (value, address) => got.push(["k2", value, address]));
        ws1.deliver({ address: "/a", value: "from k1", seq: 1 });
        ws2.deliver({ address: "/a", value: "from k2", seq: 1 });
        k1.send("/x", 1);
        hub.send("/x", 2);  // the top-level API: the kernel installed last
        await nextTask();
        const sent1 = ws1.messages(), sent2 = ws2.messages();
        commrouter.install({ kernel_id: "k1" });  // k1 re-installs: k2's link is untouched
        const ws3 = socket();
        return { got, sent1, sent2, urls: [ws1.url, ws2.url], k1Closed: ws1.readyState,
                 k2Open: ws2.readyState, k2Opened: k2.opened, ws3Url: ws3.url,
                 current: hub.kernelId, k1Same: hub.kernel("k1") === k1 };
        """,
    )
    assert "/api/kernels/k1/channels" in result["urls"][0]
    assert "/api/kernels/k2/channels" in result["urls"][1]
    assert result["got"] == [["k1", "from k1", "/a"], ["k2", "from k2", "/a"]]
    assert result["sent1"] == [{"address": "/x", "value": 1}, {"address": "#ack", "value": 1}]
    assert result["sent2"] == [{"address": "/x", "value": 2}, {"address": "#ack", "value": 1}]
    assert result["k1Closed"] == 3  # k1's old socket was replaced by its re-install...
    assert (result["k2Open"], result["k2Opened"]) == (1, True)  # ...and k2's was not touched
    assert "/api/kernels/k1/channels" in result["ws3Url"]
    assert result["current"] == "k1"
    assert result["k1Same"] is True


def test_a_kernel_view_made_before_its_install_queues_until_the_kernel_installs(page):
    result = run(
        page,
        """
        await link("s1", 1);  // k1 is installed; a widget of kernel k2 renders first
        const variable = hub.kernel("k2").newSyncedVariable("/w", 5);
        variable.set(6);
        await nextTask();
        const before = FakeWebSocket.all.length;
        commrouter.install({ kernel_id: "k2" });
        const ws = socket();
        ws.open();
        await ws.opened();
        ws.deliver({ address: "#comm_open_ack", value: { stream: "t", seq: 1 } });
        return { before, sockets: FakeWebSocket.all.length, sent: ws.messages() };
        """,
    )
    assert result["sockets"] == result["before"] + 1  # k2's link opened at its install
    assert result["sent"] == [
        {"batch": [{"address": "/w", "value": 5}, {"address": "/w", "value": 6}]}
    ]


@both_transports
def test_synced_variables_send_their_initial_once_and_set_sends_only_changes(page):
    result = run(
        page,
        """
        const ws = await link("s1", 1);
        const v = hub.newSyncedVariable("/v", 1);
        const again = hub.newSyncedVariable("/v", 99);  // the same variable; 99 is ignored
        const value = again.get();
        const seen = [];
        v.subscribe((value, address) => seen.push([value, address]));
        await nextTask();
        const initial = ws.messages();
        ws.clear();
        v.set(1);  // the same value: nothing
        v.set({ a: [1, 2] });
        await nextTask();
        v.set({ a: [1, 2] });  // equal JSON: nothing
        ws.deliver({ address: "/v", value: 7, seq: 1 });
        v.set(7);  // the value just received: nothing
        await nextTask();
        const quiet = hub.newSyncedVariable("/q", 3, { send: false });
        await nextTask();
        return { same: again === v, value, initial, later: ws.messages(),
                 seen, quiet: quiet.get() };
        """,
    )
    assert result["same"] is True
    assert result["value"] == 1
    assert result["initial"] == [{"address": "/v", "value": 1}]
    assert result["later"] == [
        {"address": "/v", "value": {"a": [1, 2]}},
        {"address": "#ack", "value": 1},
    ]  # /q was made with { send: false }: widgets, whose program has the value, do that
    assert result["seen"] == [[{"a": [1, 2]}, "/v"], [7, "/v"]]
    assert result["quiet"] == 3


@both_transports
def test_a_synced_variable_made_after_its_value_came_starts_from_it(page):
    result = run(
        page,
        """
        const ws = await link("s1", 1);
        const batch = [];
        for (let i = 0; i <= 1000; i++) batch.push({ address: `/m/${i}`, value: i * 10 });
        // the snapshot a reloaded window gets, then a widget renders
        ws.deliver({ seq: 1, batch: [...batch, { address: "/w", value: 96 }] });
        await nextTask();
        ws.clear();
        const widget = hub.newSyncedVariable("/w", 50);
        const forgotten = hub.newSyncedVariable("/m/0", -1);  // the oldest of 1,002: forgotten
        const kept = hub.newSyncedVariable("/m/1000", -1);
        await nextTask();
        return { widget: widget.get(), forgotten: forgotten.get(), kept: kept.get(),
                 sent: ws.messages(), size: hub.kernel("k1").memory.size };
        """,
    )
    assert result["widget"] == 96  # not its initial 50, which is not sent either
    assert (result["forgotten"], result["kept"]) == (-1, 10000)
    assert result["sent"] == [{"address": "/m/0", "value": -1}]
    assert result["size"] == 1000


@both_transports
def test_a_read_of_an_address_no_synced_variable_holds_fails_at_once(page):
    result = run(
        page,
        """
        const ws = await link("s1", 1);
        hub.subscribe("/only/subscribed", () => {});
        ws.deliver({ seq: 1, batch: [{ address: "/nothing", read_request: true },
                                     { address: "/only/subscribed", read_request: true }] });
        await nextTask();
        return { sent: ws.messages(), failed: hub.counters.readFailed };
        """,
    )
    assert result["sent"] == [
        {
            "batch": [
                {
                    "address": "/nothing",
                    "read_failed": "no synced variable for /nothing on this page",
                },
                {
                    "address": "/only/subscribed",
                    "read_failed": "no synced variable for /only/subscribed on this page",
                },
            ]
        },
        {"address": "#ack", "value": 2},
    ]
    assert result["failed"] == 2


def test_a_hub_of_version_2_hands_its_one_link_to_the_kernels_link(page):
    result = run(
        page,
        """
        // the shape of a version-2 hub (one link): what a page loaded before this version has
        const got = [];
        const variable = { hub: null, address: "/s", value: 1, callbacks: new Map() };
        variable.callbacks.set(3, (value, address) => got.push([value, address]));
        const old = { version: 2, kernelId: "k1", nextId: 9, closed: false,
                      subscriptions: new Map([["/a", new Map([[4, v => got.push(["a", v])]])]]),
                      synced: new Map([["/s", variable]]),
                      streams: new Map([["k1", { stream: "s1", seq: 41 }]]),
                      close() { this.closed = true; } };
        globalThis.commrouter = old;
        const script = document.createElement("script");
        script.textContent = window.hubSource;
        document.body.appendChild(script);
        const hub2 = globalThis.commrouter;
        const ws = await link("s1", 42);
        const resume = ws.sent[0].content.data.resume;
        ws.deliver({ seq: 42, batch: [{ address: "/s", value: 5 }, { address: "/a", value: 6 }] });
        hub2.kernel("k1").newSyncedVariable("/s", 0).set(7);  // the same variable object
        await nextTask();
        return { closed: old.closed, resume, got, same: variable.get(),
                 nextId: hub2.subscribe("/b", () => {}), sent: ws.messages() };
        """.replace("window.hubSource", json.dumps(hub_script())),
    )
    assert result["closed"] is True
    assert result["resume"] == {"stream": "s1", "seq": 41}
    assert result["got"] == [[5, "/s"], ["a", 6], [7, "/s"]]
    assert result["same"] == 7
    assert result["nextId"] >= 9  # ids stay unique across the hand-over
    assert result["sent"] == [{"address": "/s", "value": 7}, {"address": "#ack", "value": 43}]


def test_a_re_rendered_widget_keeps_its_live_element_focus_and_typing(page):
    result = run(
        page,
        """
        const render = (id) => {
          const output = document.createElement("div");
          output.innerHTML = `<div id="${id}"><input type="text" value="saved"></div>`;
          document.body.appendChild(output);
          return output;
        };
        let output = render("first");
        const first = document.getElementById("first");
        const boundFirst = hub.mountWidget("commrouter-text-1", first);
        const input = first.querySelector("input");
        input.focus();
        input.value = "half-typ";  // the user is typing
        output.innerHTML = "";  // the program re-renders the display (for the saved notebook)
        output.remove();
        output = render("second");
        const boundSecond = hub.mountWidget("commrouter-text-1", document.getElementById("second"));
        const live = {
          kept: document.getElementById("first") === first,
          replaced: document.getElementById("second") === null,
          focused: document.activeElement === input,
          value: input.value,
        };
        input.blur();  // the user moves on: a later re-render still keeps the live element
        await nextTask();
        output.innerHTML = "";
        output = render("third");
        const third = hub.mountWidget("commrouter-text-1", document.getElementById("third"));
        const unfocused = { kept: first.isConnected, focused: document.activeElement === input };
        output.innerHTML = "";
        output = render("ended");
        const ended = hub.mountWidget("commrouter-text-1", document.getElementById("ended"), true);
        return { boundFirst, boundSecond, live, third, unfocused, ended,
                 endedShown: document.getElementById("ended") !== null };
        """,
    )
    assert result["boundFirst"] is True  # new here: bind it
    assert result["boundSecond"] is False  # a re-render of a live widget: the live one stays
    assert result["live"] == {"kept": True, "replaced": True, "focused": True, "value": "half-typ"}
    assert result["third"] is False
    assert result["unfocused"] == {"kept": True, "focused": False}
    assert (result["ended"], result["endedShown"]) == (False, True)  # the ended render stays


def test_a_saved_widgets_connect_links_only_a_page_whose_link_is_not_live(browser):
    """`commrouter.connect(config)` (a saved widget's script) waits for the kernel's own
    install; it leaves a live link alone, and links again after the kernel closed the comm."""
    page = browser.new_page()
    page.clock.install()  # the connect delay (2 s) is run forward, not waited for
    try:
        page.set_content("<!doctype html><title>connect</title>")
        page.add_script_tag(content=FAKE_WEBSOCKET)
        page.add_script_tag(content=hub_script())
        run(page, 'hub.connect({ kernel_id: "k1", target_name: "commrouter" });')
        before = run(page, "return FakeWebSocket.all.length;")
        page.clock.fast_forward(2_100)
        first = run(
            page,
            """
            const ws = socket();
            ws.open();
            await ws.opened();
            ws.deliver({ address: "#comm_open_ack", value: { stream: "s1", seq: 1 } });
            ws.deliver({ address: "/a", value: 1, seq: 1 });
            return { sockets: FakeWebSocket.all.length, opened: hub.opened };
            """,
        )
        run(page, 'hub.connect({ kernel_id: "k1", target_name: "commrouter" });')
        page.clock.fast_forward(2_100)
        while_live = run(page, "return FakeWebSocket.all.length;")
        run(
            page,
            """
            socket().deliver({}, "comm_close");  // the kernel closed the link
            hub.connect({ kernel_id: "k1", target_name: "commrouter" });
            """,
        )
        page.clock.fast_forward(2_100)
        after_close = run(
            page,
            """
            const ws = socket();
            ws.open();
            await ws.opened();
            return { sockets: FakeWebSocket.all.length, data: ws.sent[0].content.data };
            """,
        )
    finally:
        page.close()
    assert before == 0  # nothing before the delay: the kernel's install may come first
    assert first == {"sockets": 1, "opened": True}
    assert while_live == 1  # a live link is left alone
    assert after_close["sockets"] == 2  # closed by the kernel: linked again, where it stopped
    assert after_close["data"] == {"kernel_id": "k1", "resume": {"stream": "s1", "seq": 1}}
