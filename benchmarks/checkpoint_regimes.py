"""Checkpoints in two regimes: never meaningfully slower than a blocking save, nearly free when saves are rare.

A model of 64 MiB (``nn.Linear(4096, 4096)``) trained on the CPU with SGD, a checkpoint of it every epoch, in
the same run: no checkpoint, ignite_async's ``ModelCheckpoint`` and pytorch-ignite 0.5.5's (which blocks for
the whole save). "One save" is pytorch-ignite's blocking save of the model, measured first; the epoch length
is then set in iterations:

- (a) an epoch costs about 10 saves: target ignite_async <= 1.05x the no-checkpoint wall, and a lower ratio
  than pytorch-ignite's;
- (b) an epoch costs about one save (checkpoints come as fast as they can be written): target ignite_async's
  wall <= 1.10x pytorch-ignite's.

Our saves are durable (the file and its directory are fsynced), pytorch-ignite's are not: ours do more work.
Runs are interleaved and the best of ``--repeats`` is kept for each, since the machine's noise (other
processes share its cores) is larger than some of the effects.

    .venv/bin/python benchmarks/checkpoint_regimes.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import ModelCheckpoint as IgniteModelCheckpoint
from torch import nn

from ignite_async import Engine, Events
from ignite_async.handlers import ModelCheckpoint

torch.set_num_threads(1)  # the step on one core: the other one is there for a background write
FEATURES, BATCH = 4096, 4
REGIMES = {"a": (10.0, 8), "b": (1.0, 12)}  # regime: (epoch cost in saves, epochs)

Step = Callable[[Any, torch.Tensor], float]


def setup(iterations: int) -> tuple[nn.Module, Step, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Linear(FEATURES, FEATURES)  # 16.8M parameters: 64 MiB
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    data = [torch.randn(BATCH, FEATURES) for _ in range(iterations)]

    def step(engine: Any, x: torch.Tensor) -> float:
        optimizer.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()  # every step changes every weight: a snapshot must not see later steps
        return loss.item()

    return model, step, data


def run_none(iterations: int, epochs: int, directory: Path) -> tuple[float, list[float]]:
    _, step, data = setup(iterations)
    engine = Engine(step)

    async def main() -> float:
        started = time.perf_counter()
        await engine.run(data, max_epochs=epochs)
        return time.perf_counter() - started

    return asyncio.run(main()), []


def run_ignite(iterations: int, epochs: int, directory: Path) -> tuple[float, list[float]]:
    model, step, data = setup(iterations)
    engine = IgniteEngine(step)
    handler = IgniteModelCheckpoint(directory, "ignite", n_saved=1)
    blocked: list[float] = []

    def save(engine: Any) -> None:
        started = time.perf_counter()
        handler(engine, {"model": model})
        blocked.append(time.perf_counter() - started)

    engine.add_event_handler(IgniteEvents.EPOCH_COMPLETED, save)
    started = time.perf_counter()
    engine.run(data, max_epochs=epochs)
    return time.perf_counter() - started, blocked


def run_ours(iterations: int, epochs: int, directory: Path) -> tuple[float, list[float]]:
    model, step, data = setup(iterations)
    engine = Engine(step)
    handler = ModelCheckpoint(directory, "ours", n_saved=1)
    blocked: list[float] = []

    async def save(engine: Engine) -> None:
        started = time.perf_counter()
        await handler(engine, {"model": model})
        blocked.append(time.perf_counter() - started)

    engine.add_event_handler(Events.EPOCH_COMPLETED, save)

    async def main() -> float:
        started = time.perf_counter()
        await engine.run(data, max_epochs=epochs)  # returns once the last write is durable
        return time.perf_counter() - started

    try:
        return asyncio.run(main()), blocked
    finally:
        handler.close()


RUNS = {"none": run_none, "ignite": run_ignite, "ours": run_ours}


def calibrate(directory: Path) -> tuple[float, float]:
    """(pytorch-ignite's blocking save of the model, one training step), in seconds: medians."""
    model, step, data = setup(8)
    handler = IgniteModelCheckpoint(directory, "calibration", n_saved=1)
    engine = IgniteEngine(step)
    saves = []
    for iteration in range(5):
        engine.state.iteration = iteration + 1
        started = time.perf_counter()
        handler(engine, {"model": model})
        saves.append(time.perf_counter() - started)
    steps = []
    for x in data:
        started = time.perf_counter()
        step(engine, x)
        steps.append(time.perf_counter() - started)
    return statistics.median(saves[1:]), statistics.median(steps[2:])


def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHECKPOINT_BENCH_DIR")) as root:
        save_s, step_s = calibrate(Path(root) / "calibration")
        print(
            f"model 64 MiB, 1 thread for the step; one blocking save (pytorch-ignite) {save_s * 1e3:.0f} ms, "
            f"one step {step_s * 1e3:.1f} ms; best of {repeats} interleaved runs"
        )
        print()
        print(
            "| regime | epoch | no checkpoint | pytorch-ignite | ignite_async | ours / none | ignite / none "
            "| ours / ignite | blocked per save: ignite, ours (median) | target | met |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
        run_index = 0
        for regime, (saves_per_epoch, epochs) in REGIMES.items():
            iterations = max(1, round(saves_per_epoch * save_s / step_s))
            walls: dict[str, list[float]] = {name: [] for name in RUNS}
            blocked: dict[str, list[float]] = {name: [] for name in RUNS}
            for _ in range(repeats):
                for name, run in RUNS.items():
                    run_index += 1
                    wall, waits = run(iterations, epochs, Path(root) / f"run{run_index}")
                    walls[name].append(wall)
                    blocked[name] += waits
            best = {name: min(values) for name, values in walls.items()}
            ours_none, ignite_none = best["ours"] / best["none"], best["ignite"] / best["none"]
            ours_ignite = best["ours"] / best["ignite"]
            if regime == "a":
                target = "ours/none <= 1.05 and < ignite/none"
                met = ours_none <= 1.05 and ours_none < ignite_none
            else:
                target = "ours/ignite <= 1.10"
                met = ours_ignite <= 1.10
            print(
                f"| ({regime}) | {iterations} steps, {iterations * step_s / save_s:.1f} saves, {epochs} epochs "
                f"| {best['none']:.2f} s | {best['ignite']:.2f} s | {best['ours']:.2f} s "
                f"| {ours_none:.3f}x | {ignite_none:.3f}x | {ours_ignite:.3f}x "
                f"| {statistics.median(blocked['ignite']) * 1e3:.0f} ms, "
                f"{statistics.median(blocked['ours']) * 1e3:.0f} ms "
                f"| {target} | {'yes' if met else 'NO'} |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    main(parser.parse_args().repeats)
