"""The faults added for issue 15, and the heal: a part of `runner.Simulation` (a mixin).

- `iopub.set`: kernel -> page faults (simulation/iopub.py).
- `net.partition`: nothing gets through for `seconds`, toward the kernel, the page or both.
- `net.latency`: the latency changes mid-run (page -> kernel and, with `iopub`, kernel -> page).
- `host.publisher_raises`: for `seconds`, the host's publisher raises on every call (of `kind`).
- `host.crash_on`: the actor `target` fails while handling its `nth` message of type
  `message` from now on, with whatever else was sent to it still queued (the Supervisor restarts
  it; the message it was handling is lost and logged).
- `clock.stall`: the kernel's timers stall for `seconds`: every timer that falls due meanwhile
  fires late, at the end, in order.
- `sim.heal`: every fault still in force is lifted (network and IOPub profiles, partitions, the
  publisher, the clock, pages that ignore pings, hung cells); liveness is strict after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from commrouter.simulation.publisher import KernelHost
from commrouter.simulation.scenario import NetworkProfile

if TYPE_CHECKING:
    from commrouter.embedding import CommRouter
    from commrouter.simulation.cell import Cell
    from commrouter.simulation.iopub import IOPub
    from commrouter.simulation.network import Network
    from commrouter.simulation.page import Page
    from commrouter.simulation.runner import Hooks
    from commrouter.simulation.scenario import Scenario
    from commrouter.simulation.simtime import Item

__all__ = ["HEALED_WINDOW", "FaultActions", "crashing", "raising_publisher"]

HEALED_WINDOW = "@healed"  # a step's page: the window sim.heal chose


class FaultActions:
    """The new faults' actions, as a part of `Simulation`."""

    if TYPE_CHECKING:  # what it uses of the rest of Simulation
        scenario: Scenario
        hooks: Hooks
        network: Network
        iopub: IOPub
        pages: dict[str, Page]
        cells: dict[str, Cell]
        crash_plans: dict[str, list[Any]]
        publisher_failing: tuple[float, str]
        stall: tuple[float, float]
        heal_window: str | None

        def now(self) -> float: ...
        def _open_page(self, name: str) -> None: ...
        def emit(self, event: str, actor: str, level: str = "info", **fields: Any) -> None: ...
        def schedule(
            self, delay: float, label: str, fn: Callable[[], None], entry: str | None = None
        ) -> Item: ...

    def prepare_faults(self, hooks: Hooks) -> Hooks:
        """The faults' state, and the hooks that inject them: the actors are wrapped only for a
        scenario with `host.crash_on`, the publisher only for one with `host.publisher_raises`
        (other runs use the real ones)."""
        self.crash_plans = {}
        self.publisher_failing = (0.0, "any")
        self.stall = (0.0, 0.0)
        self.heal_window = None
        actions = {step.action for step in self.scenario.steps}
        if "host.crash_on" in actions:
            factory = crashing(hooks.router_factory, self.crash_plans)
            hooks = dataclasses.replace(hooks, router_factory=factory)
        if "host.publisher_raises" in actions:
            wrapper = raising_publisher(self, hooks.publisher_wrapper)
            hooks = dataclasses.replace(hooks, publisher_wrapper=wrapper)
        return hooks

    def resolve(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """A step's parameters with `page = "@healed"` made the window `sim.heal` chose."""
        if params.get("page") == HEALED_WINDOW:
            return {**params, "page": self.heal_window}
        return params

    def _do_iopub_set(self, p: Mapping[str, Any]) -> None:
        self.iopub.set_profile(dict(p))

    def _do_net_partition(self, p: Mapping[str, Any]) -> None:
        until = round(self.now() + float(p["seconds"]), 6)
        direction = p.get("direction", "both")
        if direction in ("both", "to_kernel"):
            self.network.partitioned_until = max(self.network.partitioned_until, until)
        if direction in ("both", "to_page"):
            self.iopub.partitioned_until = max(self.iopub.partitioned_until, until)
        self.emit("net.partitioned", "net", "warning", until=until, direction=direction)
        self.schedule(until - self.now(), "partition ends", lambda: self._partition_over(until))

    def _partition_over(self, until: float) -> None:
        if max(self.network.partitioned_until, self.iopub.partitioned_until) <= self.now():
            self.emit("net.partition_healed", "net")

    def _do_net_latency(self, p: Mapping[str, Any]) -> None:
        frontend = self.scenario.frontend
        changes: dict[str, Any] = {}
        for key, name in (("latency", "latency"), ("iopub", "iopub_latency")):
            if key in p:
                value = p[key]
                low, high = (value, value) if not isinstance(value, list) else value
                changes[name] = (float(low), float(high))
        self.scenario = dataclasses.replace(
            self.scenario, frontend=dataclasses.replace(frontend, **changes)
        )
        fe = self.scenario.frontend
        self.emit("net.latency", "net", latency=list(fe.latency), iopub=list(fe.iopub_latency))

    def _do_host_publisher_raises(self, p: Mapping[str, Any]) -> None:
        until = round(self.now() + float(p["seconds"]), 6)
        kind = str(p.get("kind", "any"))
        self.publisher_failing = (until, kind)
        self.emit("host.publisher_failing", "host", "warning", until=until, kind=kind)

    def _do_host_crash_on(self, p: Mapping[str, Any]) -> None:
        self.crash_plans[str(p["target"])] = [str(p["message"]), int(p.get("nth", 1))]
        self.emit(
            "host.crash_armed",
            "host",
            target=p["target"],
            message=p["message"],
            nth=int(p.get("nth", 1)),
        )

    def _do_clock_stall(self, p: Mapping[str, Any]) -> None:
        end = round(self.now() + float(p["seconds"]), 6)
        self.stall = (self.now(), max(end, self.stall[1]))
        self.emit("sim.clock_stalled", "sim", "warning", until=self.stall[1])
        self.schedule(end - self.now(), "the clock runs again", lambda: None, entry="supervisor")

    def timer_limit(self, until: float) -> float:
        """Router timers may fire up to `until`; during a stall only those due before it."""
        start, end = self.stall
        return min(until, start) if start <= self.now() < end else until

    def _do_sim_heal(self, p: Mapping[str, Any]) -> None:
        now = self.now()
        self.network.profile = NetworkProfile()
        self.network.partitioned_until = min(self.network.partitioned_until, now)
        self.iopub.partitioned_until = min(self.iopub.partitioned_until, now)
        if self.iopub.profile.faulty:
            self.iopub.set_profile({})
        self.publisher_failing = (now, "any")
        self.crash_plans.clear()
        self.stall = (self.stall[0], min(self.stall[1], now))
        for page in self.pages.values():
            page.answer_pings = True
        for cell in self.cells.values():
            if cell.running and cell.hung:
                cell.hung = False
                cell.emit("cell.resumed")
        alive = [page for page in self.pages.values() if page.alive]
        linked = [page for page in alive if page.hub is not None and page.hub.link_open]
        if not alive:  # the traffic after the heal needs a window
            self._open_page(f"window-{len(self.pages) + 1}")
            alive = [page for page in self.pages.values() if page.alive]
        self.heal_window = (linked or alive)[0].name
        self.emit("sim.healed", "sim", window=self.heal_window)


def raising_publisher(sim: Any, wrapped: Callable[[KernelHost], Any] | None) -> Callable[..., Any]:
    """A publisher wrapper that raises while `sim.publisher_failing` says so, around the
    test's own wrapper (if any)."""

    def wrap(host: KernelHost) -> Any:
        inner = host if wrapped is None else wrapped(host)
        return _Raising(sim, inner)

    return wrap


class _Raising:
    def __init__(self, sim: Any, inner: Any) -> None:
        self.sim = sim
        self.inner = inner

    def _check(self, kind: str) -> None:
        until, which = self.sim.publisher_failing
        if self.sim.now() < until and which in ("any", kind):
            raise RuntimeError(f"injected: the publisher failed ({kind})")

    def comm_msg(self, *args: Any, **kwargs: Any) -> Any:
        self._check("comm_msg")
        return self.inner.comm_msg(*args, **kwargs)

    def comm_close(self, *args: Any, **kwargs: Any) -> Any:
        self._check("comm_close")
        return self.inner.comm_close(*args, **kwargs)

    def display(self, *args: Any, **kwargs: Any) -> Any:
        self._check("display")
        return self.inner.display(*args, **kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        self._check("stream")
        return self.inner.stream(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def crashing(factory: Callable[..., CommRouter], plans: dict[str, list[Any]]) -> Callable[..., Any]:
    """A `router_factory` whose actors fail on the message `plans` names (see `host.crash_on`)."""

    def build(*args: Any, **kwargs: Any) -> CommRouter:
        from commrouter.actors.supervisor import ActorSpec

        router = factory(*args, **kwargs)
        router.actor_specs = tuple(
            ActorSpec(_crashing_class(spec.actor_class, plans), spec.new_state)
            for spec in router.actor_specs
        )
        return router

    return build


def _crashing_class(cls: type[Any], plans: dict[str, list[Any]]) -> type[Any]:
    class Crashing(cls):  # type: ignore[misc, valid-type]
        @classmethod
        def _handler_for(klass, message_type: type) -> Any:
            handler = super()._handler_for(message_type)
            if handler is None:
                return None

            def handle(self: Any, message: Any) -> Any:
                plan = plans.get(self.name)
                if plan is not None and type(message).__name__ == plan[0]:
                    plan[1] -= 1
                    if plan[1] <= 0:
                        del plans[self.name]
                        raise RuntimeError(f"injected: crashed handling {plan[0]}")
                return handler(self, message)

            return handle

    Crashing.__name__ = cls.__name__  # pykka names the thread after it (publisher.py reads it)
    Crashing.__qualname__ = cls.__qualname__
    return Crashing
