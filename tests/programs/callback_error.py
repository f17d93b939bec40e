"""A callback that raises: reported on stderr, counted, and the link keeps working."""

import threading

from commrouter import program

got = threading.Event()


def bad(value):
    raise ValueError(f"bad value {value}")


program.subscribe("/in", bad)
program.subscribe("/in", lambda value: got.set())
program.send("/ready", True)
got.wait(10)
program.send("/errors", program.callback_errors())
program.sync()
