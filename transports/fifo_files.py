"""The files of one `FifoLink`: its private directory (mode 0700), the two FIFOs in it (mode
0600), the descriptors the kernel holds on them, and the wake-up pipe of the link's thread.

`to_kernel` is opened `O_RDONLY | O_NONBLOCK` (`rx`), and the kernel also holds a write end
(`rx_hold`) until the program exited; `to_program` is opened `O_RDWR | O_NONBLOCK` (`tx`).
`transports/fifo_link.py` explains why. Not locked here: `FifoLink` calls these under its
lock, or from its own thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from commrouter.transports.reaper import Reaper


class FifoFiles:
    """A private directory holding `to_kernel` and `to_program`, with the kernel's descriptors.

    Args:
        directory: where the private directory is created (default: the system temp dir).
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = tempfile.mkdtemp(prefix="commrouter-link-", dir=directory)  # 0700
        Reaper.shared().watch_directory(self.directory)  # removed even if the kernel is killed
        self.to_kernel_path = os.path.join(self.directory, "to_kernel")
        self.to_program_path = os.path.join(self.directory, "to_program")
        self.fds: list[int] = []
        try:
            for path in (self.to_kernel_path, self.to_program_path):
                os.mkfifo(path, 0o600)
                os.chmod(path, 0o600)  # exactly, whatever the umask
            self.rx = self._open(self.to_kernel_path, os.O_RDONLY | os.O_NONBLOCK)
            self.rx_hold = self._open(self.to_kernel_path, os.O_WRONLY | os.O_NONBLOCK)
            self.tx = self._open(self.to_program_path, os.O_RDWR | os.O_NONBLOCK)
            self.wake_r, self.wake_w = os.pipe()
            self.fds += [self.wake_r, self.wake_w]
            os.set_blocking(self.wake_r, False)
            os.set_blocking(self.wake_w, False)
        except BaseException:
            self.close_fds()
            self.remove()
            raise

    def _open(self, path: str, flags: int) -> int:
        fd = os.open(path, flags)  # not inherited by the program (O_CLOEXEC by default)
        self.fds.append(fd)
        return fd

    def drop_write_end(self) -> None:
        """Close the kernel's own write end of `to_kernel` (the program's process ended)."""
        fd, self.rx_hold = self.rx_hold, -1
        if fd >= 0 and fd in self.fds:
            self.fds.remove(fd)
            os.close(fd)

    def wake(self) -> None:
        """Wake the I/O thread. Called under the link's lock: the descriptors are still open."""
        if not self.fds:
            return
        with contextlib.suppress(OSError):  # BlockingIOError: full, so already awake
            os.write(self.wake_w, b"\0")

    def close_fds(self) -> None:
        """Close every descriptor still held (the wake-up pipe's too)."""
        fds, self.fds = self.fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def remove(self) -> None:
        """Remove the FIFOs and the directory."""
        shutil.rmtree(self.directory, ignore_errors=True)
        Reaper.shared().forget_directory(self.directory)


def drain(fd: int) -> None:
    """Read a non-blocking descriptor (the wake-up pipe) until it is empty."""
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass
