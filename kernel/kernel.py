"""CommrouterKernel: answers the Jupyter protocol and hosts the router.

Shell and control messages are handled on the sockets' IO thread as they arrive. Executions
run one at a time on an execution thread, each cell as a program through the router
(`CommRouter.run_program`), so comm messages are handled at once even while a cell runs.
The kernel uses only the public embedding facade: another kernel can host the router the
same way (see README).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import queue
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from commrouter import CommRouter, __version__
from commrouter.config import LogSettings, Settings, load_settings
from commrouter.kernel.publisher import KernelPublisher
from commrouter.kernel.throttle import LogThrottle
from commrouter.transports.jupyter_sockets import ConnectionInfo, KernelSockets
from commrouter.transports.jupyter_wire import (
    PROTOCOL_VERSION,
    WireError,
    WireMessage,
    encode,
)

Command = Callable[[str], Sequence[str]]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def python_command(code: str) -> list[str]:
    """The default: run the cell's code with the kernel's own Python."""
    return [sys.executable, "-c", code]


def kernel_log_file(
    log: LogSettings, kernel_id: str, connection_dir: str | os.PathLike[str] | None
) -> Path | None:
    """Where the kernel writes its JSON-lines log: `log.file` if set, else `log.kernel_file`
    with `{connection_dir}` and `{kernel_id}` filled in (by default
    `<Jupyter runtime dir>/commrouter-<kernel id>.jsonl`, beside the connection file); None for
    no file (both empty, or `{connection_dir}` asked for but not known)."""
    if log.file:
        return Path(log.file).expanduser()
    if not log.kernel_file or ("{connection_dir}" in log.kernel_file and connection_dir is None):
        return None
    path = log.kernel_file.format(
        connection_dir=os.fspath(connection_dir or ""), kernel_id=kernel_id
    )
    return Path(path).expanduser()


def error_content(error: BaseException) -> dict[str, Any]:
    """The content of an error reply (`status: error`) for a request whose handler failed."""
    return {"status": "error", "ename": type(error).__name__, "evalue": str(error), "traceback": []}


def cursor_in(content: Any) -> int:
    """A complete_request's cursor, clamped into its code (any JSON may arrive here)."""
    code = content.get("code")
    length = len(code) if isinstance(code, str) else 0
    cursor = content.get("cursor_pos")
    if type(cursor) is not int:
        return length  # the protocol's default: the end of the code
    return min(max(cursor, 0), length)


class CommrouterKernel:
    """A Jupyter kernel whose cells run as programs linked to the browser by commrouter.

    Args:
        info: the connection file's contents.
        command: turns a cell's code into the argv of the program to run (swap this to run
            cells in another language or interpreter).
        settings: router settings (defaults: `load_settings()`).
        kernel_id: the id the browser knows (Jupyter names the connection file after it).
        connection_dir: the connection file's directory: where the log goes by default
            (`kernel_log_file`); without it, only an explicit `log.file` is written.
    """

    def __init__(
        self,
        info: ConnectionInfo,
        *,
        command: Command = python_command,
        settings: Settings | None = None,
        kernel_id: str | None = None,
        connection_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.session = uuid.uuid4().hex
        self.kernel_id = kernel_id or uuid.uuid4().hex
        self.command = command
        settings = settings or load_settings()
        self.log_file = kernel_log_file(settings.log, self.kernel_id, connection_dir)
        if self.log_file is not None and not settings.log.file:
            log = dataclasses.replace(settings.log, file=str(self.log_file))
            settings = dataclasses.replace(settings, log=log)
        self.sockets = KernelSockets(
            info, self._on_message, self._on_refused, hold_shell=self._hold_shell
        )
        self._holding = False
        self._hold_above = settings.actors.inbox_limit
        self.publisher = KernelPublisher(self.sockets, self.session)
        self.router = CommRouter(self.kernel_id, self.publisher, settings=settings)
        self.log = self.router.logger.bind(actor="kernel")
        self._throttle = LogThrottle(self.router.time.clock, limit=settings.log.refusals_per_second)
        self.execution_count = 0
        self._executions: queue.Queue[tuple[str, WireMessage] | None] = queue.Queue()
        self._running: Any = None  # the ProgramRun of the cell being executed
        self._lock = threading.Lock()
        self.done = threading.Event()
        self._executing = threading.Event()  # a cell is running
        self.restart_requested = False
        self.stop_reason = "shutdown_request"
        self._handlers: dict[str, Callable[[str, WireMessage], None]] = {
            "kernel_info_request": self._kernel_info,
            "execute_request": self._execute,
            "comm_open": self._comm_open,
            "comm_msg": self._comm_msg,
            "comm_close": self._comm_close,
            "comm_info_request": self._comm_info,
            "interrupt_request": self._interrupt,
            "shutdown_request": self._shutdown,
            "is_complete_request": self._is_complete,
            "complete_request": self._no_completions,
            "inspect_request": self._nothing_to_inspect,
            "history_request": self._no_history,
        }

    # -------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.router.start()
        self.sockets.start()
        threading.Thread(
            target=self._execution_loop, name="commrouter-kernel-exec", daemon=True
        ).start()
        self.publisher.status("starting", {})
        log_file = None if self.log_file is None else str(self.log_file)
        self.log.info("kernel.started", kernel_id=self.kernel_id, log_file=log_file)
        info = self.sockets.info
        if info.transport == "tcp" and info.ip not in LOOPBACK:
            self.log.warning(
                "kernel.exposed",
                ip=info.ip,
                reason="not a loopback address: messages travel unencrypted (docs/reliability.md)",
            )

    def wait(self) -> None:
        """Block until a shutdown_request was answered (or `request_stop`), then stop
        everything."""
        self.done.wait()  # a signal handler's request_stop sets it (the wait is interruptible)
        self.log.info("kernel.stopping", reason=self.stop_reason)
        self.stop()

    def request_stop(self, reason: str) -> None:
        """Ask `wait` to stop the kernel (a signal handler calls this; it only sets a flag)."""
        self.stop_reason = reason
        self.done.set()

    def stop(self) -> None:
        """Stop, in an order that leaves nothing behind, each step bounded: stop taking
        messages (the sockets close after sending what was queued, the shutdown_reply
        included), then stop the program and the router (which kills what still runs and
        removes its pipes)."""
        self.done.set()  # from now on the IO thread drops what arrives
        self._executions.put(None)
        self.sockets.stop()
        with self._lock:
            running = self._running
        if running is not None:
            running.kill()
        self.router.stop()

    # -------------------------------------------------------------- message handling

    def _hold_shell(self) -> bool:
        """Backpressure (asked by the IO thread at every wake-up): leave shell unread while
        more than `actors.inbox_limit` messages wait in the actors' inboxes, until fewer than a
        fifth of that do. Control is always read."""
        backlog = self.router.backlog()
        if self._holding and backlog < self._hold_above // 5:
            self._holding = False
            self.log.info("kernel.shell_resumed", backlog=backlog)
        elif not self._holding and backlog > self._hold_above:
            self._holding = True
            self.log.info("kernel.shell_held", backlog=backlog)
        return self._holding

    def _on_refused(self, channel: str, error: WireError) -> None:
        log_it, suppressed = self._throttle.admit(channel, error.reason)
        if suppressed:
            self.log.warning(
                "kernel.drops_suppressed",
                channel=channel,
                reason=error.reason,
                count=suppressed,
                window=self._throttle.window,
            )
        if log_it:
            self.log.warning(
                "kernel.message_dropped", channel=channel, reason=error.reason, detail=error.detail
            )

    def _on_message(self, channel: str, message: WireMessage) -> None:
        handler = self._handlers.get(message.msg_type)
        if self.done.is_set():  # shutting down: the router may be gone already
            self.log.info(
                "kernel.message_dropped",
                channel=channel,
                reason="shutting down",
                msg_type=message.msg_type[:80],
                msg_id=message.msg_id[:80],
            )
            return
        if handler is None:
            self.log.info(
                "kernel.message_dropped",
                channel=channel,
                reason="unknown type",
                msg_type=message.msg_type[:80],
                msg_id=message.msg_id[:80],
            )
            return
        if message.msg_type == "execute_request":
            handler(channel, message)  # busy/idle are published around the execution itself
            return
        self._status("busy", message)
        try:
            handler(channel, message)
        except Exception as error:  # noqa: BLE001 - one bad request must not stop the kernel
            self.log.error(
                "kernel.handler_failed",
                msg_type=message.msg_type,
                msg_id=message.msg_id,
                error=repr(error),
            )
            if message.msg_type.endswith("_request"):  # the protocol has an error reply
                self._reply(channel, message, error_content(error))
        finally:
            self._status("idle", message)

    def _reply(self, channel: str, request: WireMessage, content: dict[str, Any]) -> None:
        reply_type = request.msg_type.replace("_request", "_reply")
        frames = encode(
            self.sockets.signer,
            self.publisher.headers.encoded(reply_type),
            content,
            request.raw_header or request.header,
            identities=request.identities,
        )
        try:
            self.sockets.send(channel, frames)
        except ConnectionError:  # shutting down: the sockets are already closed
            self.log.info("kernel.reply_not_sent", msg_type=reply_type, msg_id=request.msg_id)

    def _status(self, state: str, parent: WireMessage) -> None:
        try:
            self.publisher.status(state, parent)
        except ConnectionError:  # shutting down: the sockets are already closed
            self.log.info("kernel.status_not_sent", state=state, msg_id=parent.msg_id)

    def _kernel_info(self, channel: str, request: WireMessage) -> None:
        self._reply(
            channel,
            request,
            {
                "status": "ok",
                "protocol_version": PROTOCOL_VERSION,
                "implementation": "commrouter",
                "implementation_version": __version__,
                "language_info": {
                    "name": "python",
                    "version": platform.python_version(),
                    "mimetype": "text/x-python",
                    "file_extension": ".py",
                    "pygments_lexer": "ipython3",
                },
                "banner": f"commrouter {__version__}: cells run as programs linked to the browser",
                "help_links": [],
            },
        )
        # Front-ends ignore the status messages of kernel_info requests (JupyterLab lists them in
        # untracked_message_types), so a client that just connected would not learn that the
        # kernel is idle until it ran something: say so once, without a parent.
        if not self._executing.is_set():
            self.publisher.status("idle", {})

    def _is_complete(self, channel: str, request: WireMessage) -> None:
        self._reply(channel, request, {"status": "complete"})

    # Cells run in fresh processes, so the kernel holds no namespace to complete from, inspect
    # or remember: it says so, rather than leaving the front-end waiting for a reply.

    def _no_completions(self, channel: str, request: WireMessage) -> None:
        cursor = cursor_in(request.content)
        self._reply(
            channel,
            request,
            {
                "status": "ok",
                "matches": [],
                "cursor_start": cursor,
                "cursor_end": cursor,
                "metadata": {},
            },
        )

    def _nothing_to_inspect(self, channel: str, request: WireMessage) -> None:
        self._reply(channel, request, {"status": "ok", "found": False, "data": {}, "metadata": {}})

    def _no_history(self, channel: str, request: WireMessage) -> None:
        self._reply(channel, request, {"status": "ok", "history": []})

    def _comm_open(self, channel: str, request: WireMessage) -> None:
        content = request.content
        if content.get("target_name") == self.router.settings.connection.target_name:
            self.router.handle_comm_open(content, parent=request, msg_id=request.msg_id)
            return
        # the spec: a comm_open for a target we do not have is answered with comm_close
        self.log.info(
            "kernel.comm_refused",
            reason="unknown target",
            target_name=content.get("target_name"),
            comm_id=content.get("comm_id"),
        )
        self.publisher.comm_close(str(content.get("comm_id", "")), {}, request)

    def _comm_msg(self, channel: str, request: WireMessage) -> None:
        content = request.content
        comm_id = content.get("comm_id") if isinstance(content, dict) else None
        self.log.debug("kernel.comm_msg", comm_id=comm_id, msg_id=request.msg_id)
        self.router.handle_comm_msg(content, parent=request, msg_id=request.msg_id)

    def _comm_close(self, channel: str, request: WireMessage) -> None:
        self.router.handle_comm_close(request.content, parent=request, msg_id=request.msg_id)

    def _comm_info(self, channel: str, request: WireMessage) -> None:
        link = self.router.link_state()
        target = request.content.get("target_name")
        name = self.router.settings.connection.target_name
        comms = {}
        if link.opened and link.comm_id and target in (None, name):
            comms[link.comm_id] = {"target_name": name}
        self._reply(channel, request, {"status": "ok", "comms": comms})

    def _interrupt(self, channel: str, request: WireMessage) -> None:
        with self._lock:
            running = self._running
        if running is not None:
            running.interrupt()
        self.log.info("kernel.interrupted", running=running is not None)
        self._reply(channel, request, {"status": "ok"})

    def _shutdown(self, channel: str, request: WireMessage) -> None:
        restart = bool(request.content.get("restart", False))
        self.restart_requested = restart
        self._reply(channel, request, {"status": "ok", "restart": restart})
        self.log.info("kernel.shutdown", restart=restart)
        self.done.set()

    # -------------------------------------------------------------------- execution

    def _execute(self, channel: str, request: WireMessage) -> None:
        self._executions.put((channel, request))

    def _execution_loop(self) -> None:
        while (item := self._executions.get()) is not None:
            if self.done.is_set():  # stopping: cells still queued are not run
                continue
            channel, request = item
            self._executing.set()
            self._status("busy", request)
            try:
                self._run_cell(channel, request)
            except Exception as error:  # noqa: BLE001 - reported as the cell's error
                self.log.error("kernel.execute_failed", msg_id=request.msg_id, error=repr(error))
                self._reply(
                    channel,
                    request,
                    {
                        "status": "error",
                        "ename": type(error).__name__,
                        "evalue": str(error),
                        "traceback": [],
                        "execution_count": self.execution_count,
                    },
                )
            finally:
                self.publisher.set_current(None)
                self._executing.clear()
                self._status("idle", request)

    def _run_cell(self, channel: str, request: WireMessage) -> None:
        code = str(request.content.get("code", ""))
        silent = bool(request.content.get("silent", False))
        if not silent and request.content.get("store_history", True):
            self.execution_count += 1
        count = self.execution_count
        self.publisher.publish("execute_input", {"code": code, "execution_count": count}, request)
        self.publisher.set_current(request)
        run = self.router.run_program(list(self.command(code)), parent=request)
        with self._lock:
            self._running = run
        try:
            returncode = run.wait(None)
        finally:
            with self._lock:
                self._running = None
        if returncode == 0:
            self._reply(
                channel,
                request,
                {"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []},
            )
            return
        ename = "KeyboardInterrupt" if returncode in (-2, 130) else "ProgramFailed"
        evalue = f"the cell's program exited with status {returncode}"
        error = {
            "ename": ename,
            "evalue": evalue,
            "traceback": [f"{ename}: {evalue} (its stderr is shown above)"],
        }
        self.publisher.publish("error", error, request)
        self._reply(channel, request, {"status": "error", "execution_count": count, **error})
