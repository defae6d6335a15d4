"""Trains until Ctrl-C, with a final checkpoint on INTERRUPT: used by the Ctrl-C tests.

    python _ctrl_c_worker.py BACKEND DIRECTORY [--blocked-handler]

Prints "ready" once 20 iterations have completed. With ``--blocked-handler``, a sync background handler blocks its
thread for 60 s (a request without a timeout), which must not hold the end of the run back.
"""

from __future__ import annotations

import sys
import threading
import time

import anyio
from torch import nn

from ignite_async import Engine, Events, background
from ignite_async.handlers import Checkpoint, DiskSaver


async def main(directory: str, blocked_handler: bool) -> None:
    model = nn.Linear(4, 4)

    def step(engine: Engine, batch: None) -> None:
        time.sleep(0.001)  # a sync step: Ctrl-C lands in it as often as not

    engine = Engine(step)
    engine.cancel_grace_period = 2.0
    checkpointer = Checkpoint({"model": model, "trainer": engine}, DiskSaver(directory), filename_prefix="final")
    engine.add_event_handler(Events.INTERRUPT, checkpointer)
    if blocked_handler:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), background(lambda: threading.Event().wait(60)))
    # Once iteration 20 has completed with all its handlers: Ctrl-C during a firing of ITERATION_COMPLETED
    # rewinds to the iteration before it, so "ready" at that firing would promise only 19.
    engine.add_event_handler(Events.ITERATION_STARTED(once=21), lambda: print("ready", flush=True))
    await engine.run(epoch_length=10**9)


if __name__ == "__main__":
    anyio.run(main, sys.argv[2], "--blocked-handler" in sys.argv, backend=sys.argv[1])
