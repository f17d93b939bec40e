"""Start the commrouter kernel through its installed kernelspec with a real jupyter_client,
and wait on its messages (bounded) instead of sleeping."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from commrouter.kernel.spec import KERNEL_NAME, install


@contextmanager
def running_kernel(
    tmp: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[KernelManager, BlockingKernelClient, Path]]:
    """Yield (manager, client, log file) for a kernel started from a freshly installed spec."""
    spec_dir = install(prefix=str(tmp / "prefix"))
    manager = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]),
    )
    # jupyter_server names connection files kernel-<kernel id>.json; the kernel reads its id there
    manager.connection_file = str(tmp / f"kernel-{uuid.uuid4()}.json")
    log_file = tmp / "kernel.jsonl"
    kernel_env = {
        "COMMROUTER_LOG_FILE": str(log_file),
        "COMMROUTER_LOG_CONSOLE": "false",
        "COMMROUTER_LOG_LEVEL": "debug",
        **(env or {}),
    }
    manager.start_kernel(env={**os.environ, **kernel_env})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield manager, client, log_file
    finally:
        client.stop_channels()
        if manager.has_kernel and manager.is_alive():
            manager.shutdown_kernel(now=False)


def kernel_id_of(manager: KernelManager) -> str:
    return Path(manager.connection_file).name[len("kernel-") : -len(".json")]


def iopub_until(
    client: BlockingKernelClient, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Collect IOPub messages until one matches; fail after `timeout` seconds."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            types = [m["msg_type"] for m in seen]
            raise AssertionError(f"no matching IOPub message within {timeout} s; saw {types}")
        message = client.get_iopub_msg(timeout=remaining)
        seen.append(message)
        if match(message):
            return seen


def log_events(log_file: Path, name: str | None = None) -> list[dict[str, Any]]:
    if not log_file.exists():
        return []
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    events = []
    for index, line in enumerate(lines):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if index < len(lines) - 1:
                raise
            # the kernel is still writing its last line (read while a flood is logged)
    return [e for e in events if name is None or e["event"] == name]


def comm_msg_to(address: str) -> Callable[[dict[str, Any]], bool]:
    """Matches an IOPub comm_msg for `address`."""
    return lambda m: m["msg_type"] == "comm_msg" and m["content"]["data"].get("address") == address


def open_comm(
    client: BlockingKernelClient, manager: KernelManager, timeout: float = 30.0
) -> tuple[str, list[dict[str, Any]]]:
    """Open a commrouter comm as the browser does; returns its id and the IOPub messages seen
    up to the kernel's `#comm_open_ack`."""
    comm_id = uuid.uuid4().hex
    content = {
        "comm_id": comm_id,
        "target_name": "commrouter",
        "data": {"kernel_id": kernel_id_of(manager)},
    }
    client.shell_channel.send(client.session.msg("comm_open", content))
    seen = iopub_until(client, comm_msg_to("#comm_open_ack"), timeout)
    assert seen[-1]["content"]["comm_id"] == comm_id
    return comm_id, seen
