"""Property-based fuzzing of the codecs at the edges: strict JSON, the Jupyter wire codec and
the program link's frames. Any exception other than the codec's own refusal is a failure."""

from __future__ import annotations

import json

from hypothesis import event, given
from hypothesis import strategies as st

from commrouter.program import wire
from commrouter.router.messages import ProgramSend, ValueForProgram
from commrouter.transports.json_edge import NotJSON, loads
from commrouter.transports.jupyter_wire import (
    DELIMITER,
    ReplayGuard,
    Signer,
    WireError,
    decode,
    encode,
)
from commrouter.transports.program_frames import (
    BadFrame,
    decode_request,
    encode_for_program,
    parse_payload,
)
from tests.fuzz_strategies import FUZZ, clean_values, json_text, strict, to_json, values

KEY = b"fuzz-key"


@FUZZ
@given(json_text)
def test_strict_json_accepts_exactly_json_data(data: bytes) -> None:
    try:  # JSON on our links is UTF-8 (RFC 8259 8.1): no guessing UTF-16 from NUL bytes
        expected = json.loads(data.decode("utf-8"))
        reference_ok = strict(expected)
    except (ValueError, RecursionError):
        reference_ok = False
    try:
        got = loads(data)
    except NotJSON:
        assert not reference_ok, f"refused JSON data: {data[:80]!r}"
        return
    assert reference_ok, f"accepted what is not JSON data: {data[:80]!r}"
    assert got == expected
    json.dumps(got, allow_nan=False, ensure_ascii=False).encode("utf-8")  # re-encodes


def frames_of(parts: list[bytes], buffers: list[bytes], signer: Signer) -> list[bytes]:
    return [b"ident", DELIMITER, signer.sign(parts), *parts, *buffers]


header_dicts = st.fixed_dictionaries(
    {"msg_id": st.text(max_size=8), "msg_type": st.text(max_size=8)},
    optional={"date": values, "session": values, "version": values},
)
objects = st.dictionaries(st.text(max_size=6), values, max_size=4)
clean_objects = st.dictionaries(st.text(max_size=6), clean_values, max_size=4)
clean_headers = st.fixed_dictionaries({"msg_id": st.text(max_size=8), "msg_type": st.text()})
dirty = (
    st.builds(to_json, header_dicts, st.booleans())
    | st.builds(to_json, objects, st.booleans())
    | json_text
)


def _poison(parts: list[bytes], which: int, bad: bytes) -> list[bytes]:
    if which < len(parts):
        parts[which] = bad
    return parts


# Four well-formed parts, one of which (or none, which == 4) replaced by something dirty.
four_parts = st.builds(
    _poison,
    st.tuples(
        st.builds(to_json, clean_headers, st.booleans()),
        *[st.builds(to_json, clean_objects, st.booleans())] * 3,
    ).map(list),
    st.integers(0, 4),
    dirty,
)


@FUZZ
@given(
    four_parts,
    st.lists(st.binary(max_size=16), max_size=3),
    st.sampled_from(["signed", "signed", "signed", "unsigned"]),
    st.integers(0, 20),  # cut that many frames off the end, when below 4
)
def test_wire_decode_refuses_or_gives_a_message_that_re_encodes(
    raw: list[bytes], buffers: list[bytes], signing: str, cut: int
) -> None:
    signer = Signer(KEY)
    frames = frames_of(raw, buffers, signer)
    if signing == "unsigned":
        frames[2] = b""
    frames = frames[: len(frames) - cut] if cut < 4 else frames
    replay = ReplayGuard(8)
    try:
        message = decode(frames, signer, replay)
    except WireError as error:
        event(f"refused: {error.reason}")
        return
    event("accepted")
    assert isinstance(message.msg_id, str) and isinstance(message.msg_type, str)
    # a reply to it (the parent header echoed) always encodes
    encode(signer, {"msg_id": "r", "msg_type": "x"}, message.content, message.header)
    encode(signer, message.header, message.content, message.parent_header, message.metadata)
    try:  # and the same frames again are a replay
        decode(frames, signer, replay)
    except WireError as error:
        assert error.reason == "replayed"
    else:
        raise AssertionError("a replayed message was accepted")


@FUZZ
@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(1, 64))
def test_frame_stream_garbage_is_refused_frame_by_frame(chunks: list[bytes], size: int) -> None:
    frames = wire.FrameBuffer(max_bytes=size * 16)
    for chunk in chunks:
        frames.feed(chunk)
        while True:
            try:
                payload = frames.next()
            except wire.FrameTooLarge:
                return  # the link closes: the stream cannot be trusted
            if payload is None:
                break
            try:
                decode_request("p", parse_payload(payload))
            except BadFrame as bad:
                assert bad.reason


requests = st.fixed_dictionaries(
    {"op": st.sampled_from(["send", "subscribe", "read", "sync", "display", "hello", "x"])},
    optional={
        "address": values,
        "value": values,
        "id": values,
        "data": values,
        "metadata": values,
        "display_id": values,
        "update": values,
    },
)


@FUZZ
@given(st.lists(requests, max_size=6), st.lists(st.integers(1, 50), max_size=6))
def test_program_requests_decode_once_whatever_the_chunking(
    objs: list[dict], cuts: list[int]
) -> None:
    stream = b"".join(
        len(p).to_bytes(4, "big") + p for p in (to_json(o, ascii_only=True) for o in objs)
    )
    frames = wire.FrameBuffer(max_bytes=1 << 20)
    decoded = []
    position = 0
    for cut in [*cuts, len(stream)]:
        frames.feed(stream[position : position + cut])
        position += cut
        while (payload := frames.next()) is not None:
            try:
                decoded.append(decode_request("p", parse_payload(payload)))
            except BadFrame:
                decoded.append(None)
    frames.feed(stream[position:])
    while (payload := frames.next()) is not None:
        try:
            decoded.append(decode_request("p", parse_payload(payload)))
        except BadFrame:
            decoded.append(None)
    assert len(decoded) == len(objs)  # one outcome per frame, in order
    for message in decoded:
        if isinstance(message, ProgramSend):  # accepted values are JSON data
            wire.encode({"op": "value", "value": message.value}, 1 << 30)


@FUZZ
@given(values | clean_values)
def test_a_value_for_the_program_encodes_strictly_or_is_refused(value: object) -> None:
    try:
        frame = encode_for_program(ValueForProgram("/a", value), 1 << 20)
    except (ValueError, TypeError):  # FrameTooLarge, NaN, a lone surrogate: a logged fault
        return
    assert json.loads(frame[4:])["value"] == value  # what the program's json decodes
