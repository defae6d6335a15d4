"""Quick start: an MLP learns f(x) = 2x - x^3, with an evaluator run every 5 epochs.

    make demo        # or: .venv/bin/python examples/quickstart.py [--epochs N] [--backend trio]

Shows the pieces of ignite_async: a sync training step, an async evaluation handler that runs a second
engine, several handlers on one event, one handler on several events (``|``), a filter combined with a
time-based one (``&``), and a custom event fired from an async process function.
"""

from __future__ import annotations

import argparse
import time

import anyio
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ignite_async import Engine, EventEnum, Events, throttle_filter


def target(x: torch.Tensor) -> torch.Tensor:
    return 2 * x - x**3


def make_loader(n: int, *, shuffle: bool, seed: int) -> DataLoader[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=generator) * 4 - 2  # x in [-2, 2]
    return DataLoader(TensorDataset(x, target(x)), batch_size=64, shuffle=shuffle, generator=generator)


class EvalEvents(EventEnum):
    BATCH_SCORED = "batch_scored"


def build(epochs: int) -> tuple[Engine, Engine, nn.Module]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.MSELoss()
    val_loader = make_loader(512, shuffle=False, seed=1)

    def train_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        model.train()
        x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    async def eval_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        model.eval()
        x, y = batch
        with torch.no_grad():
            engine.state.sum_sq += float(((model(x) - y) ** 2).sum())
        engine.state.count += len(x)
        await engine.fire(EvalEvents.BATCH_SCORED)  # custom events fire from async process functions

    trainer = Engine(train_step)
    evaluator = Engine(eval_step)
    evaluator.register_events(*EvalEvents)

    @evaluator.on(Events.STARTED)
    def reset(engine: Engine) -> None:
        engine.state.sum_sq, engine.state.count = 0.0, 0

    @evaluator.on(Events.COMPLETED)
    def compute(engine: Engine) -> None:
        engine.state.metrics["mse"] = engine.state.sum_sq / engine.state.count

    @trainer.on(Events.STARTED | Events.EPOCH_COMPLETED(every=5))
    async def evaluate(engine: Engine) -> None:
        state = await evaluator.run(val_loader)
        engine.state.metrics["val_mse"] = state.metrics["mse"]
        print(f"epoch {engine.state.epoch:3d}  val mse {state.metrics['mse']:.5f}")

    # Two handlers on one event run in registration order.
    @trainer.on(Events.ITERATION_COMPLETED)
    def track_loss(engine: Engine) -> None:
        engine.state.running_loss = 0.9 * getattr(engine.state, "running_loss", engine.state.output) + 0.1 * (
            engine.state.output
        )

    # Every 100 iterations, but at most every 0.2 s: `&` of a count filter and a time filter.
    @trainer.on(Events.ITERATION_COMPLETED(every=100) & Events.ITERATION_COMPLETED(event_filter=throttle_filter(0.2)))
    def log_progress(engine: Engine) -> None:
        print(f"  iteration {engine.state.iteration:5d}  running loss {engine.state.running_loss:.5f}")

    return trainer, evaluator, model


async def main(epochs: int) -> float:
    trainer, _, _ = build(epochs)
    started = time.perf_counter()
    state = await trainer.run(make_loader(2048, shuffle=True, seed=0), max_epochs=epochs)
    mse = float(state.metrics["val_mse"])
    print(f"done: {state.epoch} epochs, {state.iteration} iterations in {time.perf_counter() - started:.1f} s")
    print(f"final validation mse {mse:.5f} (the target's variance on [-2, 2] is about 1.2)")
    return mse


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, args.epochs, backend=args.backend)
