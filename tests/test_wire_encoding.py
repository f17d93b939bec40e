"""Cheaper publishing gives the same wire: orjson and the standard library encode the same
bytes, header templates equal encoded headers, the status constants equal encoded statuses,
a copied keyed HMAC equals a fresh one, and msg_ids stay unique (across a fork too)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commrouter.kernel.publisher import KernelPublisher
from commrouter.transports import json_encode, jupyter_wire
from commrouter.transports.json_encode import dumps_stdlib
from commrouter.transports.jupyter_wire import Headers, Signer, decode, encode, new_header

orjson = pytest.importorskip("orjson")  # in the test extra: both paths are always compared here
dumps_orjson = json_encode.dumps_orjson
KEY = b"0123456789abcdef"

# JSON data as the edges let it in, plus what they refuse (NaN, infinities, lone surrogates,
# integers beyond 64 bits) and floats of every magnitude (orjson writes small ones differently)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e-3, max_value=1e-3)
    | st.text()
    | st.sampled_from(["null", "e-5", "0.00001", "\ud800", "</script>", "\u2028"])
)
json_data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def outcome(dumps, obj):
    try:
        return dumps(obj)
    except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
        return type(error)


@settings(max_examples=1500, deadline=None)
@given(json_data)
def test_orjson_and_the_standard_library_give_the_same_bytes_or_the_same_refusal(obj):
    assert outcome(dumps_orjson, obj) == outcome(dumps_stdlib, obj)


@pytest.mark.parametrize(
    "obj",
    [
        1e-5,
        -9.99e-5,
        1e-7,
        1e16,
        2**64,
        {"a": [1, 2.5, None, True]},
        {1: "int key"},
        {"when": datetime(2026, 12, 2, 14, 0, 0, 123, tzinfo=UTC)},
        ("tuple", 1),
    ],
)
def test_the_cases_orjson_writes_differently_come_out_as_the_standard_library_writes_them(obj):
    assert dumps_orjson(obj) == dumps_stdlib(obj)


@pytest.mark.parametrize("bad", [math.nan, -math.inf, {"blob": b"raw"}, object()])
def test_both_paths_refuse_what_is_not_json(bad):
    with pytest.raises((TypeError, ValueError)):
        dumps_stdlib(bad)
    with pytest.raises((TypeError, ValueError)):
        dumps_orjson(bad)


@pytest.mark.parametrize("dumps", [dumps_stdlib, dumps_orjson], ids=["stdlib", "orjson"])
def test_frames_and_signatures_are_identical_whichever_encoder_runs(monkeypatch, dumps):
    header = new_header("comm_msg", "s-1")
    content = {"comm_id": "c", "data": {"address": "/a", "value": [0.5, 1e-9, "é", None]}}
    monkeypatch.setattr(jupyter_wire, "dumps", dumps_stdlib)
    reference = encode(Signer(KEY), header, content, {"msg_id": "p"})
    monkeypatch.setattr(jupyter_wire, "dumps", dumps)
    assert encode(Signer(KEY), header, content, {"msg_id": "p"}) == reference


def test_a_header_template_gives_the_bytes_of_the_encoded_header():
    encoded = Headers("s-1", "someone").encoded("comm_msg")
    header = json.loads(encoded)
    assert encoded == dumps_stdlib(header)
    assert header == {
        **new_header("comm_msg", "s-1", "someone"),
        "msg_id": header["msg_id"],
        "date": header["date"],
    }
    assert datetime.fromisoformat(header["date"]).tzinfo is not None


def test_msg_ids_are_unique_and_a_forked_child_draws_a_new_prefix():
    headers = Headers("s")
    ids = {json.loads(headers.encoded("status"))["msg_id"] for _ in range(1000)}
    assert len(ids) == 1000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write, jupyter_wire.new_msg_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    os.close(read)
    mine = jupyter_wire.new_msg_id()
    assert child.split("_")[0] != mine.split("_")[0]


def test_a_copied_keyed_hmac_signs_as_a_fresh_one():
    parts = [b'{"a":1}', b"{}", b"{}", b'{"b":"\xc3\xa9"}']
    signer = Signer(KEY)
    fresh = hmac.new(KEY, b"".join(parts), hashlib.sha256).hexdigest().encode()
    assert signer.sign(parts) == fresh
    assert signer.sign(parts) == fresh  # the keyed state is copied, never consumed
    assert Signer(b"").sign(parts) == b""


class Captured:
    signer = Signer(KEY)

    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send(self, channel: str, frames: list[bytes]) -> None:
        assert channel == "iopub"
        self.sent.append(frames)


def request_from_a_client() -> jupyter_wire.WireMessage:
    # a client that encodes with spaces (as jupyter_client does): the parent is kept verbatim
    header = json.dumps(new_header("comm_msg", "client", "user")).encode()
    parts = [header, b"{}", b"{}", b'{"comm_id": "c", "data": {}}']
    frames = [b"id", jupyter_wire.DELIMITER, Signer(KEY).sign(parts), *parts]
    return decode(frames, Signer(KEY))


@pytest.mark.parametrize("state", ["busy", "idle", "starting"])
def test_a_status_from_the_template_equals_a_status_encoded_in_full(state):
    sockets = Captured()
    publisher = KernelPublisher(sockets, "kernel-session")  # type: ignore[arg-type]
    request = request_from_a_client()
    publisher.status(state, request)
    publisher.publish("status", {"execution_state": state}, request)
    templated, full = sockets.sent
    assert templated[0] == full[0] == b"status"
    one, two = decode(templated, Signer(KEY)), decode(full, Signer(KEY))
    assert one.content == two.content == {"execution_state": state}
    assert one.parent_header == two.parent_header == request.header
    assert templated[4] == request.raw_header  # the parent exactly as the client sent it
    assert {k: v for k, v in one.header.items() if k not in ("msg_id", "date")} == {
        k: v for k, v in two.header.items() if k not in ("msg_id", "date")
    }
    assert one.msg_id != two.msg_id


def test_a_status_without_a_parent_has_an_empty_parent_header():
    sockets = Captured()
    publisher = KernelPublisher(sockets, "kernel-session")  # type: ignore[arg-type]
    publisher.status("idle", {})
    publisher.status("idle")  # no execution running: no parent either
    for frames in sockets.sent:
        assert frames[4] == b"{}"
        assert decode(frames, Signer(KEY)).content == {"execution_state": "idle"}
