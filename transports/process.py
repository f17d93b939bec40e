"""A cell program as a subprocess: its handle (`ProgramRun`) and its watcher (`ProgramProcess`).

`ProgramProcess` starts the command in its own session (so signals reach the whole process
group) with stdin from /dev/null, and runs three daemon threads: two stream stdout and stderr
to the host (`Publisher.stream`, UTF-8 with replacement), one waits for the exit. Output is
published as it comes while it comes slowly; a flood is gathered into at most
`program.output_messages_per_second` stream messages per second and stream (a token bucket on
the injected clock), as ipykernel gathers a cell's prints. A loop that prints each step would
otherwise publish thousands of IOPub messages a second: over a slow reader's high-water mark,
where they crowd out the router's own messages, and possibly over jupyter_server's IOPub rate
limit (the notebook then hides output).
After the exit it drains what is left (the link's requests and the output), bounded by
`program.drain_timeout`, then tells the ProgramExecutor `ProgramExited` — unless the router is
stopping (`detach()`), in which case it closes the link and settles the handle itself. No
thread ever tells the executor after `detach()`.
"""

from __future__ import annotations

import codecs
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from commrouter.actors.runtime import Promise
from commrouter.router.messages import Parent, ProgramExited
from commrouter.timing.clock import Clock, MonotonicClock
from commrouter.timing.rate import TokenBucket
from commrouter.transports.fifo_link import FifoLink
from commrouter.transports.interfaces import Publisher
from commrouter.transports.reaper import Reaper

STREAM_CHUNK = 64 * 1024
OUTPUT_BURST = 5  # stream messages published at once before the rate applies


class ProgramRun:
    """The host's handle on one program started by `CommRouter.run_program`.

    `wait(timeout)` returns the exit status once the program is finished (its link closed, its
    pipes removed); like `subprocess`, a negative status -N means it was killed by signal N.
    """

    def __init__(self, program_id: str, signal_program: Callable[[str, int], None]) -> None:
        self.program_id = program_id
        self._signal_program = signal_program
        self._exit: Promise[int] = Promise()
        self.process: ProgramProcess | None = None  # set once spawned: signals go direct

    def wait(self, timeout: float | None) -> int:
        """The exit status; raises TimeoutError (`PromiseTimeout`) if the program is not
        finished within `timeout` seconds, or the error that kept it from starting. `None`
        waits without a bound (a kernel's execution thread; everything else should bound it)."""
        return self._exit.get(timeout)  # type: ignore[arg-type]

    @property
    def returncode(self) -> int | None:
        """The exit status once finished, else None."""
        if not self._exit.done or self._exit.error is not None:
            return None
        return self._exit.get(0)

    @property
    def done(self) -> bool:
        return self._exit.done

    def send_signal(self, signum: int) -> None:
        """Send `signum` to the program's process group (a no-op once it exited). Once the
        program runs, at once from this thread (an interrupt must not wait behind values queued
        for the executor); before, through the executor, in order after its start."""
        process = self.process
        if process is not None and process.signal(signum):
            process.log.info("program.signalled", program_id=self.program_id, signum=signum)
            return
        self._signal_program(self.program_id, signum)

    def interrupt(self) -> None:
        """SIGINT: a Python program gets KeyboardInterrupt."""
        self.send_signal(signal.SIGINT)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def settle(self, returncode: int) -> None:
        self._exit.resolve(returncode)

    def fail(self, error: BaseException) -> None:
        self._exit.fail(error)

    def __repr__(self) -> str:
        return f"ProgramRun({self.program_id!r}, returncode={self.returncode})"


class ProgramProcess:
    """One running program: the subprocess, its link, its output and exit watchers."""

    def __init__(
        self,
        run: ProgramRun,
        argv: Sequence[str],
        *,
        cwd: str | None,
        env: Mapping[str, str],
        link: FifoLink,
        parent: Parent,
        publisher: Publisher,
        notify: Callable[[Any], None],
        drain_timeout: float,
        logger: Any,
        output_rate: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.run = run
        self.program_id = run.program_id
        self.link = link
        self._argv = list(argv)
        self._cwd = cwd
        self._env = dict(env)
        self._parent = parent
        self._publisher = publisher
        self._notify = notify
        self._drain_timeout = drain_timeout
        self._output_rate = output_rate
        self._clock = clock or MonotonicClock()
        self._log = self.log = logger
        self._lock = threading.Lock()
        self._detached = False
        self._streams: list[threading.Thread] = []
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def start(self) -> None:
        """Spawn the program (raises OSError if it cannot start) and start the watchers."""
        self.popen = subprocess.Popen(
            self._argv,
            cwd=self._cwd,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        # its own session: nothing would stop it with a kernel that dies; the reaper does
        Reaper.shared().watch_group(self.popen.pid)
        for name, stream in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr)):
            assert stream is not None
            thread = threading.Thread(
                target=self._stream,
                args=(name, stream),
                name=f"commrouter-{name}-{self.program_id}",
                daemon=True,
            )
            thread.start()
            self._streams.append(thread)
        threading.Thread(
            target=self._wait, name=f"commrouter-wait-{self.program_id}", daemon=True
        ).start()

    def signal(self, signum: int) -> bool:
        """Signal the program's process group; False if it already exited."""
        popen = self.popen
        if popen is None or popen.returncode is not None:
            return False
        try:
            os.killpg(popen.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def detach(self) -> None:
        """The router is stopping: never tell the executor anything from now on."""
        with self._lock:
            self._detached = True

    def settle_if_exited(self) -> None:
        """After `detach`: settle the handle now if the process already exited (its watcher
        may have told an executor that will never answer)."""
        popen = self.popen
        if popen is not None and popen.returncode is not None:
            self.run.settle(popen.returncode)

    # ---------------------------------------------------------------------- threads

    def _stream(self, name: str, stream: IO[bytes]) -> None:
        """Publish one output stream until its end: what was read waits while the stream's
        bucket has no token, and goes out as one message when one comes (or at the end)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        fd = stream.fileno()
        clock = self._clock
        bucket = TokenBucket(self._output_rate, OUTPUT_BURST, clock.now())
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        held: list[str] = []
        try:
            while True:
                timeout = None
                if held:
                    if bucket.take(clock.now()):
                        self._publish(name, "".join(held))
                        held.clear()
                    else:
                        timeout = bucket.wait(clock.now())
                if not poller.poll(None if timeout is None else max(1, int(timeout * 1000))):
                    continue  # the token came: publish what is held
                data = os.read(fd, STREAM_CHUNK)
                text = decoder.decode(data, final=not data)
                if text:
                    held.append(text)
                if not data:  # the end: what is held goes now
                    if held:
                        self._publish(name, "".join(held))
                    return
        finally:
            stream.close()

    def _publish(self, name: str, text: str) -> None:
        if self._detached:
            return
        try:
            self._publisher.stream(name, text, self._parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self._log.error(
                "program.stream_failed", program_id=self.program_id, stream=name, error=repr(error)
            )

    def _wait(self) -> None:
        assert self.popen is not None
        returncode = self.popen.wait()
        Reaper.shared().forget_group(self.popen.pid)
        self.link.program_exited()
        deadline = time.monotonic() + self._drain_timeout
        drained = self.link.wait_drained(self._drain_timeout)
        for thread in self._streams:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not drained or any(t.is_alive() for t in self._streams):
            self._log.warning(
                "program.drain_timeout",
                program_id=self.program_id,
                waited=self._drain_timeout,
                requests_drained=drained,
                output_open=[t.name for t in self._streams if t.is_alive()],
                reason="a process the program started may still hold its pipes",
            )
        with self._lock:
            if not self._detached:
                self._notify(ProgramExited(self.program_id, returncode))
                return
        self.link.close()
        self.run.settle(returncode)
