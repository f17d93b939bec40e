"""The kernel's sockets, from a connection file, owned by one IO thread.

zmq sockets must not be shared between threads. One IO thread owns shell and control (ROUTER)
and stdin (ROUTER); it decodes what arrives once and hands it to the kernel's handler. Any other
thread sends a reply by pushing frames through its own thread-local PUSH socket to the IO
thread's inproc PULL socket, which forwards them. IOPub (PUB) is the exception: it is only ever
written to (a PUB send never blocks), so every thread publishes on it directly, one at a time
under a lock (a full memory barrier, which is what zmq asks for to move a socket between
threads). That saves each published message a hand-off to the IO thread and a second copy
(docs/performance.md). The heartbeat socket (ROUTER, as ipykernel's) echoes on its own thread,
independent of everything else.

Control before shell: the IO thread takes at most `BATCH` messages from one socket before it
polls again, control first, so a flood on shell delays an interrupt, a shutdown or a
kernel_info on control by at most one batch. Nothing that arrives can end the IO thread: a
refused message goes to `on_refused`, and an exception from the handler (or from the refusal
callback itself) is caught, reported to `on_refused` if possible, and the loop goes on.

Backpressure: `hold_shell()`, asked at every wake-up, may say to leave shell unread (the
kernel does while the actors' inboxes are long); what arrives then waits in zmq's queue and,
past its high-water mark, with the sender. Control and stdin are always read.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from commrouter.transports.jupyter_wire import (
    MAX_MESSAGE_BYTES,
    ReplayGuard,
    Signer,
    WireError,
    WireMessage,
    decode,
)

CHANNELS = ("shell", "control", "stdin", "iopub")
# A plain int: pyzmq's send_multipart combines enum flags for every frame, which costs more than
# sending the frame (docs/performance.md).
_SNDMORE = int(zmq.SNDMORE)
BATCH = 32  # messages taken from one socket before polling again (control first)
HOLD_POLL_MS = 10  # while shell is held, how often to ask whether to read it again
# zmq disconnects a peer that sends a frame above this: a hard stop well above the limit that
# decode() enforces with a logged reason.
_MAX_FRAME = 4 * MAX_MESSAGE_BYTES
_MAX_HEARTBEAT = 1024 * 1024  # jupyter_client pings with a few bytes
_SOCKET_TYPES = {"shell": zmq.ROUTER, "control": zmq.ROUTER, "stdin": zmq.ROUTER, "iopub": zmq.PUB}


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What a Jupyter connection file says."""

    transport: str
    ip: str
    ports: Mapping[str, int]  # shell, control, stdin, iopub, hb
    key: bytes
    signature_scheme: str

    @classmethod
    def from_file(cls, path: str | Path) -> ConnectionInfo:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConnectionInfo:
        try:
            ports = {name: int(data[f"{name}_port"]) for name in (*CHANNELS, "hb")}
        except KeyError as missing:
            raise ValueError(f"connection file lacks {missing.args[0]}") from None
        return cls(
            transport=data.get("transport", "tcp"),
            ip=data.get("ip", "127.0.0.1"),
            ports=ports,
            key=str(data.get("key", "")).encode("ascii"),
            signature_scheme=data.get("signature_scheme", "hmac-sha256"),
        )

    def url(self, channel: str) -> str:
        port = self.ports[channel]
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{port}"
        return f"{self.transport}://{self.ip}:{port}"


Handler = Callable[[str, WireMessage], None]
Refusal = Callable[[str, WireError], None]


class KernelSockets:
    """Binds the five sockets and runs the IO and heartbeat threads."""

    def __init__(
        self,
        info: ConnectionInfo,
        on_message: Handler,
        on_refused: Refusal,
        hold_shell: Callable[[], bool] | None = None,
    ) -> None:
        self.info = info
        self.hold_shell = hold_shell  # asked at every wake-up: True leaves shell unread
        self.signer = Signer(info.key, info.signature_scheme)
        self.replay = ReplayGuard()
        self.on_message = on_message
        self.on_refused = on_refused
        self.context = zmq.Context()
        self._outbox_url = f"inproc://commrouter-outbox-{id(self)}"
        self._local = threading.local()
        self._pushers: list[zmq.Socket[bytes]] = []
        self._pushers_lock = threading.Lock()
        self._iopub: zmq.Socket[bytes] | None = None  # set by the IO thread; use under the lock
        self._iopub_lock = threading.Lock()
        self._stop_url = f"inproc://commrouter-stop-{id(self)}"
        self._threads: list[threading.Thread] = []
        self._ready = threading.Event()
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ any thread

    def send(self, channel: str, frames: list[bytes]) -> None:
        """Send frames on `channel` (shell, control, stdin or iopub), from any thread: IOPub at
        once, the others through the IO thread."""
        if channel == "iopub":
            with self._iopub_lock:
                if self._stopped.is_set():
                    raise ConnectionError("kernel sockets are closed")
                sock = self._iopub
                if sock is not None:  # else not bound yet: through the IO thread
                    for frame in frames[:-1]:
                        sock.send(frame, _SNDMORE)
                    sock.send(frames[-1])
                    return
        if self._stopped.is_set():
            raise ConnectionError("kernel sockets are closed")
        pusher = getattr(self._local, "pusher", None)
        if pusher is None:
            pusher = self.context.socket(zmq.PUSH)
            pusher.setsockopt(zmq.LINGER, 1000)
            pusher.connect(self._outbox_url)
            self._local.pusher = pusher
            with self._pushers_lock:
                self._pushers.append(pusher)
        pusher.send_multipart([channel.encode("ascii"), *frames], copy=False)

    def start(self) -> None:
        io = threading.Thread(target=self._io_loop, name="commrouter-kernel-io", daemon=True)
        hb = threading.Thread(target=self._heartbeat_loop, name="commrouter-kernel-hb", daemon=True)
        self._threads = [io, hb]
        io.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("kernel IO thread did not bind its sockets within 10 s")
        hb.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        poke = self.context.socket(zmq.PAIR)
        poke.connect(self._stop_url)
        poke.send(b"stop")
        for thread in self._threads:
            thread.join(timeout)
        poke.close(linger=0)
        with self._pushers_lock:
            for pusher in self._pushers:
                pusher.close(linger=0)
        # term() waits for every socket of the context to close: bounded, so that a socket a
        # thread still holds cannot keep the kernel from exiting.
        term = threading.Thread(target=self.context.term, name="commrouter-zmq-term", daemon=True)
        term.start()
        term.join(timeout)

    # ------------------------------------------------------------------- IO thread

    def _io_loop(self) -> None:
        sockets = {}
        for channel in CHANNELS:
            sock = self.context.socket(_SOCKET_TYPES[channel])
            sock.setsockopt(zmq.LINGER, 1000)
            if channel != "iopub":
                sock.setsockopt(zmq.MAXMSGSIZE, _MAX_FRAME)
            sock.bind(self.info.url(channel))
            sockets[channel] = sock
        outbox = self.context.socket(zmq.PULL)
        outbox.bind(self._outbox_url)
        stop = self.context.socket(zmq.PAIR)
        stop.bind(self._stop_url)
        poller = zmq.Poller()
        for channel in ("shell", "control", "stdin"):
            poller.register(sockets[channel], zmq.POLLIN)
        poller.register(outbox, zmq.POLLIN)
        poller.register(stop, zmq.POLLIN)
        by_socket = {sockets[c]: c for c in ("control", "shell", "stdin")}
        shell, held = sockets["shell"], False
        with self._iopub_lock:
            self._iopub = sockets["iopub"]
        self._ready.set()
        try:
            while True:
                if self.hold_shell is not None and self.hold_shell() != held:
                    held = not held  # backpressure: unread, shell fills up to its sender
                    if held:
                        poller.unregister(shell)
                    else:
                        poller.register(shell, zmq.POLLIN)
                events = dict(poller.poll(HOLD_POLL_MS if held else None))
                if stop in events:
                    break
                if outbox in events:
                    self._forward(outbox, sockets)
                for sock, channel in by_socket.items():  # control first
                    if sock in events:
                        self._receive(channel, sock)
        finally:
            with contextlib.suppress(Exception):  # closing the sockets below matters more
                while outbox.poll(0):  # flush what was queued before the stop
                    self._forward(outbox, sockets)
            with self._iopub_lock:
                self._iopub = None
                for sock in (*sockets.values(), outbox, stop):
                    sock.close()

    def _forward(self, outbox: zmq.Socket[bytes], sockets: dict[str, zmq.Socket[bytes]]) -> None:
        while True:
            try:
                channel, *frames = outbox.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            name = channel.decode("ascii")
            try:
                if name == "iopub":
                    with self._iopub_lock:
                        sockets[name].send_multipart(frames)
                else:
                    sockets[name].send_multipart(frames, zmq.NOBLOCK)
            except zmq.ZMQError as error:  # a peer that went away, a full queue: not ours
                self._report(name, WireError("not sent", repr(error)))

    def _receive(self, channel: str, sock: zmq.Socket[bytes]) -> None:
        for _ in range(BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = decode(frames, self.signer, self.replay)
            except WireError as error:
                self._report(channel, error)
                continue
            try:
                self.on_message(channel, message)
            except Exception as error:  # noqa: BLE001 - nothing that arrives ends the IO thread
                self._report(channel, WireError("handler error", repr(error)))

    def _report(self, channel: str, error: WireError) -> None:
        # the report itself may fail (the logger closed at shutdown): go on regardless
        with contextlib.suppress(Exception):
            self.on_refused(channel, error)

    def _heartbeat_loop(self) -> None:
        # ROUTER, as ipykernel's heartbeat: it echoes each whole message (identity envelope
        # included) back to its sender and keeps no state between messages, so no message can
        # leave it unable to answer the next (a REP socket, given one multi-frame ping, was)
        hb = self.context.socket(zmq.ROUTER)
        hb.setsockopt(zmq.LINGER, 0)
        hb.setsockopt(zmq.MAXMSGSIZE, _MAX_HEARTBEAT)  # a bigger frame disconnects its peer
        hb.bind(self.info.url("hb"))
        try:
            while not self._stopped.is_set():
                if hb.poll(100):  # bounded so the thread notices stop
                    with contextlib.suppress(zmq.Again):  # a peer not reading: its loss
                        hb.send_multipart(hb.recv_multipart(zmq.NOBLOCK), zmq.NOBLOCK)
        except zmq.ZMQError:  # the context is terminating
            pass
        finally:
            hb.close()
