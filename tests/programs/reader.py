"""read() with an answer, then read() that times out."""

import time

from commrouter import program

program.send("/answer", program.read("/x", timeout=5))
started = time.monotonic()
try:
    program.read("/nothing", timeout=0.2)
except program.LinkTimeout as error:
    assert isinstance(error, TimeoutError)
    program.send("/timed_out", {"after": time.monotonic() - started, "error": str(error)})
program.sync()
