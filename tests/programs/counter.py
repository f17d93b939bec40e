"""Subscribe to /in and count what comes (checking each value is what JSON can hold); on /done
report {count, bad} on /count and exit."""

import json
import threading

from commrouter import program

seen = {"count": 0, "bad": 0}
done = threading.Event()


def on_value(value):
    seen["count"] += 1
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError:
        seen["bad"] += 1


program.subscribe("/in", on_value)
program.subscribe("/done", lambda _: done.set())
program.send("/ready", True)
done.wait(120)
program.send("/count", seen)
program.sync()
