"""The reaper on its own: a process that watches a directory and a process group through it,
has its reaper killed under it (a new one takes over), then dies by SIGKILL: the group is
killed and the directory removed all the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

OWNER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from commrouter.transports.reaper import Reaper

    directory = sys.argv[1]
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
    )
    reaper = Reaper.shared()
    reaper.watch_directory(directory)
    first = reaper.pid
    os.kill(first, signal.SIGKILL)  # the reaper dies under us...
    os.waitpid(first, 0)
    reaper.watch_group(sleeper.pid)  # ...the next call starts another and hands it everything
    print(sleeper.pid, first, reaper.pid, flush=True)
    time.sleep(300)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_the_reaper_cleans_up_after_a_killed_owner_even_after_it_was_replaced(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "commrouter-link-test"
    directory.mkdir()
    (directory / "to_kernel").write_text("")
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        sleeper, first, second = (int(x) for x in owner.stdout.readline().split())
        assert first != second and alive(sleeper) and directory.exists()
        owner.kill()  # SIGKILL: the owner cleans up nothing itself
        assert owner.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while (alive(sleeper) or directory.exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(sleeper), "the watched process group survived its owner"
        assert not directory.exists(), "the watched directory was left behind"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
