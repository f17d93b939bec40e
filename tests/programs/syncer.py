"""Call sync() once and print how it ended (its error's type and message, or 'ok')."""

from commrouter import program

try:
    program.sync(timeout=30)
    print("ok")
except Exception as error:  # noqa: BLE001 - the point is to print whatever it was
    print(type(error).__name__, error)
