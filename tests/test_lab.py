"""`make run`'s helpers: the port survives a restart (TIME_WAIT), the demo is a working copy."""

from __future__ import annotations

import os
import socket
import time

from commrouter.lab import free_port, working_copy


def _time_wait_port() -> int:
    """A port whose server side closed first: its connection is left in TIME_WAIT. The server
    sets SO_REUSEADDR as jupyter_server's (tornado's) does; Linux lets a new bind reuse a
    TIME_WAIT address only when both sockets set it."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    accepted, _ = server.accept()
    accepted.close()  # the server closes first: TIME_WAIT is on its side, on `port`
    client.recv(1)  # sees the FIN
    client.close()
    server.close()
    return port


def test_a_port_left_in_time_wait_is_reused():
    port = _time_wait_port()
    with socket.socket() as plain:  # what the old probe did
        try:
            plain.bind(("127.0.0.1", port))
            plain_ok = True
        except OSError:
            plain_ok = False
    assert not plain_ok, "no TIME_WAIT on this system: the test proves nothing"
    assert free_port(port) == port


def test_a_port_in_use_is_not_taken():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert free_port(port) != port


def test_the_demo_is_copied_and_a_newer_copy_is_kept(tmp_path):
    tracked = tmp_path / "docs" / "demo.ipynb"
    tracked.parent.mkdir()
    tracked.write_text("tracked v1")
    copy = working_copy(tracked, tmp_path / "work")
    assert copy.read_text() == "tracked v1" and copy.parent == tmp_path / "work"
    copy.write_text("edited by the user")
    future = time.time() + 10
    os.utime(copy, (future, future))
    assert working_copy(tracked, tmp_path / "work").read_text() == "edited by the user"
    tracked.write_text("tracked v2")
    os.utime(tracked, (future + 10, future + 10))
    assert working_copy(tracked, tmp_path / "work").read_text() == "tracked v2"
    assert tracked.read_text() == "tracked v2"  # never written to
