"""`ProgramGate`: the running program's link hands its sends straight to the Connection while
nothing it told the ProgramExecutor before is still waiting there (issue 16, one hand-off less
on a value's way to the page; docs/performance.md, "Fewer hand-offs").

The gate is the link's sink while its program runs. Everything the link emits goes to the
executor's urgent lane as before (wrapped in `GatedEvent`, so the executor reports each one
handled), except a `ProgramSend` when, under the gate's lock:

- every event told to the executor has been handled (`told == handled`), so whatever the
  executor forwarded to the Connection for them is already in the Connection's inbox, and the
  send, told after, lands behind it (a pykka inbox is one FIFO queue);
- no route barrier is up (no subscribe waits for its route: the executor holds everything after
  one, and a subscribe told is counted unhandled until the executor reports the barrier); and
- the program is still the running one: `close()`, called by the executor's `_finish` before it
  tells the Connection `ProgramContext(None)`, takes the same lock, so a send told directly is
  in the Connection's inbox before that, and a send after it goes to the executor, which drops
  it as before.

The link's flow control is unchanged: a `LinkCheckpoint` goes through the executor and is
answered once everything before it was handled there or told to the Connection directly.

Off by default (`program.direct_sends`): measured here it saves a hand-off for a value alone on
its way (the gate goes direct only while the Connection's inbox is empty), but the batches
toward the page get smaller under load (docs/performance.md, "Fewer hand-offs").

Only in real time. In virtual time the gate is not used (every event goes to the executor):
whether a send may go directly depends on how far the executor's thread got, and the simulation
promises the same log for the same seed.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from commrouter.router.messages import GatedEvent, LinkEvent, ProgramSend, ProgramSubscribe

if TYPE_CHECKING:
    from commrouter.actors.runtime import Slot
    from commrouter.router.messages import Parent


class ProgramGate:
    """The sink of one program's link: sends straight to the Connection when that keeps their
    order, everything else through the ProgramExecutor. Thread-safe."""

    __slots__ = (
        "_barrier",
        "_connection",
        "_executor",
        "_handled",
        "_lock",
        "_log",
        "_parent",
        "_program_id",
        "_told",
        "direct",
    )

    def __init__(
        self, program_id: str, parent: Parent, executor: Slot, connection: Slot, log: Any
    ) -> None:
        self._lock = threading.Lock()
        self._program_id: str | None = program_id  # None once the executor finished it
        self._parent = parent  # the program's start parent, for sends that carry none
        self._executor = executor
        self._connection = connection
        self._log = log
        self._told = 0  # events told to the executor through this gate
        self._handled = 0  # of those, how many the executor handled
        self._barrier = False  # a subscribe waits for its route (raised when one is told)
        self.direct = 0  # sends told straight to the Connection

    def __call__(self, event: LinkEvent) -> None:
        """The link's sink (on the link's thread, or a program's thread in process)."""
        with self._lock:
            if (
                type(event) is ProgramSend
                and self._told == self._handled
                and not self._barrier
                and event.program_id == self._program_id
                and self._idle()
            ):
                self.direct += 1
                if event.parent is None:
                    event = replace(event, parent=self._parent)
                self._log.debug(
                    "program.send_accepted",
                    address=event.address,
                    program_id=event.program_id,
                    value=event.value,
                )
                self._connection.tell(event)  # under the lock: see close()
                return
            self._told += 1
            if type(event) is ProgramSubscribe:
                self._barrier = True  # before it is told: nothing after it goes directly
            self._executor.tell_urgent(GatedEvent(event, self))

    def _idle(self) -> bool:
        """Nothing waits in the Connection's inbox: a value alone on its way (a sequential round
        trip), where the hop saved is latency. Under load a send waits behind others anyway, and
        goes through the executor, whose urgent lane wakes it once per burst and hands the
        Connection bursts it publishes as one batch (docs/performance.md, "Fewer hand-offs")."""
        ref = self._connection.ref
        return ref is not None and ref.actor_inbox.empty()

    def handled(self, barrier: bool) -> None:
        """The executor handled one event of this gate (and told the Connection whatever it
        forwards for it); `barrier`: a subscribe still waits for its route."""
        with self._lock:
            self._handled += 1
            self._barrier = barrier

    def routes_ready(self) -> None:
        """The executor has every route it waited for, and released what it held."""
        with self._lock:
            self._barrier = False

    def close(self) -> None:
        """The program is finished: from now on every event goes to the executor (which drops
        what its program can no longer ask). Called before the Connection is told."""
        with self._lock:
            self._program_id = None
