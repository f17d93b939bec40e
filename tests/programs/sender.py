"""Send N values to /out (a stream: every value kept), sync, then say so on stdout."""

import sys

from commrouter import program

count = int(sys.argv[1])
for i in range(count):
    program.send("/out", i, stream=True)
program.sync()
print("synced", flush=True)
