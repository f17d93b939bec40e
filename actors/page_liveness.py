"""The Connection's liveness half: installing the page when no window is open, probing a
silent window with the Heartbeat, and windows going away (closed, found dead, replaced by their
page's new comm) or coming back (a window declared dead that speaks within the grace period)
(docs/protocol.md, "Liveness" and "Windows").

A mixin of the Connection actor (actors/connection.py). Waiters (the host's ensure_front_end,
a program's start) are settled when any window is heard from, or fail when an install does.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import TYPE_CHECKING

from commrouter.actors.page_flow import copy_entry
from commrouter.actors.runtime import Promise
from commrouter.router.errors import FrontEndUnavailable, PublishFailed
from commrouter.router.messages import (
    CommMsgReceived,
    InstallTimedOut,
    Parent,
    Probe,
    ProbeAnswered,
)
from commrouter.router.page_outbox import SYNC, VALUE, PageOutbox
from commrouter.router.page_window import Window

if TYPE_CHECKING:
    from commrouter.actors.connection import Connection

    _Base = Connection
else:
    _Base = object


OPEN_ACK = "#comm_open_ack"
UNTOLD = ("stale", "the page is installed again")  # removals its page does not hear of
REMOVED_LIMIT = 16  # windows removed untold, kept in case their page speaks again


class PageLiveness(_Base):
    """Is there a page? Install one, or find out whether the open windows still answer."""

    def _fresh(self, window: Window) -> bool:
        """Heard from `window` within the request threshold."""
        return self.clock.now() - window.last_heard <= self.threshold

    def _heard(self, window: Window) -> None:
        """Any valid message from a window: it is alive, and a probe of it succeeded."""
        st = self.state
        now = self.clock.now()
        window.last_heard = st.last_heard = now
        if window.probing:
            self._probe_succeeded(window, "heard from the page")
        elif st.waiters and not st.installing:
            self._settle_waiters(True)

    def _ensure(self, parent: Parent, reply: Promise[bool] | None, explicit: bool = False) -> None:
        """Make sure a page is there: a window heard from lately, else probe the silent ones,
        else install. In a headless run nothing is installed again unless asked `explicit`ly
        (the host's ensure_front_end, the program's start): every install would leave a
        script in the saved notebook when no page erases it."""
        st = self.state
        parent = parent or st.program_parent
        if parent is not None:
            st.last_parent = parent
        if st.installing:
            self._wait(reply)
            return
        windows = list(st.windows.values())
        if windows:
            if any(self._fresh(w) for w in windows):
                if reply is not None:
                    reply.resolve(True)
                return
            self._wait(reply)
            for window in windows:
                if not window.probing:
                    self._probe(window, parent)
            return
        if st.headless and not self._may_install_headless(explicit):
            if reply is not None:
                reply.fail(FrontEndUnavailable("headless run: no page has opened the link"))
            return
        self._wait(reply)
        self._install(parent)

    def _may_install_headless(self, explicit: bool) -> bool:
        """In a detected headless run, install again when asked, or when the last attempt is
        `connection.headless_retry` old (a live page that missed the first script, e.g. in a
        background tab, still gets one); never when configured headless."""
        if self.ctx.settings.connection.headless:
            return False
        last = self.state.installed_at
        retry = self.ctx.settings.connection.headless_retry
        return explicit or last is None or self.clock.now() - last >= retry

    def _wait(self, reply: Promise[bool] | None) -> None:
        if reply is not None:
            self.state.waiters.append(reply)

    def _settle_waiters(self, outcome: bool | Exception) -> None:
        waiters, self.state.waiters = self.state.waiters, []
        for waiter in waiters:
            if isinstance(outcome, Exception):
                waiter.fail(outcome)
            else:
                waiter.resolve(outcome)

    # ------------------------------------------------------------------------- probes

    def _probe(self, window: Window, parent: Parent) -> None:
        window.probing = True
        self.state.probe_parent = parent
        self.log.info(
            "connection.probe_started", comm_id=window.comm_id, silent_for=self._silence(window)
        )
        self._ping(window)

    def _ping(self, window: Window) -> None:
        """One ping of a probe; the Heartbeat picks its (adaptive) timeout."""
        window.probe_seq += 1
        seq, comm_id = window.probe_seq, window.comm_id
        answer: Promise[bool] = Promise()
        answer.on_done(
            lambda p: self.tell_self(
                ProbeAnswered(
                    comm_id,
                    seq,
                    p.error is None and bool(p.get(0)),
                    None if p.error is None else str(p.error),
                )
            )
        )
        self.heartbeat.tell(Probe(comm_id, self.state.probe_parent, None, answer))
        # A backstop of our own: if the Heartbeat actor cannot answer (the supervisor gave up on
        # it), the ping still ends, as a failure, a while after the longest it could wait.
        window.probe_timer = self.ctx.scheduler.call_later(
            self.probe_backstop,
            self.slot,
            ProbeAnswered(comm_id, seq, False, "the heartbeat actor did not answer"),
        )

    def handle_ProbeAnswered(self, m: ProbeAnswered) -> None:
        window = self.state.windows.get(m.comm_id)
        if window is None or not window.probing or m.probe_seq != window.probe_seq:
            return
        if window.probe_timer is not None:
            window.probe_timer.cancel()
            window.probe_timer = None
        if m.answered:
            self._probe_succeeded(window, "pong")
            return
        silent = self._silence(window)
        if m.error is None and silent < self.dead_after:
            self.log.info(
                "connection.probe_retried",
                comm_id=window.comm_id,
                silent_for=silent,
                reason="no pong in time",
            )
            self._ping(window)
            return
        self.log.warning(
            "connection.stale",
            comm_id=window.comm_id,
            silent_for=silent,
            reason=m.error or f"silent for {self.dead_after} s",
        )
        window.probing = False  # the probe ends here, with its verdict
        self._remove_window(window, "stale")
        st = self.state
        if st.windows:
            if st.waiters and any(self._fresh(w) for w in st.windows.values()):
                self._settle_waiters(True)
            return
        self._install(st.probe_parent)

    def _probe_succeeded(self, window: Window, how: str) -> None:
        window.probing = False
        if window.probe_timer is not None:
            window.probe_timer.cancel()
            window.probe_timer = None
        self.log.info("connection.probe_answered", comm_id=window.comm_id, by=how)
        self._settle_waiters(True)
        self._pump(None)

    def _silence(self, window: Window) -> float:
        return round(self.clock.now() - window.last_heard, 6)

    # ------------------------------------------------------------------------- windows

    def _remove_window(self, window: Window, why: str) -> None:
        """A window is gone (closed, found dead, replaced). The others keep what they are owed;
        if it was the last one, what it was owed waits for the next comm."""
        st = self.state
        if st.windows.get(window.comm_id) is not window:
            return
        self._end_timers(window, why)
        del st.windows[window.comm_id]
        now = self.clock.now()
        st.gone = {c: g for c, g in st.gone.items() if now - g[0] <= self.grace}
        st.gone[window.comm_id] = (now, None)
        outbox = window.outbox
        if why in UNTOLD:  # its page may be slow, not gone: it can come back (`_take_back`)
            st.removed[window.comm_id] = window
            while len(st.removed) > REMOVED_LIMIT:
                del st.removed[next(iter(st.removed))]
        if not st.windows:
            st.parked = outbox
            self.log.info(
                "connection.window_removed",
                comm_id=window.comm_id,
                reason=why,
                windows=0,
                owed=len(outbox.pending) + outbox.numbered,
            )
            self._arm_expiry()
            return
        self.log.info(
            "connection.window_removed",
            comm_id=window.comm_id,
            reason=why,
            windows=len(st.windows),
            owed=0,
        )
        self._superseded(outbox)
        self._reask_reads(outbox, window.comm_id)
        heir = list(st.windows.values())[-1]
        for marker in outbox.take_markers():  # a sync spans the windows still open...
            track = st.syncs.get((marker.program_id or "", marker.sync_id or 0))
            if track is not None and track.remaining == 1:  # ...unless none of them had it
                heir.outbox.put(marker)  # then it waits for the newest (what it re-asks too)
            else:
                self._marker_done(marker)
        self._pump(None)

    def _superseded(self, outbox: PageOutbox) -> None:
        """What a removed window was still owed is not lost to the page: every other window
        has its own copy, or, opened later, was sent the address's newer state (its snapshot;
        stream values were copied to it). Counted as merged: a newer value took its place (a
        host's send settles as a merged one does)."""
        for entry in (*outbox.inflight, *outbox.pending):
            if entry.kind == VALUE and not entry.stream and entry.origin:
                if entry.reply is not None:
                    entry.reply.resolve(True)
                self.state.merged += 1
                self.log.debug(
                    "connection.value_merged",
                    address=entry.address,
                    program_id=entry.program_id,
                    queued=0,
                    value=entry.value,
                    origin=entry.origin,
                )

    def _dormant(self, window: Window) -> bool:
        """A removed window whose stream no other window took (it was not the last one)."""
        return window.outbox.owner == window.comm_id and window.outbox is not self.state.parked

    def _take_back(self, comm_id: str, m: CommMsgReceived) -> Window | None:
        """A window removed without its page being told (declared dead) speaks: it was slow,
        not gone. With its own stream when no other window took it and nothing else waits
        for the next window (`_revive`); else on a new stream (`_relink`)."""
        st = self.state
        window = st.removed.pop(comm_id)
        if window.outbox.owner == comm_id and window.outbox is st.parked:
            return self._revive(window, m, missed=False)  # the last window; what waits is its own
        if self._dormant(window) and (st.windows or st.parked is None):
            return self._revive(window, m, missed=True)
        return self._relink(window, m)

    def _revive(self, window: Window, m: CommMsgReceived, missed: bool) -> Window:
        """Take the window back, with its stream where it was: what it was owed is sent again
        (and, when it `missed` what happened while it was away, the current state); the
        install started for a new page is erased."""
        st = self.state
        window.last_heard, window.ack_backoff = self.clock.now(), self.ack_timeout
        outbox = window.outbox
        if outbox is st.parked:
            st.parked = None
        self._erase_install_display(m.parent)
        self._admit(window)
        self.log.warning(
            "connection.revived",
            comm_id=window.comm_id,
            msg_id=m.msg_id,
            owed=len(outbox.pending) + outbox.numbered,
        )
        self._settle_waiters(True)
        self._resend(window, "the window declared dead spoke again")
        if missed:
            self._snapshot(window, catch_up=True)
        self._pump(m.parent)
        return window

    def _relink(self, removed: Window, m: CommMsgReceived) -> Window | None:
        """A comm removed without its page being told, whose stream went to another window
        since, speaks: it is linked again as a window on a new stream, numbered above anything
        its page saw (so its acks of the old stream acknowledge nothing here), by a
        `#comm_open_ack` on the comm it still holds. It gets what waits for the next window
        (when none is open), then the current state."""
        st = self.state
        comm_id, concurrent = removed.comm_id, removed.concurrent
        parked = st.parked if not st.windows else None
        base = max(removed.outbox.next_seq - 1, parked.next_seq - 1 if parked is not None else 0)
        outbox = PageOutbox(self.window_size, self.queue_limit, first_seq=base + 1)
        ack = {"stream": outbox.stream, "seq": base + 1}
        try:
            self.publisher.comm_msg(comm_id, {"address": OPEN_ACK, "value": ack}, m.parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed", what=OPEN_ACK, comm_id=comm_id, error=repr(error)
            )
            st.removed[comm_id] = removed
            return None
        now = self.clock.now()
        window = Window(comm_id, outbox, now, now, concurrent, ack_backoff=self.ack_timeout)
        self._erase_install_display(m.parent)
        self._admit(window)
        st.last_heard = now
        if parked is not None:  # it is owed what waited for the next window, in order
            st.parked = None
            for entry in (*parked.inflight, *parked.pending):
                if entry.kind == SYNC:
                    outbox.put(entry)
                else:
                    self._put(outbox, copy_entry(entry))
            for program_id, lost in parked.unsynced.items():
                outbox.unsynced[program_id] = outbox.unsynced.get(program_id, Counter()) + lost
        self.log.warning("connection.relinked", comm_id=comm_id, msg_id=m.msg_id, next_seq=base + 1)
        self._settle_waiters(True)
        self._snapshot(window)
        self._pump(m.parent)
        return window

    def _forget(self, window: Window, parent: Parent, new_comm: str) -> None:
        """The page that held `window` opened a new comm for it (or the same comm again):
        close the old one, still accepting what arrives on it for the grace period."""
        st = self.state
        self._end_timers(window, "its page opened a new comm")
        st.windows.pop(window.comm_id, None)
        st.removed.pop(window.comm_id, None)
        if window.comm_id != new_comm:
            self._publish_close(window.comm_id, parent, why="replaced by a new comm_open")

    def _end_timers(self, window: Window, why: str) -> None:
        if window.probing:
            self.log.info("connection.probe_ended", comm_id=window.comm_id, reason=why)
        window.stop_timers()

    def _publish_close(self, comm_id: str, parent: Parent, why: str) -> None:
        try:
            self.publisher.comm_close(comm_id, {}, parent)
            self.log.info("connection.close_sent", comm_id=comm_id, why=why)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed", what="comm_close", comm_id=comm_id, error=repr(error)
            )

    # ------------------------------------------------------------------------ install

    def _install(self, parent: Parent) -> None:
        st = self.state
        self._erase_install_display(parent)
        for window in list(st.windows.values()):
            self._remove_window(window, "the page is installed again")
        st.install_seq += 1
        display_id = f"commrouter-install-{uuid.uuid4().hex}"
        bundle = dict(self.ctx.install_display)
        try:
            self.publisher.display(bundle, {}, display_id, update=False, parent=parent)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error("connection.install_failed", reason="publish failed", error=repr(error))
            self._install_failed(PublishFailed(f"could not publish the install script: {error!r}"))
            return
        st.installed, st.installing = True, True
        st.installed_at = self.clock.now()
        st.display_id, st.display_parent = display_id, parent
        st.install_timer = self.ctx.scheduler.call_later(
            self.wait_timeout, self.slot, InstallTimedOut(st.install_seq)
        )
        self.log.info("connection.install_started", display_id=display_id)

    def handle_InstallTimedOut(self, m: InstallTimedOut) -> None:
        st = self.state
        if not st.installing or m.install_seq != st.install_seq:
            return
        st.installing, st.installed, st.install_timer = False, False, None
        self.log.warning(
            "connection.install_failed",
            reason="timeout",
            waited=self.wait_timeout,
            display_id=st.display_id,
        )
        # Nothing ran the script: erase it, so that a saved notebook (nbconvert) never holds it.
        # (with the latest request's parent: a notebook runner such as nbclient takes output
        # only for the cell that runs now, and the script's own cell may be done)
        self._erase_install_display(st.last_parent, latest=True)
        self._install_failed(
            FrontEndUnavailable(
                f"the front-end did not open the comm within {self.wait_timeout} s "
                "(is the notebook open in a browser, and is the output trusted?)"
            )
        )

    def _install_failed(self, error: Exception) -> None:
        """Waiters fail; values stay queued for a later comm, unless no page ever opened one
        (a headless run: then they are counted as not shown and syncs are answered)."""
        self._settle_waiters(error)
        if not self.state.ever_opened:
            self._go_headless(str(error))
            return
        self._fail_syncs(str(error))
        self._arm_expiry()

    def _stop_install(self) -> None:
        st = self.state
        st.installing = False
        if st.install_timer is not None:
            st.install_timer.cancel()
            st.install_timer = None

    def _erase_install_display(self, parent: Parent, latest: bool = False) -> None:
        """Overwrite the transient install script with nothing, so it is never saved; with the
        parent of the script's own display unless `latest` says to use `parent`."""
        st = self.state
        if st.display_id is None:
            return
        display_id, st.display_id = st.display_id, None
        parent = (parent or st.display_parent) if latest else (st.display_parent or parent)
        try:
            self.publisher.display({}, {}, display_id, update=True, parent=parent)
            self.log.info("connection.install_display_erased", display_id=display_id)
        except Exception as error:  # noqa: BLE001 - the host's publisher may raise anything
            self.log.error(
                "connection.publish_failed",
                what="erase install display",
                error=repr(error),
                display_id=display_id,
            )
