"""Blocks in listen() until interrupted."""

from commrouter import program

with program.listen("/never") as values:
    program.send("/listening", True)
    for _value in values:
        pass
