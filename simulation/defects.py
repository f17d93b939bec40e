"""Router defects the simulation must catch, re-introduced through the harness's hooks.

Each entry of `DEFECTS` is a `Hooks` whose `router_factory` builds a `CommRouter` with one actor
swapped for a subclass that brings an old (or plausible) bug back. The actors themselves are not
touched. `commrouter simulate --runs 1000 --defect NAME` runs generated scenarios against it;
the tests (tests/test_simulation_defects.py) show each is caught within 1,000 generated seeds and
that the real router passes the same seeds.

- `stale-pong`: a pong answers whatever ping is pending (the seed's rule): a late pong to an
  earlier ping makes a dead link look alive.
- `sync-over-drops`: `sync()` returns without an error though values sent before it were dropped.
- `slow-page-loses`: one missed pong declares the link dead and drops what waited for the page
  (the seed's rule): a slow but alive page loses values.
- `stranded-in-replaced-window`: values published on a comm that a new comm replaced count as
  acknowledged: they are never sent again, and nothing records their loss.
- `drops-program-values`: every value a program sends is dropped, with a log line that blames a
  missing page (a loss with a log line, on a healthy network).
- `single-link`: one link for the notebook (before issue 13): a new comm takes over and the
  older windows are dropped without a word, so what they send is refused and what they were
  owed goes nowhere. Caught since runs with several windows are judged like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from commrouter.actors.connection import Connection
from commrouter.actors.heartbeat import Heartbeat
from commrouter.actors.supervisor import ActorSpec
from commrouter.embedding import ACTORS, CommRouter
from commrouter.router.messages import CommOpenReceived, PongReceived, ProbeAnswered, ProgramSend
from commrouter.router.page_outbox import Entry
from commrouter.simulation.runner import Hooks

__all__ = ["DEFECTS", "router_with"]


class StalePongHeartbeat(Heartbeat):
    """Any numbered pong answers the pending ping."""

    def handle_PongReceived(self, m: PongReceived) -> None:
        pending = self.state.pending.get(m.comm_id)
        if pending is not None and isinstance(m.number, int) and m.number != pending.number:
            m = dataclasses.replace(m, number=pending.number)
        super().handle_PongReceived(m)


class SyncOverDropsConnection(Connection):
    """A sync's answer forgets what was dropped before it."""

    def _answer_sync(self, marker: Entry, error: str | None = None) -> None:
        marker.lost = None
        super()._answer_sync(marker, None)


class SlowPageConnection(Connection):
    """One missed pong: the link is dead, and what waited for the page is dropped."""

    def handle_ProbeAnswered(self, m: ProbeAnswered) -> None:
        window = self.state.windows.get(m.comm_id)
        probed = window is not None and window.probing and m.probe_seq == window.probe_seq
        if window is not None and probed and not m.answered:
            self._dropped(window.outbox.drop_all(), "link reset: no pong in time")
            m = dataclasses.replace(m, error=m.error or "no pong in time")
        super().handle_ProbeAnswered(m)


class StrandingConnection(Connection):
    """A new comm: what was published on the one it replaces counts as acknowledged."""

    def handle_CommOpenReceived(self, m: CommOpenReceived) -> None:
        st = self.state
        outboxes = [w.outbox for w in st.windows.values()]
        for outbox in [*outboxes, *([st.parked] if st.parked is not None else [])]:
            unacked = outbox.unacked()
            if unacked:
                self._settled(outbox.ack(unacked[-1].seq or 0))
        super().handle_CommOpenReceived(m)


class DroppingConnection(Connection):
    """Every program value is dropped, blamed on a missing page."""

    def handle_ProgramSend(self, m: ProgramSend) -> None:
        self.log.warning(
            "connection.values_dropped",
            reason=f"no page for {self.queue_max_age} s",
            address=m.address,
            program_id=m.program_id,
            count=1,
        )


class SingleLinkConnection(Connection):
    """The newest comm is the link: every other window is removed when one opens."""

    def handle_CommOpenReceived(self, m: CommOpenReceived) -> None:
        super().handle_CommOpenReceived(m)
        newest = m.content.get("comm_id") if isinstance(m.content, Mapping) else None
        if newest in self.state.windows:
            for comm_id, window in list(self.state.windows.items()):
                if comm_id != newest:
                    self._remove_window(window, "replaced by a new comm_open")


def router_with(*replaced: type[Any]) -> Callable[..., CommRouter]:
    """A `router_factory` whose actors of the same name are replaced by `replaced`."""
    by_name = {cls.name: cls for cls in replaced}
    specs = tuple(
        ActorSpec(by_name.get(spec.actor_class.name, spec.actor_class), spec.new_state)
        for spec in ACTORS
    )

    def factory(*args: Any, **kwargs: Any) -> CommRouter:
        router = CommRouter(*args, **kwargs)
        router.actor_specs = specs
        return router

    return factory


DEFECTS: dict[str, Hooks] = {
    "stale-pong": Hooks(router_factory=router_with(StalePongHeartbeat)),
    "sync-over-drops": Hooks(router_factory=router_with(SyncOverDropsConnection)),
    "slow-page-loses": Hooks(router_factory=router_with(SlowPageConnection)),
    "stranded-in-replaced-window": Hooks(router_factory=router_with(StrandingConnection)),
    "drops-program-values": Hooks(router_factory=router_with(DroppingConnection)),
    "single-link": Hooks(router_factory=router_with(SingleLinkConnection)),
}
