"""Send N values to /out, sync, then say so on stdout."""

import sys

from commrouter import program

count = int(sys.argv[1])
for i in range(count):
    program.send("/out", i)
program.sync()
print("synced", flush=True)
