"""Concurrent evaluation: the trainer keeps training while an evaluator scores a snapshot of its weights.

    .venv/bin/python examples/concurrent_eval.py [--epochs N]

On EPOCH_COMPLETED a sync handler snapshots the model's weights to the CPU with the helper the checkpoints
use (``snapshot_state``: a consistent copy, taken between two steps; from a GPU, a non-blocking copy into
pinned memory on a side stream, which the evaluation waits for) and spawns an evaluation of that snapshot as
a task of the trainer. The evaluator is
another Engine over its own copy of the model; its steps run in worker threads, so on a multi-core
machine evaluation and training progress in parallel. The run waits for every evaluation before
COMPLETED.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio
import anyio.to_thread
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ignite_async import Engine, Events
from ignite_async.handlers.checkpoint import StateSnapshot, snapshot_state

Weights = dict[str, torch.Tensor]


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(1, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 1))


def make_loader(n: int, seed: int, shuffle: bool) -> DataLoader[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=generator) * 4 - 2
    return DataLoader(TensorDataset(x, 2 * x - x**3), batch_size=64, shuffle=shuffle, generator=generator)


def snapshot(model: nn.Module) -> StateSnapshot:
    """A CPU copy of the weights that later optimizer steps cannot change (read it with ``await .ready()``)."""
    return snapshot_state(model.state_dict())


def blocking_mse(weights: Weights, loader: DataLoader[tuple[torch.Tensor, ...]]) -> float:
    """The reference: the same evaluation, done inline."""
    model = build_model()
    model.load_state_dict(weights)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            total += float(((model(x) - y) ** 2).sum())
            count += len(x)
    return total / count


async def evaluate(weights: Weights, loader: DataLoader[tuple[torch.Tensor, ...]]) -> float:
    """Score ``weights`` with an evaluator Engine whose steps run in worker threads."""
    model = build_model()
    model.load_state_dict(weights)
    model.eval()

    def score(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, int]:
        x, y = batch
        with torch.no_grad():
            return float(((model(x) - y) ** 2).sum()), len(x)

    async def eval_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        total, count = await anyio.to_thread.run_sync(score, batch)
        engine.state.total += total
        engine.state.count += count

    evaluator = Engine(eval_step)

    @evaluator.on(Events.STARTED)
    def reset(engine: Engine) -> None:
        engine.state.total, engine.state.count = 0.0, 0

    state = await evaluator.run(loader)
    return float(state.total / state.count)


def build_trainer(results: dict[int, dict[str, Any]]) -> tuple[Engine, nn.Module]:
    torch.manual_seed(0)
    model = build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    val_loader = make_loader(1024, seed=1, shuffle=False)

    def train_step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    trainer = Engine(train_step)

    @trainer.on(Events.EPOCH_COMPLETED)
    def spawn_evaluation(engine: Engine) -> None:
        taken = snapshot(model)  # inline, between two steps: exactly this epoch's weights
        epoch = engine.state.epoch

        async def run_evaluation() -> None:
            weights: Weights = await taken.ready()  # a GPU's copy may still be running: wait without blocking
            record = results[epoch] = {"weights": weights, "started_at_iteration": engine.state.iteration}
            record["mse"] = await evaluate(weights, val_loader)
            record["finished_at_iteration"] = engine.state.iteration
            print(f"epoch {epoch:2d}: val mse {record['mse']:.5f} (trainer at iteration {engine.state.iteration})")

        engine.spawn(run_evaluation)

    return trainer, model


async def main(epochs: int = 5) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    trainer, _ = build_trainer(results)
    started = time.perf_counter()
    await trainer.run(make_loader(2048, seed=0, shuffle=True), max_epochs=epochs)
    print(f"{epochs} epochs and {len(results)} evaluations in {time.perf_counter() - started:.1f} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    anyio.run(main, parser.parse_args().epochs)
