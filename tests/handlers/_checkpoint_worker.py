"""Checkpoints in a loop until killed: used by the crash-safety test.

    python _checkpoint_worker.py DIRECTORY

Each iteration fills a ~4 MB model with the iteration number and checkpoints it (n_saved=2), so a file is
complete exactly when every parameter equals the step in its name. Prints "ready" once the first
checkpoint is durable.
"""

from __future__ import annotations

import sys

import anyio
import torch
from torch import nn

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, DiskSaver


async def main(directory: str) -> None:
    model = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 512), nn.Linear(512, 512), nn.Linear(512, 512))

    def step(engine: Engine, batch: None) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(engine.state.iteration))

    engine = Engine(step)
    saver = DiskSaver(directory, require_empty=False)  # removes what a killed predecessor left half-written
    checkpointer = Checkpoint({"model": model}, saver, n_saved=2, global_step_transform=lambda e, _: e.state.iteration)
    engine.add_event_handler(Events.ITERATION_COMPLETED, checkpointer)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda: print("ready", flush=True))
    await engine.run(epoch_length=10**9)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
