"""Every message the actors exchange: frozen, slotted dataclasses.

Values are JSON data decoded once at the edge; pykka does not copy messages, so no actor ever
mutates a value or a content mapping it received. `parent` is the host's message context (the
kernel message that caused this), opaque to the router and handed back on every publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commrouter.actors.runtime import Promise
    from commrouter.transports.interfaces import ProgramLink
    from commrouter.transports.process import ProgramRun

JSON = Any
Parent = Mapping[str, Any] | None

frozen = dataclass(frozen=True, slots=True)

# ---------------------------------------------------------------- front-end link -> Connection


@frozen
class CommOpenReceived:
    """The host received comm_open; `content` is the message content as decoded by the host."""

    content: Mapping[str, Any] | None
    parent: Parent = None
    msg_id: str | None = None
    concurrent: bool = True  # the host hands this comm's messages over while a cell runs


@frozen
class CommMsgReceived:
    content: Mapping[str, Any] | None
    parent: Parent = None
    msg_id: str | None = None


@frozen
class CommCloseReceived:
    content: Mapping[str, Any] | None
    parent: Parent = None
    msg_id: str | None = None


# ------------------------------------------------------------------- requests to Connection


@frozen
class EnsureFrontEnd:
    """Make sure the front-end is installed and answering (the seed's InstallWebSocket)."""

    parent: Parent
    reply: Promise[bool] | None = None
    program_id: str | None = None


@frozen
class SendToFrontEnd:
    """Host-side send of a value to the front-end (the seed's State.Send)."""

    address: str
    value: JSON
    parent: Parent = None
    reply: Promise[bool] | None = None  # settled when the page acknowledged it (or it is lost)
    stream: bool = False  # never merged with a later value for the same address


@frozen
class ProgramContext:
    """The ProgramExecutor tells the Connection which program runs and the kernel message that
    started it: the parent of what the Connection publishes on that program's behalf."""

    program_id: str | None
    parent: Parent


@frozen
class CloseLink:
    """Close the front-end link; comm_close is published only when `parent` is given."""

    parent: Parent = None
    reply: Promise[bool] | None = None


@frozen
class HeartbeatRequest:
    """Ping the front-end and wait (the seed's SendHeartbeatAndWait)."""

    parent: Parent
    timeout: float | None  # None: the adaptive timeout
    reply: Promise[bool]


@frozen
class QueryLink:
    """Ask the Connection for a snapshot of the link (`LinkSnapshot`)."""

    reply: Promise[LinkSnapshot]


@frozen
class LinkSnapshot:
    installed: bool
    opened: bool
    comm_id: str | None
    display_id: str | None
    last_heard: float | None
    installing: bool
    queued: int  # waiting to be sent
    in_flight: int = 0  # sent, not acknowledged yet
    acked: int = 0  # the page's cumulative ack
    merged: int = 0
    dropped: int = 0
    not_shown: int = 0  # counted in a headless run
    resent: int = 0
    headless: bool = False
    windows: tuple[str, ...] = ()  # the open comms, oldest first (`comm_id` is the newest)


@frozen
class InstallTimedOut:
    install_seq: int


@frozen
class FlushDue:
    """The rate limiter has a token again: send what waits."""


@frozen
class DisplayDue:
    """The program's display rate has a token again: publish what waits."""


@frozen
class DrainDue:
    """The Connection handled what was queued when a stream value came: publish what waits
    (drain batching: the values handled meanwhile go out with it, as one batch)."""


@frozen
class AckOverdue:
    """Timer: the oldest value in flight on window `comm_id` may not have reached it; `acked`
    is what that window had acknowledged when the timer was set."""

    comm_id: str
    generation: int
    acked: int


@frozen
class QueueExpiry:
    """Timer: drop values that waited too long for a page."""


@frozen
class ProbeAnswered:
    """The Heartbeat's answer to the Connection's probe of a silent window."""

    comm_id: str
    probe_seq: int
    answered: bool
    error: str | None = None


# ----------------------------------------------------------------------------- Heartbeat


@frozen
class Probe:
    """Send `#heartbeat/ping` on `comm_id` and settle `reply` with True (pong) or False."""

    comm_id: str
    parent: Parent
    timeout: float | None  # None: the adaptive timeout (docs/protocol.md, Liveness)
    reply: Promise[bool]


@frozen
class PingTimedOut:
    comm_id: str
    ping_seq: int


@frozen
class PingReceived:
    """The front-end pinged us; answer with `#heartbeat/pong` on the same comm."""

    comm_id: str
    parent: Parent
    msg_id: str | None
    number: JSON = True  # echoed in the pong


@frozen
class PongReceived:
    comm_id: str
    msg_id: str | None
    number: JSON = None  # the number of the ping it answers


# -------------------------------------------------------------------------------- Router


@frozen
class FrontEndValue:
    """A validated address/value from the open comm, for the Router to dispatch."""

    address: str
    value: JSON
    comm_id: str
    parent: Parent
    msg_id: str | None
    read_failed: str | None = None  # the page holds no value for `address` (answers a read)


@frozen
class FrontEndBatch:
    """Several validated values that came in one comm message (a batch), in order."""

    values: tuple[FrontEndValue, ...]


@frozen
class RouteAdd:
    """Add `subscriber` for `address`; the Router then tells `RouteReady` to `confirm_to`."""

    address: str
    subscriber: str
    confirm_to: str | None = None
    program_id: str | None = None


@frozen
class RouteReady:
    """The route for a program's subscribe is in the Router's table (or was refused)."""

    program_id: str | None


@frozen
class RouteRemove:
    address: str
    subscriber: str


@frozen
class RoutesCleared:
    subscriber: str


@frozen
class QueryRoutes:
    reply: Promise[dict[str, tuple[str, ...]]]


# ------------------------------------------------------------------------- Subscriptions


@frozen
class ResetSubscriptions:
    """A program started (`program_id`) or finished (None): forget every subscription."""

    program_id: str | None


@frozen
class QuerySubscriptions:
    reply: Promise[frozenset[str]]


# ------------------------------------------------- program link -> ProgramExecutor (decoded)


@frozen
class ProgramSend:
    program_id: str
    address: str
    value: JSON
    stream: bool = False  # never merged with a later value for the same address
    parent: Parent = None  # whose output this request is; None: the program's start parent


@frozen
class ProgramSubscribe:
    program_id: str
    address: str
    parent: Parent = None


@frozen
class ProgramUnsubscribe:
    program_id: str
    address: str


@frozen
class ProgramRead:
    """Ask the front-end for the current value at `address` (answer arrives as a value)."""

    program_id: str
    address: str
    parent: Parent = None


@frozen
class ProgramSync:
    """Acknowledge once everything the program sent before this reached the front-end link."""

    program_id: str
    sync_id: int
    parent: Parent = None


@frozen
class ProgramStartLink:
    """The program's request to start the front-end link (ensure only, nothing sent)."""

    program_id: str
    parent: Parent = None


@frozen
class ProgramDisplay:
    """Rich output from the program: display_data, or update_display_data when `update`."""

    program_id: str
    data: Mapping[str, Any]
    metadata: Mapping[str, Any]
    display_id: str | None
    update: bool
    parent: Parent = None


@frozen
class LinkWritable:
    """The program link has room again after refusing an offer."""

    program_id: str


@frozen
class LinkClosed:
    program_id: str
    reason: str


@frozen
class LinkFault:
    """The link dropped something it could not decode or accept; it keeps serving."""

    program_id: str
    reason: str
    detail: str


@frozen
class LinkCheckpoint:
    """Flow control: the link stops decoding requests until the executor resolves `reply`
    (with `count`, the number of requests the link had emitted before this checkpoint)."""

    program_id: str
    count: int
    reply: Promise[int]


# --------------------------------------------------------- host -> ProgramExecutor, and back


@frozen
class StartProgram:
    program_id: str
    link: ProgramLink
    parent: Parent = None


@frozen
class ProgramFinished:
    program_id: str


@frozen
class RunProgram:
    """Start `argv` as a subprocess linked to the router over named pipes; `run` is the
    caller's handle, settled with the exit status once the program is finished."""

    program_id: str
    argv: tuple[str, ...]
    cwd: str | None
    env: Mapping[str, str] | None
    parent: Parent
    run: ProgramRun


@frozen
class ProgramExited:
    """The program's process ended (its remaining output and requests were drained)."""

    program_id: str
    returncode: int


@frozen
class SignalProgram:
    """Send `signum` to the program's process group (interrupt, terminate, kill)."""

    program_id: str
    signum: int


@frozen
class DeliverToProgram:
    """A front-end value for the running program (it subscribed to `address`), or with
    `read_failed` the page's answer that it holds no value there."""

    address: str
    value: JSON
    msg_id: str | None
    read_failed: str | None = None


@frozen
class SyncDone:
    """The Connection's answer to ProgramSync; `error` when the link could not be reached."""

    program_id: str
    sync_id: int
    error: str | None = None


@frozen
class QueryProgram:
    reply: Promise[ProgramSnapshot]


@frozen
class PublishWaitingDisplays:
    """Publish every display of the program still waiting for the display rate, now; the reply
    says how many (a host's cell ended: its output goes before the cell's reply)."""

    reply: Promise[int]


@frozen
class ProgramSnapshot:
    program_id: str | None
    outbox: int
    merged: int
    dropped: int
    delivered: int = 0


# ---------------------------------------------- what the ProgramExecutor offers to the link


@frozen
class ValueForProgram:
    address: str
    value: JSON


@frozen
class SyncAck:
    sync_id: int
    error: str | None = None


@frozen
class NoPage:
    """No page will answer (a headless run): the program's listeners end and its reads fail
    at once (or return their default). Told by the Connection to the executor, then offered
    to the link."""

    reason: str


@frozen
class ReadFailed:
    """The page holds no value at `address`: the program's reads of it fail at once."""

    address: str
    reason: str


ToProgram = ValueForProgram | SyncAck | NoPage | ReadFailed
FromProgram = (
    ProgramSend
    | ProgramSubscribe
    | ProgramUnsubscribe
    | ProgramRead
    | ProgramSync
    | ProgramStartLink
    | ProgramDisplay
)
LinkEvent = FromProgram | LinkWritable | LinkClosed | LinkFault | LinkCheckpoint


@frozen
class GatedEvent:
    """A program link's event, told to the ProgramExecutor through the program's `ProgramGate`
    (actors/program_gate.py), which counts it handled once the executor's handler returned."""

    event: LinkEvent
    gate: Any  # the ProgramGate (actors/ imports messages, not the other way round)

    @property
    def reply(self) -> Any:
        """The event's waiter (a checkpoint's), failed with it when it cannot be handled."""
        return getattr(self.event, "reply", None)


# ---------------------------------------------------------------------------- supervision


@frozen
class ActorCrashed:
    name: str
    error: str


@frozen
class QueryHealth:
    """Ask the Supervisor which actors are alive (False: it gave up restarting one)."""

    reply: Promise[dict[str, bool]]


@frozen
class Crash:
    """Fault injection: the receiving actor raises, as a bug in a handler would."""

    reason: str = "injected"
