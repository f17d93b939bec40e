"""Write raw frames to the kernel: what a broken or hostile program does."""

import json
import os
import sys

from commrouter.program import wire

mode = sys.argv[1]
fd = os.open(os.environ[wire.ENV_TO_KERNEL], os.O_WRONLY)
secret = os.environ[wire.ENV_SECRET]


def frame(obj):
    payload = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    return len(payload).to_bytes(4, "big") + payload


def hello(key=secret):
    os.write(fd, frame({"op": "hello", "secret": key, "pid": os.getpid()}))


def run(mode):
    if mode == "garbage":
        os.write(fd, b"this is not a frame at all\n")
    elif mode == "wrong_secret":
        hello("0" * 32)
        os.write(fd, frame({"op": "send", "address": "/sneaky", "value": 1}))
    elif mode == "no_hello":
        os.write(fd, frame({"op": "send", "address": "/sneaky", "value": 1}))
    elif mode == "truncated":
        hello()
        os.write(fd, frame({"op": "send", "address": "/whole", "value": 1}))
        os.write(fd, (100).to_bytes(4, "big") + b'{"op": "se')
    elif mode == "oversized":
        hello()
        limit = int(os.environ[wire.ENV_MAX_FRAME])
        os.write(fd, (limit + 1).to_bytes(4, "big") + b"{")
    elif mode == "bad_frames":
        hello()
        os.write(fd, frame(b"{not json"))
        os.write(fd, frame([1, 2, 3]))
        os.write(fd, frame({"op": "fly", "address": "/x"}))
        os.write(fd, frame({"op": "send", "address": "/x"}))
        os.write(fd, frame({"op": "subscribe"}))
        os.write(fd, frame({"op": "send", "address": "#private", "value": 1}))
        os.write(fd, frame({"op": "sync", "id": "one"}))
        os.write(fd, frame(b'{"op": "send", "address": "/x", "value": NaN}'))
        os.write(fd, frame({"op": "send", "address": "/still_serving", "value": "yes"}))
    else:
        sys.exit(f"unknown mode {mode}")


try:
    run(mode)
except BrokenPipeError:
    print("the kernel closed the link", flush=True)  # expected once it refused the stream
