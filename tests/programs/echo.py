"""Subscribe to /in, say /ready, collect N values in order, send them back on /got."""

import sys
import threading

from commrouter import program

expected = int(sys.argv[1])
got = []
done = threading.Event()


def collect(value):
    got.append(value)
    if len(got) == expected:
        done.set()


program.subscribe("/in", collect)
program.send("/ready", True)  # the kernel publishes it only once /in is routed
if not done.wait(10):
    sys.exit(f"only {len(got)} of {expected} values came")
program.send("/got", got)
program.sync()
