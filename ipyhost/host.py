"""`IPythonHost`: one `CommRouter` inside the running ipykernel, and the process's one host.

What it provides the router (the host contract, docs/architecture.md "Hosts"): the kernel id
(from the connection file's name, `kernel-<id>.json`, as jupyter_server names it); a publisher
on IOPub with an explicit parent per publish; every comm_open / comm_msg / comm_close of the
`commrouter` target as it arrives (on a subshell when the page uses one, so not queued behind
a running cell); one program for the whole session, linked in-process, whose requests carry the
parent of the caller. Router logs go to a JSON-lines file beside the connection file, never to
the console: whatever a router thread writes to stderr would land in a cell's output.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from commrouter import program
from commrouter.config import Settings, load_settings
from commrouter.embedding import CommRouter
from commrouter.frontend.install import page_config
from commrouter.ipyhost.output import KernelOutput
from commrouter.ipyhost.publisher import IPyKernelPublisher
from commrouter.ipyhost.widget_transport import (
    WidgetEdge,
    WidgetPublisher,
    choose_transport,
    widget_config,
)
from commrouter.kernel.kernel import kernel_log_file
from commrouter.transports.local_link import LocalProgramLink

STOP_CLOSE_WAIT = 1.0  # seconds unload waits for the page's comm_close to be published


def kernel_identity(connection_file: str | None) -> tuple[str, Path | None]:
    """The kernel id the page knows (jupyter_server names connection files
    `kernel-<id>.json`; otherwise a fresh id) and the connection file's directory."""
    if not connection_file:
        return uuid.uuid4().hex, None
    path = Path(connection_file).resolve()
    name = path.name
    if name.startswith("kernel-") and name.endswith(".json") and len(name) > 12:
        return name[len("kernel-") : -len(".json")], path.parent
    return uuid.uuid4().hex, path.parent


def embedded_settings(settings: Settings, kernel_id: str, connection_dir: Path | None) -> Settings:
    """`settings` for a router embedded in ipykernel: no console log (it would be cell output),
    and the JSON-lines log beside the connection file unless `log.file` says otherwise."""
    log = dataclasses.replace(settings.log, console=False)
    path = kernel_log_file(log, kernel_id, connection_dir)
    if path is not None and not log.file:
        log = dataclasses.replace(log, file=str(path))
    return dataclasses.replace(settings, log=log)


class IPythonHost:
    """Hosts one `CommRouter` in the ipykernel of `shell` (an IPython `ZMQInteractiveShell`).

    Args:
        shell: the running IPython shell; `shell.kernel` is the ipykernel kernel.
        settings: router settings (default: `load_settings()`), made embeddable.
        connection_file: where the kernel id is read (default: ipykernel's connection file).
    """

    def __init__(
        self,
        shell: Any,
        *,
        settings: Settings | None = None,
        connection_file: str | None = None,
    ) -> None:
        kernel = getattr(shell, "kernel", None)
        if kernel is None or getattr(kernel, "iopub_socket", None) is None:
            raise RuntimeError(
                "commrouter's IPython extension runs in a Jupyter kernel (ipykernel); "
                "this IPython has no kernel"
            )
        if connection_file is None:
            from ipykernel.connect import get_connection_file

            with contextlib.suppress(Exception):  # no kernel app (embedded): a fresh id
                connection_file = get_connection_file()
        self.shell = shell
        self.kernel = kernel
        self.kernel_id, connection_dir = kernel_identity(connection_file)
        settings = embedded_settings(settings or load_settings(), self.kernel_id, connection_dir)
        self.settings = settings
        self._comms: dict[str, Any] = {}
        # the page transport (docs/frontend.md): the link widget when ipywidgets and anywidget
        # import here (or as `connection.transport` says), else the install script
        self.transport = choose_transport(settings.connection.transport)
        self.widget: Any = None
        self.edge: WidgetEdge | None = None
        install_display = None
        if self.transport == "widget":
            self.edge = WidgetEdge(uuid.uuid4().hex, settings.connection.target_name)
            self.publisher: IPyKernelPublisher = WidgetPublisher(
                kernel, self.edge, self._forget_comm
            )
            install_display = self.edge.install_display()
        else:
            self.publisher = IPyKernelPublisher(kernel, self._forget_comm)
        self.router = CommRouter(
            self.kernel_id, self.publisher, settings=settings, install_display=install_display
        )
        if self.edge is not None:  # refused page messages go to the router's log
            self.edge.log = self.router.logger.bind(actor="ipyhost")
        self.program_id = f"ipython-{uuid.uuid4().hex[:12]}"
        self.link = LocalProgramLink(
            self.program_id, inflight_limit=self.router.settings.program.inflight_limit
        )
        self._previous_link: program.BaseLink | None = None
        self._manager: Any = None

    # ---------------------------------------------------------------------- lifecycle

    def start(self) -> IPythonHost:
        """Start the router, link the session as its program, register the comm target."""
        import comm

        self.router.start()
        self.router.program_started(self.program_id, self.link)
        side = self.link.program_side(
            KernelOutput(self.shell),
            timeout=self.settings.program.read_timeout,
            max_frame_bytes=self.settings.program.max_frame_bytes,
            kernel_id=self.kernel_id,
            # `transport`: with the link widget, the widget manager's restore links a reloaded
            # page or a second tab; the saved widget displays need not connect it themselves
            page=json.dumps(
                {**page_config(self.kernel_id, self.settings), "transport": self.transport}
            ),
        )
        self._previous_link = program.use_link(side)
        self._manager = comm.get_comm_manager()
        self._manager.register_target(self.settings.connection.target_name, self._comm_opened)
        self.shell.events.register("post_execute", self._cell_ended)
        if self.edge is not None:
            self.widget = self._open_widget(self.edge)
        atexit.register(self.stop)
        return self

    def _open_widget(self, edge: WidgetEdge) -> Any:
        """Create the link widget (its comm_open reaches every page of this kernel; each page's
        widget manager makes the model, whose module opens the link at once)."""
        from commrouter.ipyhost.link_widget import LinkWidget

        router = self.router

        def on_custom(content: Any, msg: dict[str, Any], concurrent: bool) -> None:
            edge.handle(content, msg, router, concurrent)

        return LinkWidget(
            model_id=edge.model_id,
            config=widget_config(self.kernel_id, self.settings),
            on_custom=on_custom,
            last_values=edge.values.snapshot,
        )

    @property
    def running(self) -> bool:
        return self.router.running

    def stop(self) -> None:
        """Close the page's comm, unlink the program, stop the router. Idempotent."""
        if not self.router.running:
            return
        atexit.unregister(self.stop)
        with contextlib.suppress(ValueError):  # not registered
            self.shell.events.unregister("post_execute", self._cell_ended)
        if self._manager is not None:
            with contextlib.suppress(KeyError):
                self._manager.unregister_target(self.settings.connection.target_name, None)
        widgets = sys.modules.get("commrouter.program.widget_base")
        if widgets is not None:  # the session (the program) ends: its widgets are shown ended
            with contextlib.suppress(Exception):
                widgets.end_all()
        with contextlib.suppress(Exception):  # what waits for the display rate goes now
            self.router.publish_waiting_displays()
        with contextlib.suppress(Exception):  # best effort: the page re-installs on next use
            self.router.close(parent=self.kernel.get_parent()).get(STOP_CLOSE_WAIT)
        program.use_link(None)
        self.link.close()
        self.router.stop()
        if self.widget is not None:  # after the router's comm_close: the page's model goes
            with contextlib.suppress(Exception):
                self.widget.close()
            self.widget = None
        for comm_id in list(self._comms):
            self._forget_comm(comm_id)

    def _cell_ended(self) -> None:
        """IPython's `post_execute`, on the shell thread before ipykernel replies: the cell's
        displays still waiting for the display rate are published now (after the reply,
        JupyterLab would not show them)."""
        try:
            self.router.publish_waiting_displays()
        except Exception as error:  # noqa: BLE001 - never fail the user's cell for it
            self.router.logger.bind(actor="ipyhost").warning(
                "ipyhost.displays_not_published", error=repr(error)
            )

    # ---------------------------------------------------------------- comms from the page

    def _comm_opened(self, comm: Any, msg: dict[str, Any]) -> None:
        """The target's callback (comm_open), on the thread that handles it."""
        self._comms[comm.comm_id] = comm
        comm.on_msg(self._comm_msg)
        comm.on_close(self._comm_close)
        # ipykernel runs a comm's messages during a cell only when they come on a subshell
        concurrent = bool(msg.get("header", {}).get("subshell_id"))
        self.router.handle_comm_open(
            msg["content"], parent=msg, msg_id=_msg_id(msg), concurrent=concurrent
        )

    def _comm_msg(self, msg: dict[str, Any]) -> None:
        self.router.handle_comm_msg(msg["content"], parent=msg, msg_id=_msg_id(msg))

    def _comm_close(self, msg: dict[str, Any]) -> None:
        self._comms.pop(msg["content"].get("comm_id"), None)
        self.router.handle_comm_close(msg["content"], parent=msg, msg_id=_msg_id(msg))

    def _forget_comm(self, comm_id: str) -> None:
        """The router closed `comm_id`: drop the kernel-side comm object without a second
        comm_close."""
        comm = self._comms.pop(comm_id, None)
        if comm is not None and self._manager is not None:
            with contextlib.suppress(KeyError):
                self._manager.unregister_comm(comm)


def _msg_id(msg: dict[str, Any]) -> str | None:
    return msg.get("header", {}).get("msg_id")


_host: IPythonHost | None = None
_lock = threading.Lock()


def current_host() -> IPythonHost | None:
    """The running host of this process, if any."""
    return _host if _host is not None and _host.running else None


def load(shell: Any = None, *, settings: Settings | None = None) -> IPythonHost:
    """Start the process's host in the running ipykernel (idempotent: returns the running
    one). `shell` defaults to `get_ipython()`."""
    global _host
    with _lock:
        if _host is not None and _host.running:
            return _host
        if shell is None:
            from IPython import get_ipython

            shell = get_ipython()
        if shell is None:
            raise RuntimeError("commrouter's IPython extension needs a running IPython kernel")
        _host = IPythonHost(shell, settings=settings).start()
        return _host


def unload() -> None:
    """Stop the process's host, if one runs (idempotent)."""
    global _host
    with _lock:
        host, _host = _host, None
    if host is not None:
        host.stop()
