"""Per-iteration cost of updating metrics, ignite_async vs pytorch-ignite 0.5.5, measured in one process.

Attached to an evaluator whose process function returns a precomputed batch of 256 samples over 10 classes:
Accuracy + Loss (cross-entropy) + ConfusionMatrix(10) + a RunningAverage of the loss. The metric cost is the
time per iteration with the metrics minus the time without them, in the same library (so the engines' own
overhead is not counted). Target: ours <= 0.5x pytorch-ignite's.

Each figure is the best of several repeats, the two libraries interleaved, so that machine load hits both.

    make bench            # or: .venv/bin/python benchmarks/metrics_update.py [--iters N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import ignite.engine as ig_engine
import ignite.metrics as ig
import torch

import ignite_async.metrics as ours
from ignite_async import Engine

BATCH, CLASSES = 256, 10


def make_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y_pred, y = torch.randn(BATCH, CLASSES, generator=g), torch.randint(0, CLASSES, (BATCH,), generator=g)
    loss = torch.nn.functional.cross_entropy(y_pred, y)
    return y_pred, y, loss


def attach(lib: Any, engine: Any) -> None:
    def pair(out: Any) -> Any:
        return out[0], out[1]

    lib.Accuracy(pair).attach(engine, "accuracy")
    lib.Loss(torch.nn.functional.cross_entropy, pair).attach(engine, "loss")
    lib.ConfusionMatrix(CLASSES, output_transform=pair).attach(engine, "cm")
    lib.RunningAverage(output_transform=lambda out: out[2]).attach(engine, "running_loss")


def time_ignite(with_metrics: bool, iters: int) -> float:
    batch = make_batch()
    engine = ig_engine.Engine(lambda e, b: batch)
    if with_metrics:
        attach(ig, engine)
    gc.collect()
    t0 = time.perf_counter()
    engine.run(range(iters), max_epochs=1)
    return (time.perf_counter() - t0) / iters


def time_ours(with_metrics: bool, iters: int) -> float:
    batch = make_batch()
    engine = Engine(lambda e, b: batch)
    if with_metrics:
        attach(ours, engine)

    async def main() -> float:
        t0 = time.perf_counter()
        await engine.run(range(iters), max_epochs=1)
        return time.perf_counter() - t0

    gc.collect()
    return asyncio.run(main()) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: threads add noise, not speed
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for with_metrics in (False, True):
            times.setdefault(("ignite", with_metrics), []).append(time_ignite(with_metrics, args.iters))
            times.setdefault(("ours", with_metrics), []).append(time_ours(with_metrics, args.iters))
    best = {key: min(values) * 1e6 for key, values in times.items()}
    cost = {lib: best[lib, True] - best[lib, False] for lib in ("ignite", "ours")}
    ratio = cost["ours"] / cost["ignite"]
    print(f"{args.iters} iterations, batch {BATCH}, {CLASSES} classes, best of {args.repeats}; µs per iteration")
    print("| | pytorch-ignite | ignite_async | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| engine alone | {best['ignite', False]:.1f} | {best['ours', False]:.1f} | | |")
    print(f"| engine + metrics | {best['ignite', True]:.1f} | {best['ours', True]:.1f} | | |")
    ok = ratio <= 0.5
    print(f"| metrics' cost | {cost['ignite']:.1f} | {cost['ours']:.1f} | {ratio:.2f}x | ≤ 0.5x {'✓' if ok else '✗'} |")
    if not ok:
        raise SystemExit("the target was missed")


if __name__ == "__main__":
    main()
