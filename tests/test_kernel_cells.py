"""Cells run as programs in the reference kernel, driven by jupyter_client; a client that acts
as the front-end exchanges values with a running cell over the real Jupyter wire."""

from __future__ import annotations

import textwrap
import time

import pytest

from tests.kernel_harness import comm_msg_to, iopub_until, kernel_id_of, open_comm, running_kernel

TIMEOUT = 60


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with running_kernel(tmp_path_factory.mktemp("cells")) as running:
        yield running


def execute(client, code: str) -> tuple[dict, list[dict]]:
    """Run a cell; return its execute_reply and the IOPub messages up to its idle status."""
    msg_id = client.execute(textwrap.dedent(code))
    outputs = iopub_until(
        client,
        lambda m: (
            m["parent_header"].get("msg_id") == msg_id
            and m["msg_type"] == "status"
            and m["content"]["execution_state"] == "idle"
        ),
        TIMEOUT,
    )
    # replies to earlier requests may still wait (wait_for_ready after a restart sends
    # kernel_info until one is answered): skip them, bounded
    reply = client.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        assert reply["msg_type"] == "kernel_info_reply", reply["msg_type"]
        reply = client.get_shell_msg(timeout=TIMEOUT)
    mine = [m for m in outputs if m["parent_header"].get("msg_id") == msg_id]
    return reply, mine


def streamed(outputs: list[dict], name: str) -> str:
    return "".join(
        m["content"]["text"]
        for m in outputs
        if m["msg_type"] == "stream" and m["content"]["name"] == name
    )


def test_a_cell_that_prints(kernel):
    _, client, _ = kernel
    reply, outputs = execute(client, "print('hello from a cell')")
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["execution_count"] >= 1
    assert streamed(outputs, "stdout") == "hello from a cell\n"
    kinds = [m["msg_type"] for m in outputs]
    assert kinds[0] == "status" and "execute_input" in kinds


def test_a_printing_loop_is_gathered_into_few_stream_messages(kernel):
    """20,000 prints, each its own write (PYTHONUNBUFFERED): every line arrives, in order,
    in at most `program.output_messages_per_second` (10) messages a second after the first
    few, not one IOPub message per print (over jupyter_server's IOPub rate limit)."""
    _, client, _ = kernel
    started = time.monotonic()
    reply, outputs = execute(client, "for i in range(20_000):\n    print('line', i)")
    elapsed = time.monotonic() - started
    assert reply["content"]["status"] == "ok"
    assert streamed(outputs, "stdout") == "".join(f"line {i}\n" for i in range(20_000))
    messages = [m for m in outputs if m["msg_type"] == "stream"]
    assert len(messages) <= 5 + 10 * (elapsed + 1), (len(messages), elapsed)


def test_a_cells_displays_beyond_the_rate_all_come_before_its_reply(kernel):
    """40 displays at once: 10 go at once, the rest wait for the display rate (50 a second)
    and the program's end publishes them, before the cell's idle status."""
    _, client, _ = kernel
    code = "from commrouter import program\n" + "\n".join(
        f"program.display({{'text/plain': 'd{i}'}}, display_id='rate-{i}')" for i in range(40)
    )
    reply, outputs = execute(client, code)
    assert reply["content"]["status"] == "ok"
    shown = [m["content"]["data"]["text/plain"] for m in outputs if m["msg_type"] == "display_data"]
    assert shown == [f"d{i}" for i in range(40)]


def test_a_cell_that_raises(kernel):
    _, client, _ = kernel
    reply, outputs = execute(client, "raise ValueError('broken cell')")
    assert reply["content"]["status"] == "error"
    assert "ValueError: broken cell" in streamed(outputs, "stderr")
    errors = [m for m in outputs if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["ename"] == "ProgramFailed"


def test_rich_output_and_update_by_display_id(kernel):
    _, client, _ = kernel
    reply, outputs = execute(
        client,
        """
        from commrouter import program
        program.display(program.html('<b>first</b>'), display_id='d-7')
        program.update_display('d-7', program.html('<b>second</b>'))
        program.sync()
        """,
    )
    assert reply["content"]["status"] == "ok", streamed(outputs, "stderr")
    shown = [
        (m["msg_type"], m["content"]["transient"].get("display_id"), m["content"]["data"])
        for m in outputs
        if m["msg_type"] in ("display_data", "update_display_data")
    ]
    assert shown == [
        ("display_data", "d-7", {"text/html": "<b>first</b>"}),
        ("update_display_data", "d-7", {"text/html": "<b>second</b>"}),
    ]


def test_interrupt_of_a_long_cell(kernel):
    manager, client, _ = kernel
    msg_id = client.execute("import time\nprint('started', flush=True)\ntime.sleep(120)")
    iopub_until(
        client,
        lambda m: m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == msg_id,
        TIMEOUT,
    )
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert execute(client, "print(1)")[0]["content"]["status"] == "ok"  # still serving


def test_client_as_front_end_exchanges_values_with_a_running_cell(kernel):
    manager, client, _ = kernel
    code = """
        import time
        from commrouter import program
        with program.listen('/slider/k1') as values:
            for value in values:
                program.send('/label/k1', f'got {value}')
                if value >= 3:
                    break
        time.sleep(1.2)  # the link goes quiet: the next send probes it with a ping first
        program.send('/done/k1', True)
        program.sync()
    """
    msg_id = client.execute(textwrap.dedent(code))
    # 1. the install script arrives as a transient display
    seen = iopub_until(
        client,
        lambda m: (
            m["msg_type"] == "display_data"
            and "data-commrouter-install" in m["content"]["data"].get("text/html", "")
        ),
        TIMEOUT,
    )
    install = seen[-1]["content"]
    display_id = install["transient"]["display_id"]
    assert kernel_id_of(manager) in install["data"]["text/html"]
    # 2. open the comm as the browser would, and get the ack; the script is erased
    comm_id, seen = open_comm(client, manager, TIMEOUT)

    def to_kernel(msg_type: str, content: dict) -> None:
        client.shell_channel.send(client.session.msg(msg_type, content))

    erased = [m for m in seen if m["msg_type"] == "update_display_data"]
    assert erased and erased[0]["content"]["transient"]["display_id"] == display_id
    assert erased[0]["content"]["data"] == {}
    # 3. values both ways with the running cell; answer a ping like the browser does
    to_kernel("comm_msg", {"comm_id": comm_id, "data": {"address": "#heartbeat/ping", "value": 7}})
    iopub_until(
        client,
        comm_msg_to("#heartbeat/pong"),
        TIMEOUT,
    )
    labels = []
    for value in (1, 2, 3):
        to_kernel(
            "comm_msg", {"comm_id": comm_id, "data": {"address": "/slider/k1", "value": value}}
        )
        seen = iopub_until(
            client,
            comm_msg_to("/label/k1"),
            TIMEOUT,
        )
        labels.append(seen[-1]["content"]["data"]["value"])
    assert labels == ["got 1", "got 2", "got 3"]
    # 4. the kernel pings the quiet link; the client answers as the browser would
    seen = iopub_until(
        client,
        comm_msg_to("#heartbeat/ping"),
        TIMEOUT,
    )
    ping = seen[-1]["content"]
    assert ping["comm_id"] == comm_id
    number = ping["data"]["value"]
    pong = {"address": "#heartbeat/pong", "value": number}  # echoes the ping's number
    to_kernel("comm_msg", {"comm_id": comm_id, "data": pong})
    # (the value itself goes out at once, before or after the ping: values keep flowing while
    # a probe is under way)
    done_msgs = [m for m in seen if comm_msg_to("/done/k1")(m)]
    if not done_msgs:
        done_msgs = iopub_until(client, comm_msg_to("/done/k1"), TIMEOUT)[-1:]
    # 5. the cell's sync() waits until the page acknowledged everything it sent: ack it
    done = done_msgs[0]["content"]["data"]
    to_kernel("comm_msg", {"comm_id": comm_id, "data": {"address": "#ack", "value": done["seq"]}})
    reply = client.get_shell_msg(timeout=TIMEOUT)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok"


def test_restart_and_shutdown(tmp_path):
    with running_kernel(tmp_path) as (manager, client, _):
        first_pid = manager.provisioner.process.pid
        manager.restart_kernel(now=False)
        client.wait_for_ready(timeout=TIMEOUT)
        assert manager.provisioner.process.pid != first_pid
        assert execute(client, "print('after restart')")[0]["content"]["status"] == "ok"
        manager.shutdown_kernel(now=False)
        assert not manager.is_alive()
