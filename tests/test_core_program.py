"""Program start/finish and the program's send, read, subscribe, unsubscribe and sync requests,
over the in-memory program link."""

from __future__ import annotations

from commrouter.router.messages import ProgramSend
from tests.conftest import World, make_world


def test_subscriptions_reset_when_a_program_starts_and_finishes(world: World):
    world.open_link()
    first = world.start_program("p-1")
    first.subscribe("/a")
    first.subscribe("/b")
    world.settle()
    assert world.router.subscriptions() == {"/a", "/b"}
    assert world.router.routes() == {"/a": ("program_executor",), "/b": ("program_executor",)}
    world.router.program_finished("p-1")
    world.settle()
    assert world.router.subscriptions() == frozenset() and world.router.routes() == {}
    assert first.link.closed
    second = world.start_program("p-2")
    world.front_end.send("/a", 1)
    world.settle()
    second.poll()
    assert second.values == {}
    assert world.log.find("subscriptions.reset", program_id="p-2")


def test_starting_a_program_replaces_the_previous_one(world: World):
    world.open_link()
    first = world.start_program("p-1")
    first.subscribe("/a")
    world.settle()
    world.start_program("p-2")
    assert world.router.subscriptions() == frozenset()
    assert first.link.closed
    assert world.log.find("program.finished", program_id="p-1", reason="replaced by a new program")


def test_requests_after_the_program_finished_are_dropped_with_a_log(world: World):
    world.open_link()
    program = world.start_program("p-1")
    world.router.program_finished("p-1")
    world.settle()
    program.link.emit(ProgramSend("p-1", "/late", 1))  # what a straggling reader would do
    program.subscribe("/late")
    world.settle()
    assert world.front_end.received("/late") == []
    dropped = world.log.find("program.request_dropped", program_id="p-1")
    assert {d["request"] for d in dropped} == {"send", "subscribe"}
    assert world.router.health() == dict.fromkeys(world.router.health(), True)


def test_program_send_ensures_the_front_end_first(world: World):
    program = world.start_program()
    program.send("/out", {"x": [1, 2]})
    world.settle()
    assert len(world.front_end.of_kind("display")) == 1  # installed on first use
    assert world.front_end.received("/out") == [{"x": [1, 2]}]


def test_start_address_only_ensures_the_front_end(world: World):
    program = world.start_program()
    program.start_link()
    world.settle()
    assert world.router.link_state().opened
    values = [
        p for p in world.front_end.of_kind("comm_msg") if p.data["address"] != "#comm_open_ack"
    ]
    assert values == []


def test_subscribe_ensures_the_front_end_and_unsubscribe_stops_delivery(world: World):
    program = world.start_program()
    program.subscribe("/a")
    world.settle()
    assert world.router.link_state().opened
    world.front_end.send("/a", 1)
    world.settle()
    program.unsubscribe("/a")
    world.settle()
    world.front_end.send("/a", 2)
    world.settle()
    program.poll()
    assert program.received("/a") == [1]
    assert world.router.routes() == {}
    program.unsubscribe("/a")
    world.settle()
    assert world.log.find("subscriptions.not_subscribed", address="/a")


def test_read_sends_a_read_request_and_the_answer_arrives_as_a_value(world: World):
    world.front_end.synced["/var"] = 42
    program = world.start_program()
    program.subscribe("/var")
    program.read("/var")
    world.settle()
    requests = [p.data for p in world.front_end.of_kind("comm_msg") if p.data.get("read_request")]
    assert requests == [{"address": "/var", "read_request": True, "seq": 1}]
    program.poll()
    assert program.received("/var") == [42]


def test_sync_is_acked_only_after_earlier_sends_reached_the_link(vtime):
    world = make_world(vtime, auto_open=False)
    try:
        program = world.start_program()
        for i in range(5):
            program.send("/seq", i, stream=True)  # a stream: every value kept
        sync_id = program.sync()
        world.advance(1.0)
        program.poll()
        assert program.acks == {}  # the link is not up: nothing was handed over yet
        assert world.router.link_state().queued == 6
        world.front_end.open()
        world.settle()
        program.poll()
        assert world.front_end.received("/seq") == [0, 1, 2, 3, 4]
        assert program.acks == {sync_id: None}
    finally:
        world.router.stop()


def test_a_run_no_page_ever_opened_is_headless_and_its_sync_returns(vtime):
    world = make_world(vtime, auto_open=False)
    try:
        program = world.start_program()
        program.send("/seq", 1)
        sync_id = program.sync()
        world.advance(3.0)
        program.poll()
        assert program.acks == {sync_id: None}
        assert world.log.find("connection.headless")
        assert world.router.link_state().not_shown == 1
    finally:
        world.router.stop()


def test_sync_with_nothing_pending_is_acked_at_once(world: World):
    program = world.start_program()
    sync_id = program.sync()
    world.settle()
    program.poll()
    assert program.acks == {sync_id: None}


def test_display_is_published_with_its_display_id(world: World):
    program = world.start_program()
    program.display({"text/html": "<b>1</b>"}, display_id="d-1")
    program.display({"text/html": "<b>2</b>"}, display_id="d-1", update=True)
    world.settle()
    shown = [
        (p.kind, p.display_id, p.data["text/html"])
        for p in world.front_end.published
        if p.kind in ("display", "update")
    ]
    assert shown == [("display", "d-1", "<b>1</b>"), ("update", "d-1", "<b>2</b>")]


def test_host_send_publishes_comm_msg_on_the_open_comm(world: World):
    comm_id = world.open_link()
    promise = world.router.send("/host", [1, "two", None, True, {"k": 1.5}])
    world.settle()
    assert promise.get(1.0) is True
    sent = [p for p in world.front_end.of_kind("comm_msg") if p.data.get("address") == "/host"]
    assert [(p.comm_id, p.data) for p in sent] == [
        (comm_id, {"address": "/host", "value": [1, "two", None, True, {"k": 1.5}], "seq": 1})
    ]


def test_an_answer_never_overtakes_the_route_of_the_subscribe_before_it(world: World):
    """subscribe then read: the route is in the table before the read goes out, every time."""
    addresses = [f"/var/{i}" for i in range(200)]
    for i, address in enumerate(addresses):
        world.front_end.synced[address] = i
    program = world.start_program()
    for address in addresses:
        program.subscribe(address)
        program.read(address)
    world.settle()
    world.advance(1.0)  # one read per message goes at the rate limit (flow.max_messages_per_second)
    program.poll()
    assert {a: program.received(a) for a in addresses} == {a: [i] for i, a in enumerate(addresses)}
    assert world.log.find("router.dropped") == []
