"""Start and stop: in order, bounded, and no actor thread outlives the router or the process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pykka

from commrouter import CommRouter, RealTime
from commrouter.transports.memory import InMemoryFrontEnd
from tests.conftest import KERNEL_ID, quiet_settings


def test_stop_leaves_no_actor_or_timer_thread_behind():
    before = set(threading.enumerate())
    actors_before = set(pykka.ActorRegistry.get_all())  # other tests' routers are not ours
    fe = InMemoryFrontEnd(KERNEL_ID)
    router = CommRouter(KERNEL_ID, fe, settings=quiet_settings(), time=RealTime())
    fe.connect(router)
    with router:
        assert router.ensure_front_end().get(5.0) is True
        ours = set(pykka.ActorRegistry.get_all()) - actors_before
        assert len(ours) == 6
    assert set(pykka.ActorRegistry.get_all()) & ours == set()
    deadline = time.monotonic() + 5.0  # threads finish right after their last message
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - before == set()


def test_stop_order_is_the_reverse_of_start(world):
    world.router.stop()
    stopped = world.log.find("supervisor.stopped")[0]["actors"]
    started = world.log.find("supervisor.started")[0]["actors"]
    assert stopped == list(reversed(started))
    assert started[0] == "router" and started[-1] == "program_executor"


def test_a_router_left_running_does_not_keep_the_process_alive():
    code = (
        "from commrouter import CommRouter\n"
        "from commrouter.transports.memory import InMemoryFrontEnd\n"
        "fe = InMemoryFrontEnd('k'); r = CommRouter('k', fe).start(); fe.connect(r)\n"
        "r.ensure_front_end().get(5)\n"
        "print('exiting without stop', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env={"COMMROUTER_LOG_CONSOLE": "false", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exiting without stop"


def test_stopping_the_router_closes_the_running_programs_link(world):
    program = world.start_program()
    assert not program.link.closed
    world.router.stop()
    assert program.link.closed
