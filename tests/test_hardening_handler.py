"""A request whose handler fails gets an error reply (the protocol has one), and the kernel
keeps serving: a real CommrouterKernel on real sockets, with one handler broken on purpose,
driven by jupyter_client."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_client.blocking import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from commrouter.kernel.kernel import CommrouterKernel
from commrouter.transports.jupyter_sockets import ConnectionInfo
from commrouter.transports.jupyter_wire import WireMessage
from tests.conftest import quiet_settings

TIMEOUT = 30


class BrokenCompletion(CommrouterKernel):
    """The reference kernel with a bug in one handler."""

    def _is_complete(self, channel: str, request: WireMessage) -> None:
        raise RuntimeError("a bug in the is_complete handler")


def test_a_failing_handler_answers_with_an_error_reply(tmp_path: Path) -> None:
    path, _ = write_connection_file(str(tmp_path / "kernel-broken.json"), ip="127.0.0.1")
    info = ConnectionInfo.from_dict(json.loads(Path(path).read_text()))
    kernel = BrokenCompletion(info, settings=quiet_settings(), kernel_id="broken")
    kernel.start()
    client = BlockingKernelClient(connection_file=path)
    client.load_connection_file()
    client.start_channels()
    try:
        msg_id = client.is_complete("x = 1")
        reply = client.get_shell_msg(timeout=TIMEOUT)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["msg_type"] == "is_complete_reply"
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "RuntimeError"
        assert "a bug in the is_complete handler" in reply["content"]["evalue"]
        assert client.kernel_info(reply=True, timeout=TIMEOUT)["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        kernel.stop()
