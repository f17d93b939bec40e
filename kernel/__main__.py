"""`python -m commrouter.kernel -f CONNECTION_FILE`: run the reference kernel."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from commrouter.kernel.kernel import CommrouterKernel
from commrouter.transports.jupyter_sockets import ConnectionInfo


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
    # Interrupts arrive as interrupt_request (interrupt_mode "message"); a SIGINT sent to the
    # process group (Ctrl-C in a terminal) is for the running cell, not the kernel. A handler,
    # not SIG_IGN: an ignored signal stays ignored in the programs the kernel starts.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    kernel = CommrouterKernel(
        ConnectionInfo.from_file(args.connection_file),
        kernel_id=kernel_id_from(args.connection_file),
        connection_dir=Path(args.connection_file).resolve().parent,
    )
    kernel.start()
    kernel.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
