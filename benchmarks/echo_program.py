"""The cell program behind commrouter and the floor: echo every value back to its address.

`python echo_program.py N` subscribes N addresses (the hot one, `/slider/abc123`, and N-1
idle ones), answers when all routes are in place with `/bench/ready` = {"pid", "subscribed"},
then echoes each value it receives, through `commrouter.program`, until a value arrives at
`/bench/stop`. The same file runs under the commrouter kernel and the floor: both speak the
program link of docs/program-link.md.

The echoes are sent as stream values (`send(..., stream=True)`): the benchmark sends many
values to one address and counts every one that comes back, and commrouter merges the waiting
non-stream values of an address (the latest wins) while the page lags. A merge is not a loss,
but it would not be counted; a stream keeps every value, in order. (The floor ignores the flag.)
"""

from __future__ import annotations

import os
import sys
from functools import partial

from commrouter import program

HOT = "/slider/abc123"
READY = "/bench/ready"
STOP = "/bench/stop"


def addresses(count: int) -> list[str]:
    """The `count` subscribed addresses: the hot one first, then idle ones."""
    return [HOT, *(f"{HOT}-{i}" for i in range(1, count))]


def main(count: int) -> None:
    with program.listen(STOP) as stop:
        for address in addresses(count):
            program.subscribe(address, partial(program.send, address, stream=True))
        program.sync(timeout=600.0)  # every route is confirmed once this returns
        program.send(READY, {"pid": os.getpid(), "subscribed": count})
        for _ in stop:
            break


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
