"""Per-iteration cost of updating metrics, ignite_async vs pytorch-ignite 0.5.5, measured in one process.

Attached to an evaluator whose process function returns a precomputed batch of 256 samples over 10 classes:
Accuracy + Loss (cross-entropy) + ConfusionMatrix(10) + a RunningAverage of the loss. The metric cost is the
time per iteration with the metrics minus the time without them, in the same library (so the engines' own
overhead is not counted). Target: ours <= 0.5x pytorch-ignite's.

The ratio is the median of paired repeats, each timing the two libraries back to back, so that the drift
of a shared machine's speed hits both halves of each ratio alike.

    make bench            # or: .venv/bin/python benchmarks/metrics_update.py [--iters N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
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
    parser.add_argument("--iters", type=int, default=3000, help="iterations per measurement (one epoch)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    alone = {
        "ignite": min(time_ignite(False, args.iters) for _ in range(5)),
        "ours": min(time_ours(False, args.iters) for _ in range(5)),
    }
    # Each repeat measures both libraries back to back (in alternating order), so that the machine's
    # speed, which drifts on a shared VM, is the same for the two halves of each ratio.
    costs: dict[str, list[float]] = {"ignite": [], "ours": []}
    ratios = []
    for repeat in range(args.repeats):
        pair = {}
        for lib in ("ignite", "ours") if repeat % 2 == 0 else ("ours", "ignite"):
            measured = time_ignite(True, args.iters) if lib == "ignite" else time_ours(True, args.iters)
            pair[lib] = measured - alone[lib]
            costs[lib].append(pair[lib] * 1e6)
        ratios.append(pair["ours"] / pair["ignite"])
    ratio = statistics.median(ratios)
    ig, ours_cost = statistics.median(costs["ignite"]), statistics.median(costs["ours"])
    print(
        f"{args.repeats} paired repeats of {args.iters} iterations, batch {BATCH}, {CLASSES} classes, "
        f"{args.threads} torch threads; µs per iteration (medians)"
    )
    print("| | pytorch-ignite | ignite_async | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| engine alone | {alone['ignite'] * 1e6:.1f} | {alone['ours'] * 1e6:.1f} | | |")
    ok = ratio <= 0.5
    print(f"| metrics' cost | {ig:.1f} | {ours_cost:.1f} | {ratio:.2f}x | ≤ 0.5x {'✓' if ok else '✗'} |")
    print(f"ratio over the repeats: min {min(ratios):.2f}x, median {ratio:.2f}x, max {max(ratios):.2f}x")
    if not ok:
        raise SystemExit("the target was missed")


if __name__ == "__main__":
    main()
