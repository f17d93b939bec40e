"""`python -m commrouter.kernel -f CONNECTION_FILE`: run the reference kernel."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from commrouter.kernel.kernel import CommrouterKernel
from commrouter.transports.jupyter_sockets import ConnectionInfo

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def kernel_id_from(connection_file: str) -> str | None:
    """Jupyter names connection files `kernel-<kernel id>.json`: the id the browser knows."""
    name = Path(connection_file).name
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-") : -len(".json")] or None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m commrouter.kernel")
    parser.add_argument("-f", "--connection-file", required=True)
    args = parser.parse_args(argv)
    kernel = CommrouterKernel(
        ConnectionInfo.from_file(args.connection_file),
        kernel_id=kernel_id_from(args.connection_file),
        connection_dir=Path(args.connection_file).resolve().parent,
    )

    # SIGTERM (jupyter_client's shutdown after its grace), SIGHUP (the terminal went away) and
    # SIGINT (someone's kill -INT or Ctrl-C; a cell is interrupted by interrupt_request, the
    # kernelspec's interrupt_mode is "message") all stop the kernel as a shutdown_request does:
    # the running program is killed, its pipes removed, the actors stopped. The handler only
    # sets a flag; the main thread, waiting on it, does the stopping. A handler, not SIG_IGN:
    # an ignored signal would stay ignored in the programs the kernel starts.
    def on_signal(signum: int, frame: object) -> None:
        kernel.request_stop(signal.Signals(signum).name)

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    kernel.start()
    kernel.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
