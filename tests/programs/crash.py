"""Send some values, then crash without a sync: what was sent still arrives."""

from commrouter import program

for i in range(50):
    program.send("/before_crash", i, stream=True)
raise RuntimeError("boom in the middle of the stream")
