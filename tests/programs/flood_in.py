"""A slow subscriber: the first value blocks the callback thread until the gate file exists;
then counts every value of /flood until /done, and reports on /count."""

import os
import sys
import threading
import time

from commrouter import program

gate = sys.argv[1]
seen = {"count": 0, "last": None, "in_order": True}
done = threading.Event()


def on_flood(value):
    if seen["count"] == 0:
        deadline = time.monotonic() + 20
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
    if seen["last"] is not None and value <= seen["last"]:
        seen["in_order"] = False
    seen["count"] += 1
    seen["last"] = value


program.subscribe("/flood", on_flood)
program.subscribe("/done", lambda _: done.set())
program.send("/ready", True)
if not done.wait(30):
    sys.exit("no /done")
program.send("/count", seen)
program.sync()
