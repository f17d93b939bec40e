"""`CommRouter`: the embedding facade a host kernel uses.

The host gives the router its kernel id and a `Publisher` (how to publish comm messages and
display data toward the front-end), hands it every incoming comm_open / comm_msg / comm_close
for the router's target, and tells it when a cell program starts and finishes. Everything else
happens in the actors; no method here blocks on an actor except the bounded snapshot queries.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from commrouter.actors.connection import Connection, ConnectionState
from commrouter.actors.context import (
    CONNECTION,
    PROGRAM,
    ROUTER,
    SUBSCRIPTIONS,
    SUPERVISOR,
    ActorContext,
)
from commrouter.actors.heartbeat import Heartbeat, HeartbeatState
from commrouter.actors.program_executor import ExecutorState, ProgramExecutor
from commrouter.actors.router import Router, RouterState
from commrouter.actors.runtime import Promise, Slot
from commrouter.actors.subscriptions import Subscriptions, SubscriptionsState
from commrouter.actors.supervisor import ActorSpec, Supervisor
from commrouter.config import Settings, load_settings
from commrouter.frontend import render_install_html
from commrouter.observability.logging import Sink, build_logger, close_sinks
from commrouter.router.errors import RouterNotRunning
from commrouter.router.messages import (
    ActorCrashed,
    CloseLink,
    CommCloseReceived,
    CommMsgReceived,
    CommOpenReceived,
    Crash,
    EnsureFrontEnd,
    HeartbeatRequest,
    LinkSnapshot,
    Parent,
    ProgramFinished,
    ProgramSnapshot,
    PublishWaitingDisplays,
    QueryHealth,
    QueryLink,
    QueryProgram,
    QueryRoutes,
    QuerySubscriptions,
    RunProgram,
    SendToFrontEnd,
    SignalProgram,
    StartProgram,
)
from commrouter.router.values import check_address, check_json
from commrouter.timing import RealTime, VirtualTime
from commrouter.transports.interfaces import ProgramLink, Publisher
from commrouter.transports.process import ProgramRun

T = TypeVar("T")

# Start order; stop runs in reverse (the program link first, the address table last).
ACTORS = (
    ActorSpec(Router, RouterState),
    ActorSpec(Subscriptions, SubscriptionsState),
    ActorSpec(Heartbeat, HeartbeatState),
    ActorSpec(Connection, ConnectionState),
    ActorSpec(ProgramExecutor, ExecutorState),
)


class CommRouter:
    """The address/value router between a cell program and the browser, embedded in a kernel.

    `actor_specs` (class or instance attribute, read at `__init__` and `start`) lists the
    actors in start order; a test harness may swap an actor class for a subclass of it.

    Args:
        kernel_id: this kernel's id; a comm_open must carry it to be accepted.
        publisher: publishes toward the front-end (thread-safe; see `transports.Publisher`).
        settings: tunables; defaults to `load_settings()` (defaults, user file, environment).
        time: `RealTime()` in production (the default); a `VirtualTime` in tests/simulations.
        log_sinks: extra event sinks (e.g. an `observability.Recorder`), beside the file and
            console sinks the settings ask for.
        install_display: the mime bundle published (transiently) to install the front-end;
            default: the install script (`frontend/install.html`) as text/html. ipykernel's host
            passes its link widget's view here (the widget transport, docs/frontend.md).
    """

    actor_specs: tuple[ActorSpec, ...] = ACTORS

    def __init__(
        self,
        kernel_id: str,
        publisher: Publisher,
        *,
        settings: Settings | None = None,
        time: RealTime | VirtualTime | None = None,
        log_sinks: Iterable[Sink] = (),
        install_display: Mapping[str, Any] | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self.publisher = publisher
        self.settings = settings or load_settings()
        self.time = time or RealTime()
        self.logger = build_logger(self.settings.log, self.time.clock, log_sinks)
        self._log = self.logger.bind(actor="commrouter")
        activity = self.time.activity
        names = (*(spec.actor_class.name for spec in self.actor_specs), SUPERVISOR)
        self._slots = {name: Slot(name, activity) for name in names}
        self._ask_timeout = self.settings.actors.ask_timeout
        self._supervisor: Any = None
        self._ctx = ActorContext(
            kernel_id=kernel_id,
            settings=self.settings,
            clock=self.time.clock,
            scheduler=self.time.scheduler,
            logger=self.logger,
            publisher=publisher,
            slots=self._slots,
            report_crash=self._report_crash,
            install_display=install_display
            or {"text/html": render_install_html(kernel_id, self.settings), "text/plain": ""},
        )

    # ---------------------------------------------------------------------- lifecycle

    def start(self) -> CommRouter:
        """Start the scheduler and the actors (in order). Returns self."""
        if self._supervisor is not None:
            return self
        self.time.scheduler.start()
        slot = self._slots[SUPERVISOR]
        self._supervisor = Supervisor.start(self._ctx, slot, list(self.actor_specs))
        slot.attach(self._supervisor)
        self._log.info("commrouter.started", kernel_id=self.kernel_id)
        return self

    def stop(self) -> None:
        """Stop every actor in order (each bounded by `actors.stop_timeout`), then the timers."""
        if self._supervisor is None:
            return
        supervisor, self._supervisor = self._supervisor, None
        timeout = self.settings.actors.stop_timeout * (len(self.actor_specs) + 1)
        try:
            supervisor.stop(block=True, timeout=timeout)
        finally:
            self._slots[SUPERVISOR].detach()
            self.time.scheduler.stop()
            self._log.info("commrouter.stopped", kernel_id=self.kernel_id)
            close_sinks(self.logger)

    def __enter__(self) -> CommRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._supervisor is not None

    # ------------------------------------------------------- incoming from the front-end

    def handle_comm_open(
        self,
        content: Mapping[str, Any] | None,
        parent: Parent = None,
        msg_id: str | None = None,
        *,
        concurrent: bool = True,
    ) -> None:
        """Hand over a comm_open's content (`comm_id`, `target_name`, `data.kernel_id`).

        `concurrent`: whether the host hands over this comm's messages while a cell runs (the
        reference kernel always does; ipykernel only when they come on a subshell). If not, a
        sync cannot wait for the page's acknowledgements (they queue behind the running cell):
        it is answered once everything before it was published."""
        self._tell(CONNECTION, CommOpenReceived(content, parent, msg_id, concurrent))

    def handle_comm_msg(
        self, content: Mapping[str, Any] | None, parent: Parent = None, msg_id: str | None = None
    ) -> None:
        """Hand over a comm_msg's content (`comm_id`, `data.address`, `data.value`)."""
        self._tell(CONNECTION, CommMsgReceived(content, parent, msg_id))

    def handle_comm_close(
        self, content: Mapping[str, Any] | None, parent: Parent = None, msg_id: str | None = None
    ) -> None:
        """Hand over a comm_close's content (`comm_id`)."""
        self._tell(CONNECTION, CommCloseReceived(content, parent, msg_id))

    # ------------------------------------------------------------- the host's own calls

    def ensure_front_end(self, parent: Parent = None) -> Promise[bool]:
        """Install the front-end if needed and wait for its comm (the seed's InstallWebSocket).

        The promise resolves True once the link is open and answering, or fails with
        `FrontEndUnavailable` after `connection.wait_for_connection_timeout`.
        """
        reply: Promise[bool] = Promise()
        self._tell(CONNECTION, EnsureFrontEnd(parent, reply))
        return reply

    def send(
        self, address: str, value: Any, parent: Parent = None, *, stream: bool = False
    ) -> Promise[bool]:
        """Send `value` to `address` in the front-end (the seed's Send).

        Raises `InvalidAddress` or `ValueNotJSON` at once for a bad address or value. The
        promise resolves True once the page acknowledged the value (or a newer value that
        replaced it while the page lagged; `stream=True` keeps every value), False when it was
        counted as not shown in a headless run, and fails when it was dropped.
        """
        check_address(address)
        check_json(address, value)
        reply: Promise[bool] = Promise()
        self._tell(CONNECTION, SendToFrontEnd(address, value, parent, reply, stream))
        return reply

    def heartbeat(self, parent: Parent = None, timeout: float | None = None) -> Promise[bool]:
        """Ping the front-end (the seed's SendHeartbeatAndWait): True on the pong to this very
        ping, False on timeout (`timeout`, else the adaptive one: docs/protocol.md, Liveness);
        fails with `LinkNotOpen` without an open comm, `PublishFailed` if sending failed."""
        reply: Promise[bool] = Promise()
        self._tell(CONNECTION, HeartbeatRequest(parent, timeout, reply))
        return reply

    def close(self, parent: Parent = None) -> Promise[bool]:
        """Close the link; comm_close is published only when `parent` is given."""
        reply: Promise[bool] = Promise()
        self._tell(CONNECTION, CloseLink(parent, reply))
        return reply

    # ---------------------------------------------------------------- program lifecycle

    def program_started(self, program_id: str, link: ProgramLink, parent: Parent = None) -> None:
        """A cell program started; `link` is its kernel-side program link."""
        self._tell(PROGRAM, StartProgram(program_id, link, parent))

    def program_finished(self, program_id: str) -> None:
        """The cell program ended; its subscriptions are forgotten, its link closed."""
        self._tell(PROGRAM, ProgramFinished(program_id))

    def run_program(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        parent: Parent = None,
        program_id: str | None = None,
    ) -> ProgramRun:
        """Run `argv` as the cell program, linked to the router over named pipes.

        The program's stdout and stderr are published as they come (`Publisher.stream`), its
        `commrouter.program` calls reach the router, and when it exits it is finished (its
        subscriptions reset, its pipes removed). `env` is the program's whole environment, as
        for `subprocess` (default: the kernel's); the link's variables are added to it. A new
        program replaces the running one (which keeps running, without a link). Returns the
        handle: `wait(timeout)`, `interrupt()`, `terminate()`, `kill()`, `returncode`.
        """
        if isinstance(argv, str | bytes) or not argv:
            raise ValueError(f"argv must be a non-empty sequence of arguments, got {argv!r}")
        args = tuple(os.fspath(arg) for arg in argv)
        program_id = program_id or f"program-{uuid.uuid4().hex[:12]}"
        run = ProgramRun(program_id, self._signal_program)
        where = None if cwd is None else os.fspath(cwd)
        environment = None if env is None else dict(env)
        self._tell(PROGRAM, RunProgram(program_id, args, where, environment, parent, run))
        return run

    def _signal_program(self, program_id: str, signum: int) -> None:
        self._tell(PROGRAM, SignalProgram(program_id, signum))

    # ---------------------------------------------------------------------- inspection

    def link_state(self) -> LinkSnapshot:
        """The front-end link as the Connection actor sees it."""
        return self._ask(CONNECTION, QueryLink)

    def subscriptions(self) -> frozenset[str]:
        """Addresses the running program subscribed to."""
        return self._ask(SUBSCRIPTIONS, QuerySubscriptions)

    def routes(self) -> dict[str, tuple[str, ...]]:
        """The Router's address table: address -> subscriber names."""
        return self._ask(ROUTER, QueryRoutes)

    def publish_waiting_displays(self) -> int:
        """Publish now every display of the running program that waits for the display rate
        (`program.display_messages_per_second`), and return how many. A host whose program
        outlives its cells (ipykernel) calls it when a cell ends, so the cell's displays are
        published before its reply (JupyterLab shows no output that comes after it)."""
        return self._ask(PROGRAM, PublishWaitingDisplays)

    def program_state(self) -> ProgramSnapshot:
        """The ProgramExecutor's view: running program, outbox size, merges, drops."""
        return self._ask(PROGRAM, QueryProgram)

    def health(self) -> dict[str, bool]:
        """Actor name -> alive (False once the supervisor gave up restarting it)."""
        return self._ask(SUPERVISOR, QueryHealth)

    def backlog(self) -> int:
        """Messages waiting in the actors' inboxes, now (approximate, without asking them): a
        host holds its input while this is high, so a flood cannot grow them without bound."""
        total = 0
        for slot in self._slots.values():
            ref = slot.ref
            if ref is not None:
                total += ref.actor_inbox.qsize()
        return total

    def crash(self, actor: str, reason: str = "injected") -> None:
        """Fault injection: make `actor` fail as a handler bug would (it is restarted)."""
        self._tell(actor, Crash(reason))

    # ------------------------------------------------------------------------ internals

    def _tell(self, name: str, message: Any) -> None:
        if self._supervisor is None:
            raise RouterNotRunning("the router is not running: call start() first")
        self._slots[name].tell(message)

    def _ask(self, name: str, make: Callable[[Promise[T]], Any]) -> T:
        reply: Promise[T] = Promise()
        self._tell(name, make(reply))
        return reply.get(self._ask_timeout)

    def _report_crash(self, name: str, error: BaseException | None) -> None:
        if name == SUPERVISOR:
            self._log.critical("commrouter.supervisor_crashed", error=repr(error))
            return
        self._slots[SUPERVISOR].tell(ActorCrashed(name, repr(error)))
