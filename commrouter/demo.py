"""The main job for now: a short live run on the in-memory transports, printed as a timeline.

A browser connects (the install script opens the comm), a program subscribes to a slider,
the browser moves the slider and the program answers on a label, the link goes quiet and a
heartbeat probes it, then the program syncs and finishes. Real time, real actor threads.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time

from commrouter.config import load_settings
from commrouter.embedding import CommRouter
from commrouter.observability import ConsoleTimeline
from commrouter.router.messages import ValueForProgram
from commrouter.transports.memory import InMemoryFrontEnd, InMemoryProgram

KERNEL_ID = "demo-kernel"
SLIDER, LABEL = "/slider/demo", "/label/demo"


def run_program(program: InMemoryProgram, moves: int, done: threading.Event) -> None:
    """The cell program: follow the slider, answer on the label."""
    program.subscribe(SLIDER)
    seen = 0
    while seen < moves and program.link.wait(5.0):
        for message in program.poll():
            if isinstance(message, ValueForProgram) and message.address == SLIDER:
                seen += 1
                program.send(LABEL, f"slider at {message.value:.1f}")
    done.set()


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    settings = dataclasses.replace(
        settings, log=dataclasses.replace(settings.log, level="debug", console=False)
    )
    print("commrouter demo: in-memory browser and program, real actors, real time\n", flush=True)
    browser = InMemoryFrontEnd(KERNEL_ID, target_name=settings.connection.target_name)
    timeline = ConsoleTimeline(sys.stdout)
    router = CommRouter(KERNEL_ID, browser, settings=settings, log_sinks=[timeline])
    browser.connect(router)
    moves = 5
    with router:
        program = InMemoryProgram("demo-program")
        router.program_started(program.program_id, program.link)
        done = threading.Event()
        worker = threading.Thread(target=run_program, args=(program, moves, done), daemon=True)
        worker.start()
        router.ensure_front_end().get(settings.connection.wait_for_connection_timeout + 1)
        while not router.subscriptions():
            time.sleep(0.01)
        for step in range(1, moves + 1):
            browser.send(SLIDER, step / 10)
            time.sleep(0.05)
        done.wait(5.0)
        time.sleep(settings.heartbeat.request_threshold + 0.1)  # let the link go quiet
        answered = router.ensure_front_end().get(settings.actors.ask_timeout)
        sync_id = program.sync()
        while sync_id not in program.acks and program.link.wait(5.0):
            program.poll()
        router.program_finished(program.program_id)
        time.sleep(0.05)
    print(
        f"\nbrowser saw on {LABEL}: {browser.received(LABEL)}\n"
        f"heartbeat probe answered: {answered}; sync acknowledged: {sync_id in program.acks}",
        flush=True,
    )
    return 0 if len(browser.received(LABEL)) == moves and answered else 1


if __name__ == "__main__":
    sys.exit(main())
