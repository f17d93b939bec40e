"""commrouter inside a real ipykernel (started by jupyter_client), with a client acting as the
page: state across cells, values both ways, a busy synchronous cell reached through a subshell,
read in a synchronous cell and in a callback, async forms, output of callbacks in the cell that
subscribed, widgets across cells, unload/reload and kernel restart."""

from __future__ import annotations

import re

import pytest

from tests.ipykernel_harness import Cell, Page, run, running_ipykernel

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ipykernel")
    with running_ipykernel(tmp) as (manager, client, log), Page(manager) as page:
        run(client, "%load_ext commrouter\nfrom commrouter import program")
        yield manager, client, page, log


def test_state_persists_across_cells_and_values_flow_both_ways(kernel):
    _, client, page, _ = kernel
    run(client, "x = 41")
    sender = run(client, 'program.send("/t/out", x + 1)')
    value, parent = page.wait_value("/t/out")
    assert value == 42
    assert parent == sender.msg_id  # the publish's parent is the request that sent it
    page.wait_open()
    assert page.subshell_id is not None  # ipykernel 7 offers subshells and the page uses one


def test_callback_output_lands_in_the_cell_that_subscribed(kernel):
    _, client, page, _ = kernel
    subscriber = run(
        client,
        'sub = program.subscribe("/t/in", lambda v: print("got", v, flush=True))\nprogram.sync()',
    )
    run(client, "y = 1")  # a later cell is the "current" one now
    page.wait_open()
    page.send("/t/in", 5)
    subscriber.wait_for_text("got 5")  # its stream message's parent is the subscribing cell
    run(client, "program.unsubscribe(sub)")


def test_a_busy_synchronous_cell_gets_page_values_through_the_subshell(kernel):
    _, client, page, _ = kernel
    page.wait_open()
    cell = Cell(
        client,
        """
        import time
        from commrouter.program.widgets import Slider
        busy = Slider(0, address="/t/busy").show()
        program.sync()
        print("looping", flush=True)
        deadline = time.monotonic() + 30
        while busy.value != 7 and time.monotonic() < deadline:
            pass
        print("loop saw", busy.value)
        """,
    )
    cell.wait_for_text("looping")
    page.send("/t/busy", 7)
    cell.wait()
    assert cell.ok and "loop saw 7" in cell.stdout


def test_read_is_answered_in_a_synchronous_cell_and_in_a_callback(kernel):
    _, client, page, _ = kernel
    page.values["/t/read"] = "answer"
    cell = run(client, 'print("read", program.read("/t/read", timeout=10))')
    assert cell.stdout == "read answer\n"
    subscriber = run(
        client,
        """
        def on_click(n):
            print("clicked", n, "read", program.read("/t/read", timeout=10), flush=True)
            program.sync(timeout=10)
            print("synced", flush=True)
        click = program.subscribe("/t/click", on_click)
        program.sync()
        """,
    )
    page.send("/t/click", 1)
    subscriber.wait_for_text("clicked 1 read answer\nsynced\n")
    run(client, "program.unsubscribe(click)")


def test_async_forms(kernel):
    _, client, page, _ = kernel
    page.values["/t/aread"] = [1, 2]
    cell = run(
        client,
        """
        print("aread", await program.aread("/t/aread", timeout=10))
        program.send("/t/async", "sent")
        await program.async_sync(timeout=10)
        print("synced")
        """,
    )
    assert cell.stdout == "aread [1, 2]\nsynced\n"
    assert page.wait_value("/t/async")[0] == "sent"
    listening = Cell(
        client,
        """
        async with program.alisten("/t/alisten") as values:
            await program.async_sync(timeout=10)  # the route exists once this returns
            print("listening", flush=True)
            async for value in values:
                print("alisten", value, flush=True)
                if value == 3:
                    break
        """,
    )
    listening.wait_for_text("listening")
    for value in (1, 2, 3):
        page.send("/t/alisten", value)
    listening.wait()
    assert listening.ok and listening.stdout.endswith("alisten 1\nalisten 2\nalisten 3\n")


def test_a_cells_many_displays_all_come_before_its_idle_status(kernel):
    """Displays beyond the display rate's burst wait in the router; the cell's end publishes
    them (a display after the cell's idle status is not shown by JupyterLab)."""
    _, client, _, _ = kernel
    cell = run(
        client,
        "for i in range(40):\n    program.display({'text/plain': f'd{i}'}, display_id=f'many-{i}')",
    )
    shown = [
        m["content"]["data"]["text/plain"] for m in cell.mine() if m["msg_type"] == "display_data"
    ]
    assert shown == [f"d{i}" for i in range(40)]


def test_widgets_from_an_earlier_cell_stay_live(kernel):
    _, client, page, _ = kernel
    first = run(
        client,
        """
        from commrouter.program.widgets import Slider
        level = Slider(1, address="/t/level").show()
        level.on_change(lambda v: print("level now", v, flush=True))
        program.sync()
        """,
    )
    for code in ("a = 1", "b = 2", "c = 3"):
        run(client, code)
    page.send("/t/level", 9)
    first.wait_for_text("level now 9")
    assert run(client, "print(level.value)").stdout == "9\n"
    # shown at a stable address, the widget sent its value first (a re-run's value wins)
    assert page.wait_value("/t/level")[0] == 1
    run(client, "level.value = 4")
    with page._cond:
        assert page._cond.wait_for(
            lambda: [v for a, v, _ in page.received if a == "/t/level"][-1:] == [4], 10.0
        ), page.received


def test_a_callback_error_shows_a_traceback_that_starts_at_the_users_code(kernel):
    _, client, page, _ = kernel
    cell = Cell(
        client,
        """
        def broken(value):
            raise ValueError(f"bad {value}")
        bad = program.subscribe("/t/bad", broken)
        program.sync()
        """,
    )
    cell.wait()
    page.send("/t/bad", 3)
    deadline_text = "ValueError: bad 3"
    for _ in range(200):
        if deadline_text in cell.stream("stderr"):
            break
        cell.outputs.append(client.get_iopub_msg(timeout=30))
    stderr = cell.stream("stderr")
    assert deadline_text in stderr
    frames = re.findall(r'File "([^"]+)", line \d+, in (\w+)', stderr)
    assert frames and frames[0][1] == "broken", stderr  # the user's function comes first
    assert not any("commrouter" in path or "/program/" in path for path, _ in frames), stderr
    run(client, "program.unsubscribe(bad)")


def test_loading_is_idempotent_and_router_logs_stay_out_of_cells(kernel):
    _, client, _, log = kernel
    cell = run(
        client,
        """
        import commrouter.ipython
        first = commrouter.ipython.load()
        %load_ext commrouter
        print(commrouter.ipython.load() is first, first.running)
        """,
    )
    assert cell.stdout.endswith("True True\n")  # IPython says it is loaded already
    assert log.exists() and "connection.opened" in log.read_text()


def test_unloading_shows_the_sessions_widgets_ended(kernel):
    _, client, _, _ = kernel
    shown = run(
        client,
        """
        from commrouter.program.widgets import HBox, Slider, Text
        ending = HBox(Slider(3, label="level"), Text("hi")).show()
        print(ending.display_id)
        """,
    )
    display_id = shown.stdout.strip()
    unload = run(client, "%unload_ext commrouter")  # the session, its program, ends
    ended = [
        m["content"]["data"]["text/html"]
        for m in unload.outputs
        if m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == display_id
    ]
    assert len(ended) == 1, [m["msg_type"] for m in unload.outputs]
    assert ended[0].count("data-ended title=") == 2
    assert ended[0].count(" disabled>") == 2 and "program ended</small>" in ended[0]
    run(client, "%load_ext commrouter")


def test_unload_then_load_again(kernel):
    _, client, page, _ = kernel
    installs = page.installs
    run(client, "%unload_ext commrouter")
    cell = Cell(client, 'program.send("/t/x", 1)').wait()
    assert not cell.ok and "NotUnderRouter" in cell.reply["content"]["ename"]
    run(client, "%load_ext commrouter")
    run(client, 'program.send("/t/again", "yes")')
    assert page.wait_value("/t/again")[0] == "yes"
    assert page.installs > installs  # a new router installed the page again
    installs = page.installs
    run(client, "%reload_ext commrouter")
    run(client, 'program.send("/t/reloaded", "yes")')
    assert page.wait_value("/t/reloaded")[0] == "yes"
    assert page.installs > installs


def test_after_a_kernel_restart_loading_again_works(tmp_path):
    with running_ipykernel(tmp_path) as (manager, client, _), Page(manager) as page:
        run(client, '%load_ext commrouter\nfrom commrouter import program\nprogram.send("/r", 1)')
        assert page.wait_value("/r")[0] == 1
        manager.restart_kernel(now=False)
        client.wait_for_ready(timeout=60)
        run(client, '%load_ext commrouter\nfrom commrouter import program\nprogram.send("/r", 2)')
        page.received.clear()
        run(client, 'program.send("/r2", 2)')
        assert page.wait_value("/r2")[0] == 2


def test_without_a_subshell_values_wait_for_the_cell_to_yield(tmp_path):
    """A page that does not use subshells (or a kernel without them): a synchronous cell does
    not see page values until it ends, an awaiting one does."""
    with running_ipykernel(tmp_path) as (manager, client, _), Page(manager, subshell=False) as page:
        run(client, '%load_ext commrouter\nfrom commrouter import program\nprogram.send("/s", 0)')
        page.wait_open()
        assert page.subshell_id is None
        run(client, 'seen = []\nsub = program.subscribe("/v", seen.append)\nprogram.sync()')
        busy = Cell(
            client,
            """
            import time
            print("looping", flush=True)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                pass
            print("during", seen)
            """,
        )
        busy.wait_for_text("looping")
        page.send("/v", 1)
        busy.wait()
        assert busy.stdout.endswith("during []\n")  # queued behind the cell by ipykernel
        after = run(client, "import time; time.sleep(0.5); print('after', seen)")
        assert after.stdout == "after [1]\n"
        page.values["/a"] = "async"
        assert run(client, 'print(await program.aread("/a", timeout=10))').stdout == "async\n"
