"""What the windows share, a mixin of the Connection actor (actors/connection.py): a window's
values relayed to the other windows, the snapshot a new window is sent, and reads asked of one
window at a time (docs/protocol.md, "Windows").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from commrouter.actors.page_flow import copy_entry
from commrouter.router.messages import FrontEndValue
from commrouter.router.page_outbox import READ, VALUE, Entry, PageOutbox
from commrouter.router.page_window import ReadTrack, Window

if TYPE_CHECKING:
    from commrouter.actors.connection import Connection

    _Base = Connection
else:
    _Base = object


class PageSharing(_Base):
    """One state in every window: relays, snapshots, and reads answered by any window."""

    def _relay(self, values: list[FrontEndValue], source: Window | None) -> None:
        """What one window sent is the state every window shows: the other open windows are
        sent it too (merged like any value), and it is the address's last value. The window it
        came from gets it back only when a state the router sent on its own (a snapshot, another
        window's value) is still on its way there for that address: arriving after the page's
        own newer change, it would overwrite it."""
        st = self.state
        now = self.clock.now()
        others = [w for w in st.windows.values() if w is not source]
        count = 0
        for value in values:
            address = value.address
            if value.read_failed is not None or address[0] == "#":
                continue
            st.last_values.record(address, value.value)
            targets = others
            if source is not None and _owes(source.outbox, address):
                targets = [*others, source]
            for window in targets:
                echo = window is source  # its own value back: nothing to overwrite later
                entry = Entry(VALUE, address, value.value, queued_at=now, restated=not echo)
                self._put(window.outbox, entry)
                count += 1
        if count:
            st.relayed += count
            self.log.debug("connection.relayed", count=count, windows=len(others))
            self._pump(None)

    def _snapshot(self, window: Window, catch_up: bool = False) -> None:
        """A new window (no resume) is sent the last value of every state address that
        nothing owed to it covers already, so its widgets show the current state at once; then
        the stream values another window has not acknowledged yet (the page being reloaded may
        be that window: they are history no one has seen). With `catch_up` (a window back from
        the dead: what it is owed may be older than the state), every address."""
        outbox = window.outbox
        owed = set() if catch_up else {e.address for e in (*outbox.inflight, *outbox.pending)}
        now = self.clock.now()
        count = 0
        for address, (value, origin) in self.state.last_values.items():
            if address not in owed:
                entry = Entry(VALUE, address, value, queued_at=now, origin=origin, restated=True)
                outbox.put(entry)
                count += 1
        streams: dict[int, Entry] = {}
        for other in self.state.windows.values():
            if other is not window:
                for entry in (*other.outbox.inflight, *other.outbox.pending):
                    if entry.kind == VALUE and entry.stream:
                        streams.setdefault(entry.origin, entry)
        for origin in sorted(streams):
            outbox.put(copy_entry(streams[origin]))
        if count or streams:
            self.log.info(
                "connection.snapshot",
                comm_id=window.comm_id,
                addresses=count,
                streams=len(streams),
            )

    # -------------------------------------------------------------------------- reads

    def _read_outbox(self) -> PageOutbox:
        """A read asks one window: the one heard from last (every window shows the same
        state); it asks the next only if that one holds nothing there."""
        st = self.state
        if not st.windows:
            return self._outboxes()[0]
        return max(st.windows.values(), key=lambda w: w.last_heard).outbox

    def _ask_another_window(self, address: str, comm_id: str) -> bool:
        """Window `comm_id` holds nothing at `address`: ask a window not asked yet, if any
        (True); else the read fails (False)."""
        st = self.state
        track = st.reads.setdefault(address, ReadTrack(st.program_id))
        track.asked.add(comm_id)
        left = [w for w in st.windows.values() if w.comm_id not in track.asked]
        if not left:
            del st.reads[address]
            return False
        window = max(left, key=lambda w: w.last_heard)
        read = Entry(READ, address, None, track.program_id, queued_at=self.clock.now())
        self._put(window.outbox, read)
        self.log.info("connection.read_asked_again", address=address, comm_id=window.comm_id)
        self._pump(None)
        return True

    def _reask_reads(self, outbox: PageOutbox, comm_id: str) -> None:
        """A window went away with read requests it had not answered: ask another one."""
        for entry in (*outbox.inflight, *outbox.pending):
            if entry.kind == READ and entry.address is not None:
                self.state.reads.setdefault(entry.address, ReadTrack(entry.program_id))
                self._put(self._read_outbox(), copy_entry(entry))


def _owes(outbox: PageOutbox, address: str) -> bool:
    """A value for `address` that the router restated (a snapshot's, another window's) waits
    in `outbox` or was sent and not acknowledged. Bounded work per page value: what waits for
    an address is its one mergeable entry, and at most `flow.window` entries are in flight."""
    waiting = outbox.waiting.get(address)
    if waiting is not None and waiting.restated:
        return True
    return any(e.address == address and e.restated for e in outbox.inflight)
