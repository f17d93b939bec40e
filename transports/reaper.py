"""The reaper: cleans up after a kernel process that died without cleaning up (SIGKILL, a
crash, the OOM killer).

A cell program runs in its own session, so nothing kills it with its kernel, and only the
kernel removes the link's FIFOs. The reaper is a small helper process (standard library only,
this very file run as a script), started on first use, in a session of its own (so a signal to
the kernel's process group, as jupyter_client sends, does not reach it). The kernel tells it,
one JSON line at a time on its stdin, which process groups and directories to clean up should
the kernel die (`watch_group`, `watch_directory`), and which no longer need it (`forget_*`).
When its stdin reaches end-of-file, the kernel has gone, however it went: it kills each
watched process group (SIGKILL) and removes each watched directory, then exits. A kernel that
stops normally has forgotten everything by then, and the reaper just exits.

Only the kernel holds the write end of the reaper's stdin (it is close-on-exec, so programs do
not inherit it). If the reaper itself dies, the next call starts a new one and hands it what is
still watched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import IO, Any


class Reaper:
    """The kernel side: one per process (`Reaper.shared()`), thread-safe, never raises."""

    _shared: Reaper | None = None
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._directories: set[str] = set()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()

    @classmethod
    def shared(cls) -> Reaper:
        with cls._shared_lock:
            if cls._shared is None or cls._shared._owner != os.getpid():  # not a fork's copy
                cls._shared = cls()
            return cls._shared

    def watch_group(self, pgid: int) -> None:
        self._change(self._groups, pgid, add=True)

    def forget_group(self, pgid: int) -> None:
        self._change(self._groups, pgid, add=False)

    def watch_directory(self, path: str) -> None:
        self._change(self._directories, path, add=True)

    def forget_directory(self, path: str) -> None:
        self._change(self._directories, path, add=False)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _change(self, watched: set[Any], item: Any, *, add: bool) -> None:
        kind = "group" if watched is self._groups else "directory"
        with self._lock:
            if add:
                watched.add(item)
            elif item in watched:
                watched.discard(item)
            else:
                return
            line = json.dumps({"op": "+" if add else "-", kind: item}) + "\n"
            self._send(line.encode())

    def _send(self, data: bytes) -> None:
        """Under the lock. A reaper that died is replaced, and told everything watched."""
        for _ in range(2):
            process = self._process
            if process is None or process.poll() is not None:
                process = self._start()
                if process is None:
                    return  # cannot start one: the kernel works on without the safety net
                data = self._everything()
            try:
                assert process.stdin is not None
                process.stdin.write(data)
                process.stdin.flush()
                return
            except OSError:  # it died under us: start another
                self._process = None

    def _everything(self) -> bytes:
        lines = [json.dumps({"op": "+", "group": g}) for g in self._groups]
        lines += [json.dumps({"op": "+", "directory": d}) for d in self._directories]
        return "".join(line + "\n" for line in lines).encode()

    def _start(self) -> subprocess.Popen[bytes] | None:
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            self._process = None
        return self._process


def serve(stdin: IO[bytes]) -> None:
    """The reaper process: follow the kernel's lines until end-of-file, then clean up."""
    groups: set[int] = set()
    directories: set[str] = set()
    for raw in stdin:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            line = json.loads(raw)
            target = groups if "group" in line else directories
            item = line["group"] if "group" in line else line["directory"]
            if line["op"] == "+":
                target.add(item)
            else:
                target.discard(item)
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    for path in directories:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # a terminal's signals: not the kernel's death
    serve(sys.stdin.buffer)
