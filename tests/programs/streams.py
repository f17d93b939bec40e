"""Output that must be published while the program still runs."""

import sys

from commrouter import program

print("one", flush=True)
print("err one", file=sys.stderr, flush=True)
with program.listen("/go") as values:
    program.send("/waiting", True)
    go = values.get(timeout=10)
print(f"two {go}", flush=True)
sys.stdout.buffer.write("caf\u00e9 \xff\n".encode("latin-1"))  # not UTF-8: replaced
