"""The floor: a minimal single-loop forwarder with no framework.

`python -m benchmarks.floor -f CONNECTION_FILE` binds the Jupyter sockets and runs ONE loop
(`zmq.Poller` over shell, control, heartbeat and the program's pipes): Jupyter wire in (HMAC
verified, JSON decoded), the echo program behind two FIFOs (the program-link frame format of
docs/program-link.md, so the very same `commrouter.program` echo program runs behind it),
Jupyter wire out (encoded, signed). It does what any conforming kernel must for this work —
`status` busy/idle around every shell message, as ipykernel and the commrouter kernel do — and
nothing else: no actors, no threads, no validation beyond the codec, no logging, no backpressure
policy beyond a write buffer. It stands for the limit of this machine for this work.

It understands: kernel_info_request, execute_request (the cell's code runs as a program, like
the commrouter kernel), comm_open (answered with `#comm_open_ack` and `{stream, seq}`), comm_msg
(a value, or each value of a batch, for a subscribed address is written to the program; `#ack`
is read and ignored), shutdown_request. Toward the page it numbers its values like commrouter
(docs/protocol.md, "Front-end link") and publishes what the program wrote in one read as one
batch message when there are several, so that the client does the same work for both; it keeps
no window, never sends again and merges nothing.

`--minimal` drops the status busy/idle pair around comm messages (one IOPub message per echo,
as a forwarder that cared for nothing but the values would): not conformant, a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from typing import Any

import zmq

from commrouter.program import wire
from commrouter.transports.jupyter_sockets import ConnectionInfo
from commrouter.transports.jupyter_wire import (
    PROTOCOL_VERSION,
    Signer,
    WireError,
    WireMessage,
    decode,
    encode,
    new_header,
)

MAX_FRAME = 1024 * 1024


class Program:
    """The running cell program: two FIFOs, the process, and a pidfd that signals its exit."""

    def __init__(self, code: str, request: WireMessage, sock: zmq.Socket[bytes]) -> None:
        self.request = request
        self.sock = sock
        self.directory = tempfile.mkdtemp(prefix="bench-floor-")
        to_kernel = os.path.join(self.directory, "to_kernel")
        to_program = os.path.join(self.directory, "to_program")
        os.mkfifo(to_kernel, 0o600)
        os.mkfifo(to_program, 0o600)
        self.rx = os.open(to_kernel, os.O_RDONLY | os.O_NONBLOCK)
        self.hold = os.open(to_kernel, os.O_WRONLY | os.O_NONBLOCK)  # no EOF before it connects
        self.tx = os.open(to_program, os.O_RDWR | os.O_NONBLOCK)
        self.secret = secrets.token_hex(16)
        env = dict(os.environ)
        env.update(
            {
                wire.ENV_TO_KERNEL: to_kernel,
                wire.ENV_TO_PROGRAM: to_program,
                wire.ENV_SECRET: self.secret,
                wire.ENV_PROGRAM_ID: "floor",
                wire.ENV_MAX_FRAME: str(MAX_FRAME),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.popen = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL, close_fds=True
        )
        self.exit_fd = os.pidfd_open(self.popen.pid)
        self.frames = wire.FrameBuffer(MAX_FRAME)
        self.out = bytearray()
        self.hello = False
        self.subscribed: set[str] = set()

    def close(self) -> None:
        for fd in (self.rx, self.hold, self.tx, self.exit_fd):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(self.directory, ignore_errors=True)


class Floor:
    """The single loop. Every handler runs on the one thread that owns every socket and fd."""

    def __init__(self, info: ConnectionInfo, *, minimal: bool = False) -> None:
        self.minimal = minimal  # no status pair around comm messages
        self.signer = Signer(info.key, info.signature_scheme)
        self.session = uuid.uuid4().hex
        self.context = zmq.Context()
        self.shell = self._bind(zmq.ROUTER, info.url("shell"))
        self.control = self._bind(zmq.ROUTER, info.url("control"))
        self.iopub = self._bind(zmq.PUB, info.url("iopub"))
        self.hb = self._bind(zmq.REP, info.url("hb"))
        self.stdin = self._bind(zmq.ROUTER, info.url("stdin"))
        self.poller = zmq.Poller()
        for sock in (self.shell, self.control, self.hb):
            self.poller.register(sock, zmq.POLLIN)
        self.program: Program | None = None
        self.comm_id: str | None = None
        self.stream = uuid.uuid4().hex  # the numbered stream toward the page
        self.next_seq = 1
        self.done = False
        self.execution_count = 0

    def _bind(self, kind: int, url: str) -> zmq.Socket[bytes]:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.bind(url)
        return sock

    # ---------------------------------------------------------------------- the loop

    def run(self) -> None:
        self.publish("status", {"execution_state": "starting"}, {})
        while not self.done:
            for item, events in self.poller.poll():
                if item is self.shell or item is self.control:
                    self._drain(item)
                elif item is self.hb:
                    self.hb.send(self.hb.recv())
                elif self.program is not None:
                    if item == self.program.rx:
                        self._read_program()
                    elif item == self.program.tx and events & zmq.POLLOUT:
                        self._flush()
                    elif item == self.program.exit_fd:
                        self._program_exited()
        if self.program is not None:
            self.program.popen.kill()
            self._program_exited()
        for sock in (self.shell, self.control, self.iopub, self.hb, self.stdin):
            sock.close()
        self.context.term()

    def _drain(self, sock: zmq.Socket[bytes]) -> None:
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                request = decode(frames, self.signer)
            except WireError as error:
                print(f"floor: dropped a message: {error}", file=sys.stderr)
                continue
            self._handle(sock, request)

    def _handle(self, sock: zmq.Socket[bytes], request: WireMessage) -> None:
        msg_type = request.msg_type
        quiet = self.minimal and msg_type == "comm_msg"
        if not quiet:
            self.publish("status", {"execution_state": "busy"}, request.header)
        if msg_type == "comm_msg":
            data = request.content.get("data") or {}
            batch = data.get("batch")
            program = self.program
            for item in batch if isinstance(batch, list) else (data,):
                address = item.get("address")
                if program is not None and address in program.subscribed:
                    self._to_program({"op": "value", "address": address, "value": item["value"]})
        elif msg_type == "execute_request":
            self._execute(sock, request)
            return  # idle when the program exits
        elif msg_type == "comm_open":
            self.comm_id = request.content.get("comm_id")
            value = {"stream": self.stream, "seq": self.next_seq}
            ack = {"comm_id": self.comm_id, "data": {"address": "#comm_open_ack", "value": value}}
            self.publish("comm_msg", ack, request.header)
        elif msg_type == "kernel_info_request":
            self.reply(sock, request, _kernel_info())
        elif msg_type == "shutdown_request":
            self.reply(sock, request, {"status": "ok", "restart": False})
            self.done = True
        if not quiet:
            self.publish("status", {"execution_state": "idle"}, request.header)

    def publish(self, msg_type: str, content: Mapping[str, Any], parent: Mapping[str, Any]) -> None:
        header = new_header(msg_type, self.session, "floor")
        frames = encode(self.signer, header, content, parent, identities=[msg_type.encode()])
        self.iopub.send_multipart(frames)

    def reply(self, sock: zmq.Socket[bytes], request: WireMessage, content: Mapping[str, Any]):
        reply_type = request.msg_type.replace("_request", "_reply")
        header = new_header(reply_type, self.session, "floor")
        sock.send_multipart(
            encode(self.signer, header, content, request.header, identities=request.identities)
        )

    # ------------------------------------------------------------------- the program

    def _execute(self, sock: zmq.Socket[bytes], request: WireMessage) -> None:
        if self.program is not None:  # one cell at a time; this minimal kernel does not queue
            self.reply(sock, request, {"status": "error", "ename": "Busy", "evalue": "busy"})
            self.publish("status", {"execution_state": "idle"}, request.header)
            return
        self.execution_count += 1
        program = Program(str(request.content.get("code", "")), request, sock)
        self.program = program
        self.poller.register(program.rx, zmq.POLLIN)
        self.poller.register(program.exit_fd, zmq.POLLIN)

    def _to_program(self, frame: dict[str, Any]) -> None:
        program = self.program
        assert program is not None
        data = wire.encode(frame, MAX_FRAME)
        if program.out:
            program.out += data
            return
        try:
            written = os.write(program.tx, data)
        except BlockingIOError:
            written = 0
        if written < len(data):
            program.out += data[written:]
            self.poller.register(program.tx, zmq.POLLOUT)

    def _flush(self) -> None:
        program = self.program
        assert program is not None
        try:
            written = os.write(program.tx, program.out)
        except BlockingIOError:
            return
        del program.out[:written]
        if not program.out:
            self.poller.unregister(program.tx)

    def _read_program(self) -> bool:
        """Handle what the program wrote; False at end-of-file."""
        program = self.program
        assert program is not None
        try:
            data = os.read(program.rx, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        program.frames.feed(data)
        sends: list[dict[str, Any]] = []
        while (payload := program.frames.next()) is not None:
            message = json.loads(payload)
            op = message.get("op")
            if not program.hello:
                program.hello = op == "hello" and message.get("secret") == program.secret
            elif op == "send":
                sends.append({"address": message["address"], "value": message["value"]})
            elif op == "subscribe":
                program.subscribed.add(message["address"])
            elif op == "unsubscribe":
                program.subscribed.discard(message["address"])
            elif op == "sync":
                self._to_program({"op": "sync_ack", "id": message["id"], "error": None})
        if sends:
            self._publish_values(sends, program.request.header)
        return True

    def _publish_values(self, items: list[dict[str, Any]], parent: Mapping[str, Any]) -> None:
        """Numbered values toward the page: the single form for one, a batch for several."""
        if len(items) == 1:
            data: dict[str, Any] = {**items[0], "seq": self.next_seq}
        else:
            data = {"seq": self.next_seq, "batch": items}
        self.next_seq += len(items)
        self.publish("comm_msg", {"comm_id": self.comm_id, "data": data}, parent)

    def _program_exited(self) -> None:
        program = self.program
        assert program is not None
        returncode = program.popen.wait()
        os.close(program.hold)
        program.hold = -1
        os.set_blocking(program.rx, True)
        while self._read_program():  # what it wrote before exiting, up to end-of-file
            pass
        for fd in (program.rx, program.exit_fd):
            self.poller.unregister(fd)
        if program.out:
            self.poller.unregister(program.tx)
        program.close()
        self.program = None
        status = "ok" if returncode == 0 else "error"
        content: dict[str, Any] = {"status": status, "execution_count": self.execution_count}
        if status == "ok":
            content.update(user_expressions={}, payload=[])
        else:
            content.update(ename="ProgramFailed", evalue=f"exit status {returncode}", traceback=[])
        self.reply(program.sock, program.request, content)
        self.publish("status", {"execution_state": "idle"}, program.request.header)


def _kernel_info() -> dict[str, Any]:
    return {
        "status": "ok",
        "protocol_version": PROTOCOL_VERSION,
        "implementation": "bench-floor",
        "implementation_version": "0",
        "language_info": {"name": "python", "version": sys.version.split()[0]},
        "banner": "the floor",
        "help_links": [],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor")
    parser.add_argument("-f", "--connection-file", required=True)
    parser.add_argument("--minimal", action="store_true", help="no status pair per comm message")
    args = parser.parse_args(argv)
    Floor(ConnectionInfo.from_file(args.connection_file), minimal=args.minimal).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
