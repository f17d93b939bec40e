"""What publishing one value costs the kernel, with each of issue 16's changes left out in turn.

`python -m benchmarks.publish_cost` times, in one process and without sockets, what the kernel
publishes for one echoed value: `status` busy, the `comm_msg` with the value, `status` idle,
parented to a decoded request (as `KernelPublisher` does for a shell message). Variants:

- `all`: the code as it is;
- `-orjson`: the standard library's JSON encoder;
- `-header template`: a header dict with a `uuid4` msg_id, encoded per message;
- `-keyed hmac`: a fresh HMAC (key derivation) per message;
- `-raw parent`: the parent header encoded again from its dict;
- `-status template`: the status content encoded as any other content;
- `none`: all five left out (the publishing of issue 14's code).

Best of `--repeat` rounds of `--number` values each, in microseconds per value.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import timeit
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from benchmarks.measure import PAYLOADS
from commrouter.kernel.publisher import KernelPublisher
from commrouter.transports import json_encode, jupyter_wire
from commrouter.transports.jupyter_wire import Signer, WireMessage, decode, encode, new_header

KEY = uuid.uuid4().hex.encode()
CHANGES = ("orjson", "header template", "keyed hmac", "raw parent", "status template")


class NoSockets:
    signer = Signer(KEY)

    def send(self, channel: str, frames: list[bytes]) -> None:
        pass


def _uuid_header(self: jupyter_wire.Headers, msg_type: str) -> bytes:
    header = new_header(msg_type, self.session, self.username)
    header["msg_id"] = uuid.uuid4().hex
    header["date"] = datetime.now(UTC).isoformat()
    return jupyter_wire.dumps(header)


def _fresh_hmac(self: Signer, parts: Sequence[bytes]) -> bytes:
    if not self.key:
        return b""
    mac = hmac.new(self.key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.hexdigest().encode("ascii")


def _status_as_content(self: KernelPublisher, state: str, parent: Any = None) -> None:
    self.publish("status", {"execution_state": state}, parent)


@contextlib.contextmanager
def without(changes: Sequence[str]) -> Iterator[None]:
    """The code with `changes` left out (patched back to what they replaced)."""
    with contextlib.ExitStack() as stack:
        if "orjson" in changes:
            stack.enter_context(mock.patch.object(jupyter_wire, "dumps", json_encode.dumps_stdlib))
        if "header template" in changes:
            stack.enter_context(mock.patch.object(jupyter_wire.Headers, "encoded", _uuid_header))
        if "keyed hmac" in changes:
            stack.enter_context(mock.patch.object(Signer, "sign", _fresh_hmac))
        if "status template" in changes:
            stack.enter_context(mock.patch.object(KernelPublisher, "status", _status_as_content))
        yield


def one_value(payload: str, raw_parent: bool) -> Callable[[], None]:
    publisher = KernelPublisher(NoSockets(), uuid.uuid4().hex)  # type: ignore[arg-type]
    data = {"address": "/slider/abc123", "value": PAYLOADS[payload]}
    frames = encode(
        NoSockets.signer,
        new_header("comm_msg", "client", "user"),
        {"comm_id": "c", "data": data},
        identities=[b"client"],
    )
    request = decode(frames, NoSockets.signer)
    if not raw_parent:
        request = WireMessage(request.header, {}, {}, request.content, request.identities)
    echo = {**data, "seq": 1}

    def publish() -> None:
        publisher.status("busy", request)
        publisher.comm_msg("c", echo, request)
        publisher.status("idle", request)

    return publish


def measure(changes: Sequence[str], payload: str, number: int, repeat: int) -> float:
    with without(changes):
        publish = one_value(payload, raw_parent="raw parent" not in changes)
        return 1e6 * min(timeit.repeat(publish, number=number, repeat=repeat)) / number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_cost", description=__doc__)
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"orjson importable: {json_encode.ORJSON}")
    variants = [("all", ()), *((f"-{c}", (c,)) for c in CHANGES), ("none", CHANGES)]
    print(f"{'variant':<18} {'small us/value':>15} {'4KB us/value':>13}")
    for name, changes in variants:
        small = measure(changes, "small", args.number, args.repeat)
        large = measure(changes, "4KB", args.number, args.repeat)
        print(f"{name:<18} {small:15.1f} {large:13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
