"""What every actor runs on: stable slots, promises, quiescence tracking and the base class.

- A `Slot` is the stable address of one actor. Peers and timers hold slots, never pykka refs,
  so that when the supervisor restarts a crashed actor, everything keeps reaching it: messages
  told while it restarts wait in the slot and are handed over in order.
- `Promise` is how an answer travels back without any actor blocking on another.
- Every tell through a slot counts as `Activity` until handled; virtual time steps the world
  only when nothing is in flight, which makes virtual-time tests and simulations deterministic.
- `RouterActor` dispatches each message to `handle_<MessageClass>` through a table built once
  per class, and on a crash hands its unread inbox back to its slot and tells the supervisor.
- Lifecycle before data: `Slot.tell_urgent` puts a message in the slot's urgent lane, which
  the actor empties before it handles its next inbox message, so a program's exit, its link's
  requests or a signal are not stuck behind thousands of queued values. When the actors stop,
  `Slot.discard` makes them skip what is still queued instead of working through it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import pykka

from commrouter.router.errors import HandlerFailed, RouterNotRunning
from commrouter.router.messages import Crash, FrontEndBatch, ProgramSync, SyncDone
from commrouter.timing.activity import Activity

if TYPE_CHECKING:
    from types import TracebackType

    from commrouter.actors.context import ActorContext

T = TypeVar("T")


class PromiseTimeout(TimeoutError):
    """Raised by `Promise.get` when no answer came within the bound."""


class Promise(Generic[T]):
    """A one-shot answer. Resolved once from any thread; callbacks run in the resolving thread."""

    __slots__ = ("_callbacks", "_done", "_error", "_lock", "_value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Promise[T]], None]] = []

    def resolve(self, value: T) -> bool:
        """Set the answer. Returns False (and changes nothing) if already settled."""
        return self._settle(value, None)

    def fail(self, error: BaseException) -> bool:
        """Settle with an error that `get` will raise."""
        return self._settle(None, error)

    def _settle(self, value: T | None, error: BaseException | None) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self._value, self._error = value, error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
        return True

    def on_done(self, callback: Callable[[Promise[T]], None]) -> None:
        """Run `callback(self)` once settled (at once if it already is)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def get(self, timeout: float) -> T:
        """Wait at most `timeout` real seconds for the answer; raise its error if it failed."""
        if not self._done.wait(timeout):
            raise PromiseTimeout(f"no answer within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Wake:
    """Told after an urgent message so that an idle actor takes it at once; no-op itself."""

    __slots__ = ()


WAKE = Wake()


class Slot:
    """The stable address of one actor across restarts.

    `tell` never raises because the actor is restarting: the message waits in the slot and is
    handed to the next incarnation in order. Every tell counts as activity until handled.
    `tell_urgent` overtakes everything told with `tell` (in order among urgent messages).
    """

    __slots__ = (
        "_dead_letters",
        "_lock",
        "_pending",
        "_ref",
        "activity",
        "discarding",
        "name",
        "state",
        "urgent",
        "wake_pending",
    )

    def __init__(self, name: str, activity: Activity, state: Any = None) -> None:
        self.name = name
        self.activity = activity
        self.state = state  # the actor's durable state; outlives each incarnation
        self._ref: pykka.ActorRef[Any] | None = None
        self._pending: list[Any] = []  # envelopes / messages waiting for an incarnation
        self._dead_letters: Callable[[Any], None] | None = None  # set once given up on
        self._lock = threading.Lock()
        self.urgent: deque[Any] = deque()  # the urgent lane; survives restarts
        self.wake_pending = False  # a Wake is on its way (saves one per urgent message)
        self.discarding = False  # stopping: queued messages are skipped, not handled

    def tell_urgent(self, message: Any) -> None:
        """Queue `message` ahead of every message told with `tell`. Deque appends are atomic;
        `wake_pending` means a Wake is queued and not yet taken, and the actor clears it when it
        takes the Wake, before it empties the lane: an urgent message is never left behind."""
        dead_letters = self._dead_letters
        if dead_letters is not None:
            dead_letters(message)
            return
        self.activity.begin()
        self.urgent.append(message)
        if not self.wake_pending:
            self.wake_pending = True
            self.tell(WAKE)

    def discard(self) -> None:
        """The actors stop: skip what is queued (urgent lane included) instead of handling it."""
        self.discarding = True

    def tell(self, message: Any) -> None:
        dead_letters = self._dead_letters
        if dead_letters is not None:
            dead_letters(message)
            return
        self.activity.begin()
        with self._lock:
            ref = self._ref
            if ref is not None:
                try:
                    ref.tell(message)
                    return
                except pykka.ActorDeadError:
                    self._ref = None
            self._pending.append(message)

    @property
    def alive(self) -> bool:
        ref = self._ref
        return ref is not None and ref.is_alive()

    @property
    def ref(self) -> pykka.ActorRef[Any] | None:
        return self._ref

    def attach(self, ref: pykka.ActorRef[Any]) -> int:
        """Point the slot at a new incarnation and hand it what waited. Returns that count."""
        with self._lock:
            pending, self._pending = self._pending, []
            for item in pending:
                if isinstance(item, pykka._envelope.Envelope):
                    ref.actor_inbox.put(item)  # keeps an ask's reply channel intact
                else:
                    ref.tell(item)
            if self.urgent and not pending:  # a crash while emptying the lane: resume it
                self.activity.begin()
                self.wake_pending = True
                ref.tell(WAKE)
            self._ref = ref
        return len(pending)

    def detach_for_restart(self, inbox: Any, first: Any = None) -> int:
        """Called by a dying incarnation: park its unread inbox ahead of later tells (after
        `first`, a message it had taken but not handled yet)."""
        drained: list[Any] = [] if first is None else [first]
        with self._lock:
            self._ref = None
            while not inbox.empty():
                drained.append(inbox.get_nowait())
            self._pending[:0] = drained
        return len(drained)

    def detach(self) -> None:
        with self._lock:
            self._ref = None

    def bury(self, dead_letters: Callable[[Any], None]) -> None:
        """No incarnation will come: hand what waited, and everything told from now on, to
        `dead_letters` (which must not block), and stop counting any of it as in flight."""
        with self._lock:
            self._dead_letters = dead_letters
            self._ref = None
            pending, self._pending = self._pending, []
        for item in pending:
            message = getattr(item, "message", item)  # a parked envelope carries it
            if message is not WAKE:
                dead_letters(message)
            self.activity.done()
        while self.urgent:
            dead_letters(self.urgent.popleft())
            self.activity.done()


def answer_failure(message: Any, error: BaseException) -> None:
    """Fail whoever waits on `message`: its `reply` promise, or its `run` (a program's handle);
    a message nobody waits on is left alone."""
    for name in ("reply", "run"):
        waiter = getattr(message, name, None)
        fail = getattr(waiter, "fail", None)
        if fail is not None:
            fail(error)


HandlerTable = dict[type, Callable[[Any, Any], Any]]


class RouterActor(pykka.ThreadingActor):
    """Base of every commrouter actor.

    Subclasses set `name` and define `handle_<MessageClass>(self, message)` methods; the
    dispatch table is built once per class. Actor threads are daemons and never keep the
    process alive. Durable state lives in `self.state` (the slot's), rebuilt state in `__init__`.
    """

    use_daemon_thread = True
    name: ClassVar[str] = "actor"
    _handlers: ClassVar[HandlerTable]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = {}

    @staticmethod
    def _create_actor_inbox() -> Any:
        """pykka's hook for the inbox: a `queue.SimpleQueue` (put/get/empty, all pykka and
        `Slot` use) hands a message over in C, where `queue.Queue` runs Python-level
        Conditions on both sides of every hop (docs/performance.md has the measurement)."""
        return queue.SimpleQueue()

    def __init__(self, context: ActorContext, slot: Slot) -> None:
        super().__init__()
        self.ctx = context
        self.slot = slot
        self.state = slot.state
        self.log = context.logger.bind(actor=self.name)
        self._current: Any = None
        self._deferred: Any = None

    @classmethod
    def _handler_for(cls, message_type: type) -> Callable[[Any, Any], Any] | None:
        handler = cls._handlers.get(message_type)
        if handler is None:
            handler = getattr(cls, "handle_" + message_type.__name__, None)
            if handler is not None:
                cls._handlers[message_type] = handler
        return handler

    def on_receive(self, message: Any) -> Any:
        slot = self.slot
        if slot.discarding:  # stopping: what is queued is not worth handling any more
            answer_failure(message, RouterNotRunning("the router stopped before handling it"))
            slot.activity.done()
            return None
        if message is WAKE:
            slot.wake_pending = False  # before emptying: a later urgent tell sends its own Wake
        if slot.urgent:
            self._deferred = message  # handed to the next incarnation if the lane crashes
            self._take_urgent()
            self._deferred = None
        if message is WAKE:
            slot.activity.done()
            return None
        handler = self._handler_for(type(message))
        if handler is None:
            self.log.error("actor.unknown_message", message_type=type(message).__name__)
            self.slot.activity.done()
            return None
        self._current = message
        result = handler(self, message)  # on an exception, on_failure finishes the accounting
        self._current = None
        self.slot.activity.done()
        return result

    def _take_urgent(self) -> None:
        slot = self.slot
        urgent = slot.urgent
        while urgent and not slot.discarding:
            message = urgent.popleft()
            handler = self._handler_for(type(message))
            if handler is None:
                self.log.error("actor.unknown_message", message_type=type(message).__name__)
            else:
                self._current = message
                handler(self, message)  # on an exception, on_failure does the accounting
                self._current = None
            slot.activity.done()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        parked = self.slot.detach_for_restart(self.actor_inbox, self._deferred)
        failed = self._current
        ids = carried_values(failed)
        first = ids[0] if ids else {}
        self.log.error(
            "actor.crashed",
            error=f"{exception_type.__name__ if exception_type else '?'}: {exception_value}",
            dropped_message=type(failed).__name__ if failed is not None else None,
            parked_messages=parked,
            comm_id=first.get("comm_id"),
            address=first.get("address") if len(ids) == 1 else None,
            program_id=first.get("program_id"),
            msg_id=first.get("msg_id"),
            dropped_addresses=[i["address"] for i in ids] if len(ids) > 1 else None,
            value=first.get("value") if len(ids) == 1 else None,
        )
        if failed is not None:
            error = HandlerFailed(f"the {self.name} actor failed: {exception_value}")
            answer_failure(failed, error)
            if isinstance(failed, ProgramSync):  # the program waits for its answer: give it
                self.ctx.slot("program_executor").tell(  # context.PROGRAM (it imports us)
                    SyncDone(failed.program_id, failed.sync_id, str(error))
                )
        self.ctx.report_crash(self.name, exception_value)
        self.slot.activity.done()  # the message that crashed, counted until reported

    @classmethod
    def given_up(cls, context: ActorContext, state: Any, log: Any) -> None:
        """The supervisor gave up on this actor: release what `state` holds that others wait
        on (called once, on the supervisor's thread; no incarnation runs any more)."""

    def handle_Crash(self, message: Crash) -> None:
        """Fault injection: fail as a bug in a handler would, so the supervisor restarts us."""
        raise RuntimeError(f"crash requested: {message.reason}")

    def tell_self(self, message: Any) -> None:
        """Queue a message to this actor (through the slot, so it survives a restart)."""
        self.slot.tell(message)

    def tell_self_when_drained(self, message: Any) -> bool:
        """Have `message` handled once this actor has handled what is queued for it now.

        Real time: a tell behind the inbox; False (nothing told: act at once) when the inbox
        and the urgent lane are empty, since the message would come next anyway. Virtual time:
        told when no message is in flight anywhere (`Activity.when_quiet`), never False, so
        that what was handled by then, and so what a batch holds, depends on what was
        injected and not on thread timing (the same seed gives the same run).
        """
        slot = self.slot
        if slot.activity.tracked:
            slot.activity.when_quiet(slot, message)
            return True
        if self.actor_inbox.empty() and not slot.urgent:
            return False
        slot.tell(message)
        return True


_IDS = ("comm_id", "address", "program_id", "msg_id", "value")


def carried_values(message: Any) -> list[dict[str, Any]]:
    """The ids (and value) of what a message carries, for a log line about its loss: one dict
    per value of a `FrontEndBatch`, else one of the message's own `comm_id`, `address`,
    `program_id`, `msg_id`, `value` (None where it has none); [] for no message."""
    if message is None:
        return []
    if isinstance(message, FrontEndBatch):
        return [carried_values(value)[0] for value in message.values]
    content = getattr(message, "content", None)  # a comm message from the page, not yet read
    data = content.get("data") if isinstance(content, Mapping) else None
    if isinstance(data, Mapping) and isinstance(content, Mapping):
        batch = data.get("batch")
        items = batch if isinstance(batch, list) else [data]
        base = {
            "comm_id": content.get("comm_id"),
            "program_id": None,
            "msg_id": getattr(message, "msg_id", None),
        }
        found = [
            {**base, "address": item.get("address"), "value": item.get("value")}
            for item in items
            if isinstance(item, Mapping) and isinstance(item.get("address"), str)
        ]
        if found:
            return found
    return [{key: getattr(message, key, None) for key in _IDS}]
