"""Never opens its pipes (`exit`, `hang`), or opens only to_kernel and says hello (`one_pipe`)."""

import os
import sys
import time

mode = sys.argv[1]
print(f"no link: {mode}", flush=True)
if mode == "hang":
    time.sleep(60)  # killed by the test
elif mode == "one_pipe":
    from commrouter.program import wire

    fd = os.open(os.environ[wire.ENV_TO_KERNEL], os.O_WRONLY)
    hello = {"op": "hello", "secret": os.environ[wire.ENV_SECRET], "pid": os.getpid()}
    os.write(fd, wire.encode(hello, 1 << 20))
    os.write(fd, wire.encode({"op": "send", "address": "/half", "value": 1}, 1 << 20))
