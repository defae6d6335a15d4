"""One rank of the 2-process TorchMetric test, launched by torchrun from test_torchmetric_torchrun.py.

    _torchmetric_worker.py OUT_DIR ASYNC_BACKEND

The ranks evaluate unequal shards of one dataset (3 batches on rank 0, 2 on rank 1) with torchmetrics metrics
through TorchMetric, inline and in the background; each rank writes what its evaluator published.
"""

from __future__ import annotations

import faulthandler
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import torch
from torchmetrics import MetricCollection
from torchmetrics.aggregation import MeanMetric, SumMetric
from torchmetrics.classification import BinaryAUROC, MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score
from torchmetrics.regression import PearsonCorrCoef

import ignite_async.distributed as idist
from ignite_async import Engine, Events
from ignite_async.metrics.torchmetric import TorchMetric

CLASSES = 3
ROWS, BATCH, RANK_0_ROWS = 40, 8, 24


def dataset() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    scores = torch.softmax(torch.randn(ROWS, CLASSES, generator=g), dim=1)
    return scores, (torch.arange(ROWS) % CLASSES)[torch.randperm(ROWS, generator=g)]


def batches(rows: slice) -> list[tuple[torch.Tensor, torch.Tensor]]:
    scores, y = dataset()
    scores, y = scores[rows], y[rows]
    return [(scores[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(y), BATCH)]


def evaluate(data: list[tuple[torch.Tensor, torch.Tensor]], background: bool, backend: str) -> dict[str, Any]:
    """What an evaluator publishes over ``data`` (this rank's shard, or all of it in a single process)."""
    evaluator = Engine(lambda e, b: b)
    collection = MetricCollection(
        [MulticlassAccuracy(CLASSES), MulticlassF1Score(CLASSES, average="macro"), MulticlassConfusionMatrix(CLASSES)],
        prefix="c_",
    )
    metrics = {
        "collection": TorchMetric(collection, background=background),
        # list states of different lengths on each rank, gathered
        "auroc": TorchMetric(BinaryAUROC(), lambda o: (o[0][:, 0], (o[1] == 0).long()), background=background),
        "mean": TorchMetric(
            MeanMetric(nan_strategy="disable"), lambda o: o[0].max(dim=1).values, background=background
        ),
        # states stacked per rank (no reduction function), merged by the metric's compute()
        "pearson": TorchMetric(PearsonCorrCoef(), lambda o: (o[0][:, 0], o[0][:, 1]), background=background),
        "rows_here": TorchMetric(SumMetric(sync_on_compute=False), lambda o: torch.tensor(float(len(o[1])))),
    }
    for name, metric in metrics.items():
        metric.attach(evaluator, name)
    state = anyio.run(evaluator.run, data, backend=backend)
    return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in state.metrics.items()}


def run(local_rank: int, out: Path, backend: str) -> None:
    rank = idist.get_rank()
    assert idist.get_world_size() == 2, idist.get_world_size()
    shard = batches(slice(0, RANK_0_ROWS) if rank == 0 else slice(RANK_0_ROWS, ROWS))
    results: dict[str, Any] = {str(background): evaluate(shard, background, backend) for background in (False, True)}
    # A state sync from a background task is refused (ranks could call collectives in different orders there).
    probe = TorchMetric(SumMetric())
    probe.update(torch.tensor(1.0))
    engine = Engine(lambda e, b: None)

    async def sneaky() -> None:
        probe.compute()

    engine.add_event_handler(Events.STARTED, lambda e: e.spawn(sneaky))
    try:
        anyio.run(engine.run, [0], backend=backend)
    except RuntimeError as exc:
        results["refused"] = str(exc)
    (out / f"torchmetric_{rank}.json").write_text(json.dumps(results))


def main(out: Path, backend: str) -> None:
    # A rank still running after 100 s is stuck: print where (to the test's output) and fail the job.
    faulthandler.dump_traceback_later(100, exit=True)
    with idist.Parallel(backend="gloo") as parallel:
        parallel.run(run, out, backend)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
