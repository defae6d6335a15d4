"""A training run that survives SIGTERM: final checkpoint on the signal, exact resume with --resume.

    .venv/bin/python examples/resumable.py --dir runs/resumable            # Ctrl-C or `kill -TERM` it
    .venv/bin/python examples/resumable.py --dir runs/resumable --resume   # continues where it stopped

Checkpoints (model, optimizer, LR scheduler, trainer, RNG states) are written every epoch in the background,
and once more when SIGTERM (or SIGINT) arrives: the signal cancels the run, and INTERRUPT handlers get a
shielded grace period to write the last checkpoint. Batches are a function of the iteration number and the
RNG states are saved, so a resumed run ends with weights bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

import anyio
import torch
from torch import nn

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, DiskSaver, LRScheduler, RNGStates

EPOCH_LENGTH = 50


def batch_for(iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of an iteration, the same in every run: resuming mid-epoch needs no data loader state."""
    generator = torch.Generator().manual_seed(iteration)
    x = torch.rand(256, 1, generator=generator) * 4 - 2
    return x, 2 * x - x**3


def newest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("checkpoint_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    return found[-1] if found else None


async def train(directory: Path, epochs: int, resume: bool) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Dropout(0.1), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = LRScheduler(torch.optim.lr_scheduler.StepLR(optimizer, step_size=5 * EPOCH_LENGTH, gamma=0.5))

    def step(engine: Engine, batch: None) -> float:
        model.train()
        x, y = batch_for(engine.state.iteration)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    trainer = Engine(step)
    trainer.add_event_handler(Events.ITERATION_STARTED, scheduler)
    to_save: dict[str, Any] = {
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "trainer": trainer,
        "rng": RNGStates(),
    }
    checkpointer = Checkpoint(to_save, DiskSaver(directory, require_empty=False), n_saved=2)
    trainer.add_event_handler(Events.EPOCH_COMPLETED | Events.INTERRUPT, checkpointer)
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: print(f"epoch {e.state.epoch} loss {e.state.output:.5f}", flush=True)
    )

    if resume and (path := newest_checkpoint(directory)) is not None:
        Checkpoint.load_objects(to_save, path)
        print(f"resumed from {path.name} at iteration {trainer.state.iteration}", flush=True)

    async with anyio.create_task_group() as tg:

        async def cancel_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    print(f"received {signal.Signals(signum).name}: writing a final checkpoint", flush=True)
                    tg.cancel_scope.cancel()

        tg.start_soon(cancel_on_signal)
        await trainer.run(epoch_length=EPOCH_LENGTH, max_epochs=epochs)
        tg.cancel_scope.cancel()  # done: stop listening for signals

    if trainer.state.iteration < EPOCH_LENGTH * epochs:
        print(f"stopped at iteration {trainer.state.iteration}; resume with --resume", flush=True)
    else:
        print(f"done: {trainer.state.iteration} iterations, loss {trainer.state.output:.5f}", flush=True)
        torch.save(model.state_dict(), directory / "final_weights.pt")
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("runs/resumable"))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    anyio.run(train, args.dir, args.epochs, args.resume)
