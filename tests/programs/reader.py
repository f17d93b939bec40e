"""read() with an answer, read() of an address the page holds nothing at (fails at once), and
the same read with a default."""

import time

from commrouter import program

program.send("/answer", program.read("/x", timeout=5))
started = time.monotonic()
try:
    program.read("/nothing", timeout=30)
except program.NoValue as error:
    program.send("/no_value", {"after": time.monotonic() - started, "error": str(error)})
program.send("/default", program.read("/nothing", timeout=30, default="fallback"))
program.sync()
