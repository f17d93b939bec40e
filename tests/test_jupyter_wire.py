"""The Jupyter wire codec: round trips, signatures, and every way a message is refused."""

from __future__ import annotations

import json
import re

import pytest

from commrouter.transports.jupyter_wire import (
    DELIMITER,
    Signer,
    WireError,
    decode,
    encode,
    new_header,
)

KEY = b"0123456789abcdef"


def frames(signer: Signer | None = None, **content) -> list[bytes]:
    signer = signer or Signer(KEY)
    header = new_header("comm_msg", session="s-1")
    return encode(
        signer,
        header,
        content or {"comm_id": "c", "data": {}},
        parent_header={"msg_id": "p"},
        identities=[b"client-1"],
        buffers=[b"\x00raw"],
    )


def test_round_trip_keeps_identities_parts_and_buffers():
    message = decode(frames(), Signer(KEY))
    assert message.identities == (b"client-1",)
    assert message.msg_type == "comm_msg"
    assert re.fullmatch(r"[0-9a-f]{32}_[0-9]+", message.msg_id)  # <process prefix>_<counter>
    assert message.parent_header == {"msg_id": "p"}
    assert message.content == {"comm_id": "c", "data": {}}
    assert message.buffers == (b"\x00raw",)
    assert message.header["version"] == "5.3" and message.header["session"] == "s-1"


def test_signature_is_hmac_sha256_hex_over_the_four_parts():
    import hashlib
    import hmac

    wire = frames()
    at = wire.index(DELIMITER)
    expected = hmac.new(KEY, b"".join(wire[at + 2 : at + 6]), hashlib.sha256).hexdigest()
    assert wire[at + 1] == expected.encode()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: [x for x in f if x != DELIMITER], "no delimiter"),
        (lambda f: f[:4], "truncated"),
        (lambda f: [*f[:2], b"0" * 64, *f[3:]], "bad signature"),
        (lambda f: [*f[:2], b"", *f[3:]], "missing signature"),
        (lambda f: [*f[:6], f[6][:-1] + b"X", *f[7:]], "bad signature"),  # content tampered
    ],
)
def test_refused_messages_name_the_reason(mutate, reason):
    with pytest.raises(WireError) as caught:
        decode(mutate(frames()), Signer(KEY))
    assert caught.value.reason == reason


def test_wrong_key_is_a_bad_signature():
    with pytest.raises(WireError, match="bad signature"):
        decode(frames(Signer(b"another key")), Signer(KEY))


def test_invalid_json_and_missing_header_fields_are_refused_even_when_signed():
    signer = Signer(KEY)
    parts = [b"{not json", b"{}", b"{}", b"{}"]
    with pytest.raises(WireError) as caught:
        decode([DELIMITER, signer.sign(parts), *parts], signer)
    assert caught.value.reason == "invalid json"
    parts = [json.dumps({"msg_type": "x"}).encode(), b"{}", b"{}", b"{}"]
    with pytest.raises(WireError) as caught:
        decode([DELIMITER, signer.sign(parts), *parts], signer)
    assert caught.value.reason == "invalid header" and "msg_id" in str(caught.value)
    parts = [json.dumps({"msg_type": "x", "msg_id": "1"}).encode(), b"[]", b"{}", b"{}"]
    with pytest.raises(WireError, match="parent_header is not an object"):
        decode([DELIMITER, signer.sign(parts), *parts], signer)


def test_empty_key_means_unsigned():
    unsigned = Signer(b"")
    wire = frames(unsigned)
    assert wire[wire.index(DELIMITER) + 1] == b""
    assert decode(wire, unsigned).content["comm_id"] == "c"


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="unsupported signature scheme"):
        Signer(KEY, "rot13")


def test_encode_refuses_bytes_in_json_parts():
    with pytest.raises(TypeError, match="buffers"):
        encode(Signer(KEY), new_header("x", "s"), {"blob": b"raw"})
