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


# ---------------------------------------------------------------------------------------------------------------
# torchmetrics through TorchMetric: 5 torchmetrics metrics (accuracy, macro F1, macro precision, confusion matrix,
# mean of the loss), each attached as its own TorchMetric, against the same 5 updated in a plain Python loop
# (what a hand-written evaluation loop costs). The overhead is ours per iteration (with the metrics minus the
# engine alone) over the plain loop's. Target: <= 1.1x. Inputs are checked by neither (validate_args=False,
# nan_strategy="disable": the sync-free settings TorchMetric's docstring advises).


def torchmetrics_set() -> list[tuple[str, Any, Any]]:
    """(name, metric, which part of the output it takes): 5 fresh torchmetrics metrics."""
    from torchmetrics.aggregation import MeanMetric
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassConfusionMatrix,
        MulticlassF1Score,
        MulticlassPrecision,
    )

    def pair(out: Any) -> Any:
        return out[0], out[1]

    def loss(out: Any) -> Any:
        return out[2]

    return [
        ("accuracy", MulticlassAccuracy(CLASSES, validate_args=False), pair),
        ("f1", MulticlassF1Score(CLASSES, average="macro", validate_args=False), pair),
        ("precision", MulticlassPrecision(CLASSES, average="macro", validate_args=False), pair),
        ("cm", MulticlassConfusionMatrix(CLASSES, validate_args=False), pair),
        ("loss", MeanMetric(nan_strategy="disable"), loss),
    ]


def time_plain_torchmetrics(iters: int) -> float:
    batch = make_batch()
    metrics = torchmetrics_set()
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(iters):
        for _, metric, part in metrics:
            args = part(batch)
            if isinstance(args, tuple):
                metric.update(*args)
            else:
                metric.update(args)
    for _, metric, _ in metrics:
        metric.compute()
    return (time.perf_counter() - t0) / iters


def time_torchmetric(iters: int) -> float:
    from ignite_async.metrics.torchmetric import TorchMetric

    batch = make_batch()
    engine = Engine(lambda e, b: batch)
    for name, metric, part in torchmetrics_set():
        TorchMetric(metric, part).attach(engine, name)

    async def run() -> float:
        t0 = time.perf_counter()
        await engine.run(range(iters), max_epochs=1)
        return time.perf_counter() - t0

    gc.collect()
    return asyncio.run(run()) / iters


def main_torchmetrics() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    try:
        import torchmetrics
    except ImportError:
        print("torchmetrics is not installed (pip install 'ignite-async[metrics]'): its section is skipped")
        return
    torch.set_num_threads(args.threads)
    iters = max(1, args.iters // 3)  # 5 torchmetrics updates cost several times the section above's
    ours_costs, plain_costs, ratios = [], [], []
    for repeat in range(args.repeats):
        # The engine alone is measured in each repeat too: its cost drifts with the machine's speed as well.
        pair = {}
        for lib in ("plain", "ours") if repeat % 2 == 0 else ("ours", "plain"):
            if lib == "plain":
                pair[lib] = time_plain_torchmetrics(iters)
            else:
                pair[lib] = time_torchmetric(iters) - time_ours(False, iters)
        plain_costs.append(pair["plain"] * 1e6)
        ours_costs.append(pair["ours"] * 1e6)
        ratios.append(pair["ours"] / pair["plain"])
    ratio = statistics.median(ratios)
    print()
    print(
        f"torchmetrics {torchmetrics.__version__}: 5 metrics, {args.repeats} paired repeats of {iters} iterations, "
        f"batch {BATCH}, {CLASSES} classes, {args.threads} torch threads; µs per iteration (medians)"
    )
    print("| | plain loop | TorchMetric on an Engine | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    ok = ratio <= 1.1
    print(
        f"| 5 torchmetrics updates | {statistics.median(plain_costs):.1f} | {statistics.median(ours_costs):.1f} | "
        f"{ratio:.2f}x | ≤ 1.1x {'✓' if ok else '✗'} |"
    )
    print(f"ratio over the repeats: min {min(ratios):.2f}x, median {ratio:.2f}x, max {max(ratios):.2f}x")
    if not ok:
        raise SystemExit("the torchmetrics target was missed")


if __name__ == "__main__":
    main()
    main_torchmetrics()
