"""A training with dropout over a shuffled DataLoader, checkpointed every iteration: used by the resume test.

    python _resume_worker.py DIRECTORY run KILL_AT   # trains; SIGKILLs itself after iteration KILL_AT (0: never)
    python _resume_worker.py DIRECTORY resume        # loads the newest checkpoint and trains to the end

Writes the final weights to DIRECTORY/final.pt.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, DiskSaver, RNGStates


def newest(directory: str) -> Path:
    return max(Path(directory).glob("checkpoint_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


async def main(directory: str, mode: str, kill_at: int) -> None:
    torch.manual_seed(0 if mode == "run" else 1)  # a resumed run starts from other weights
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(engine: Engine, batch: list[torch.Tensor]) -> None:
        x, y = batch
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    g = torch.Generator().manual_seed(123)
    dataset = TensorDataset(torch.randn(22, 4, generator=g), torch.randn(22, 1, generator=g))
    loader = DataLoader(dataset, batch_size=4, shuffle=True)
    engine = Engine(step)
    objects = {"model": model, "optimizer": optimizer, "trainer": engine, "rng": RNGStates()}
    checkpointer = Checkpoint(objects, DiskSaver(directory, require_empty=False), n_saved=None)
    if mode == "run":
        engine.add_event_handler(Events.ITERATION_COMPLETED, checkpointer)
        if kill_at:
            kill = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
            engine.add_event_handler(Events.ITERATION_COMPLETED(once=kill_at), kill)
        torch.manual_seed(7)
        await engine.run(loader, max_epochs=3)
    else:
        Checkpoint.load_objects(objects, newest(directory))
        await engine.run(loader)
    torch.save(model.state_dict(), Path(directory) / "final.pt")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
