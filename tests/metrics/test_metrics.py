"""Metrics: values equal to pytorch-ignite 0.5.5's for random outputs, under every usage."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import ignite.metrics as ig
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

import ignite_async.metrics as ours
from ignite_async import Engine, Events

Batch = tuple[torch.Tensor, torch.Tensor]


def classification_batches(kind: str, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    classes, extra = rng.randint(2, 6), [rng.randint(1, 3)] * rng.randint(0, 2)
    batches = []
    for _ in range(rng.randint(1, 5)):
        n = rng.randint(1, 9)
        if kind == "binary":
            batches.append(
                (torch.randint(0, 2, (n, *extra), generator=g), torch.randint(0, 2, (n, *extra), generator=g))
            )
        elif kind == "multiclass":
            batches.append(
                (torch.rand(n, classes, *extra, generator=g), torch.randint(0, classes, (n, *extra), generator=g))
            )
        else:
            shape = (n, classes, *extra)
            batches.append((torch.randint(0, 2, shape, generator=g), torch.randint(0, 2, shape, generator=g)))
    return batches


def regression_batches(seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    tail = rng.choice([(), (1,), (3,)])
    return [(torch.randn(n, *tail, generator=g), torch.randn(n, *tail, generator=g)) for n in [rng.randint(1, 9)] * 3]


PAIRS: list[tuple[str, Callable[[Any], Any], Callable[[int], list[Batch]]]] = [
    ("binary accuracy", lambda lib: lib.Accuracy(), lambda s: classification_batches("binary", s)),
    ("multiclass accuracy", lambda lib: lib.Accuracy(), lambda s: classification_batches("multiclass", s)),
    (
        "multilabel accuracy",
        lambda lib: lib.Accuracy(is_multilabel=True),
        lambda s: classification_batches("multilabel", s),
    ),
    ("mse", lambda lib: lib.MeanSquaredError(), regression_batches),
    ("mae", lambda lib: lib.MeanAbsoluteError(), regression_batches),
    ("rmse", lambda lib: lib.RootMeanSquaredError(), regression_batches),
    ("loss", lambda lib: lib.Loss(torch.nn.functional.mse_loss), regression_batches),
    (
        "cross-entropy loss",
        lambda lib: lib.Loss(torch.nn.functional.cross_entropy),
        lambda s: [(p.float(), y) for p, y in classification_batches("multiclass", s)],
    ),
]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("index", range(len(PAIRS)), ids=[p[0] for p in PAIRS])
def test_values_equal_ignites(index: int, seed: int) -> None:
    _, make, batches_for = PAIRS[index]
    batches = batches_for(seed)
    theirs, mine = make(ig), make(ours)
    for batch in batches:
        theirs.update(batch)
        mine.update(batch)
    assert mine.compute() == pytest.approx(theirs.compute(), rel=1e-6, abs=1e-9)


USAGES = ["epoch_wise", "batch_wise", "running_batch_wise", "single_epoch_running_batch_wise", "running_epoch_wise"]


@pytest.mark.anyio
@pytest.mark.parametrize("usage", [*USAGES, "batch_filtered"])
@pytest.mark.parametrize("index", [1, 3, 6], ids=["accuracy", "mse", "loss"])
async def test_every_usage_gives_ignites_values_at_every_event(index: int, usage: str) -> None:
    _, make, batches_for = PAIRS[index]
    batches = batches_for(7) * 2

    def trace(lib: Any, engine: Any, events: Any) -> list[Any]:
        metric = make(lib)
        u = lib.BatchFiltered(every=2) if usage == "batch_filtered" else usage
        metric.attach(engine, "m", usage=u)
        seen: list[Any] = []
        engine.add_event_handler(events.ITERATION_COMPLETED, lambda e: seen.append(e.state.metrics.get("m")))
        engine.add_event_handler(events.EPOCH_COMPLETED, lambda e: seen.append(e.state.metrics.get("m")))
        return seen

    ref = IgniteEngine(lambda e, b: b)
    theirs = trace(ig, ref, IgniteEvents)
    ref.run(batches, max_epochs=2)
    engine = Engine(lambda e, b: b)
    mine = trace(ours, engine, Events)
    await engine.run(batches, max_epochs=2)
    assert [m is None for m in mine] == [t is None for t in theirs]
    assert [m for m in mine if m is not None] == pytest.approx([t for t in theirs if t is not None], rel=1e-6)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(4, 2\) and \(4,\)"):
        ours.MeanSquaredError().update((torch.zeros(4, 2), torch.zeros(4)))
    with pytest.raises(ValueError, match=r"got \(3, 2\) and \(3, 4\)"):
        ours.Accuracy().update((torch.zeros(3, 2), torch.zeros(3, 4)))
    accuracy = ours.Accuracy()
    accuracy.update((torch.tensor([1, 0]), torch.tensor([1, 1])))
    with pytest.raises(RuntimeError, match="changed from binary to multiclass"):
        accuracy.update((torch.rand(2, 3), torch.tensor([0, 2])))
    with pytest.raises(ValueError, match="must be 0s and 1s"):
        ours.Accuracy().update((torch.tensor([0.3, 1.0]), torch.tensor([0, 1])))
    for metric in (ours.Accuracy(), ours.MeanAbsoluteError(), ours.Loss(torch.nn.functional.mse_loss)):
        with pytest.raises(ours.NotComputableError):
            metric.compute()
    with pytest.raises(ValueError, match="mean loss"):
        ours.Loss(lambda p, y: (p - y) ** 2).update((torch.zeros(3), torch.ones(3)))
    with pytest.raises(ValueError, match="usage must be"):
        ours.Accuracy().attach(Engine(lambda e, b: b), "acc", usage="sometimes")


@pytest.mark.anyio
async def test_dict_outputs_need_the_required_keys() -> None:
    engine = Engine(lambda e, b: {"y_pred": torch.rand(2, 3), "target": torch.tensor([0, 1])})
    ours.Accuracy().attach(engine, "acc")
    with pytest.raises(ValueError, match=r"needs the output keys \['y'\]"):
        await engine.run([0])
    ok = Engine(lambda e, b: {"y_pred": torch.tensor([[0.1, 0.9]]), "y": torch.tensor([1])})
    metric = ours.Accuracy()
    metric.attach(ok, "acc")
    assert metric.is_attached(ok)
    assert (await ok.run([0])).metrics["acc"] == 1.0
    metric.detach(ok)
    assert not metric.is_attached(ok)
