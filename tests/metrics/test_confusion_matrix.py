"""ConfusionMatrix, IoU, mIoU, cmAccuracy and metric arithmetic: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random
import types
from typing import Any

import ignite.metrics
import ignite.metrics.confusion_matrix
import pytest
import torch
from ignite.engine import Engine as IgniteEngine

import ignite_async.metrics as ours
from ignite_async import Engine

# pytorch-ignite exports cmAccuracy only from its submodule.
ig = types.SimpleNamespace(**vars(ignite.metrics), cmAccuracy=ignite.metrics.confusion_matrix.cmAccuracy)


def segmentation_batches(seed: int) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    classes = rng.randint(2, 5)
    spatial = [rng.randint(1, 4)] * rng.randint(0, 2)
    batches = []
    for _ in range(rng.randint(1, 4)):
        n = rng.randint(1, 6)
        y = torch.randint(-1, classes + 1, (n, *spatial), generator=g)  # some targets out of range: ignored
        batches.append((torch.rand(n, classes, *spatial, generator=g), y))
    return classes, batches


def value(x: Any) -> Any:
    """A flat list of floats (approx compares flat sequences only)."""
    return x.flatten().tolist() if isinstance(x, torch.Tensor) else [x]


BUILDERS = {
    "counts": lambda lib, c: lib.ConfusionMatrix(c),
    "samples": lambda lib, c: lib.ConfusionMatrix(c, average="samples"),
    "recall": lambda lib, c: lib.ConfusionMatrix(c, average="recall"),
    "precision": lambda lib, c: lib.ConfusionMatrix(c, average="precision"),
    "iou": lambda lib, c: lib.IoU(lib.ConfusionMatrix(c)),
    "iou-ignore": lambda lib, c: lib.IoU(lib.ConfusionMatrix(c), ignore_index=1),
    "miou": lambda lib, c: lib.mIoU(lib.ConfusionMatrix(c)),
    "cm-accuracy": lambda lib, c: lib.cmAccuracy(lib.ConfusionMatrix(c)),
    "cm-entry": lambda lib, c: lib.ConfusionMatrix(c)[0, 1],
}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("name", list(BUILDERS))
def test_values_equal_ignites(name: str, seed: int) -> None:
    classes, batches = segmentation_batches(seed)
    theirs, mine = BUILDERS[name](ig, classes), BUILDERS[name](ours, classes)
    for batch in batches:
        theirs.update(batch)
        mine.update(batch)
    assert value(mine.compute()) == pytest.approx(value(theirs.compute()), rel=1e-6, abs=1e-9)


@pytest.mark.anyio
async def test_arithmetic_attached_to_an_engine_like_ignite() -> None:
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(5, generator=g), torch.randn(5, generator=g)) for _ in range(4)]

    def build(lib: Any) -> Any:
        mse, mae = lib.MeanSquaredError(), lib.MeanAbsoluteError()
        return {"mse": mse, "blend": (mse + 2 * mae) / 3, "ratio": mse / mae, "shifted": 1 - mae**2}

    ref = IgniteEngine(lambda e, b: b)
    for name, metric in build(ig).items():
        metric.attach(ref, name)
    ref.run(batches, max_epochs=2)
    engine = Engine(lambda e, b: b)
    metrics = build(ours)
    for name, metric in metrics.items():
        metric.attach(engine, name)
    state = await engine.run(batches, max_epochs=2)
    for name in metrics:
        assert state.metrics[name] == pytest.approx(ref.state.metrics[name], rel=1e-6)
    with pytest.raises(ValueError, match="attached to an engine"):
        metrics["blend"].update(batches[0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        ours.ConfusionMatrix(1)
    with pytest.raises(ValueError, match="average must be"):
        ours.ConfusionMatrix(3, average="macro")
    with pytest.raises(ValueError, match=r"y_pred must be \(N, 3, \.\.\.\)"):
        ours.ConfusionMatrix(3).update((torch.rand(2, 4), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="average None or 'samples'"):
        ours.IoU(ours.ConfusionMatrix(3, average="recall"))
    with pytest.raises(ValueError, match="ignore_index"):
        ours.IoU(ours.ConfusionMatrix(3), ignore_index=3)
    with pytest.raises(TypeError, match="needs a ConfusionMatrix"):
        ours.mIoU(ours.Accuracy())  # type: ignore[arg-type]
    with pytest.raises(ours.NotComputableError):
        ours.ConfusionMatrix(3).compute()
