"""JaccardIndex and DiceCoefficient: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.confusion_matrix import ConfusionMatrix
from ignite_async.metrics.overlap import DiceCoefficient, JaccardIndex
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip
from tests.metrics.test_confusion_matrix import segmentation_batches

OURS = {"dice": DiceCoefficient, "jaccard": JaccardIndex}
THEIRS = {"dice": ig.DiceCoefficient, "jaccard": ig.JaccardIndex}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ignore", [None, 0, 1])
@pytest.mark.parametrize("name", list(OURS))
def test_values_equal_ignites(name: str, ignore: int | None, seed: int) -> None:
    classes, batches = segmentation_batches(seed)
    mine = OURS[name](ConfusionMatrix(classes), ignore_index=ignore)
    check_direct(mine, THEIRS[name](ig.ConfusionMatrix(classes), ignore_index=ignore), batches)


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(OURS))
async def test_attached_like_ignite(name: str) -> None:
    classes, batches = segmentation_batches(2)

    def make(ours: bool) -> object:
        return (OURS if ours else THEIRS)[name]((ConfusionMatrix if ours else ig.ConfusionMatrix)(classes))

    await check_attached(make, batches)


def test_bad_arguments() -> None:
    for f in (DiceCoefficient, JaccardIndex):
        with pytest.raises(ValueError, match="ignore_index"):
            f(ConfusionMatrix(3), ignore_index=3)
        with pytest.raises(TypeError, match="needs a ConfusionMatrix"):
            f(torch.zeros(3, 3))  # type: ignore[arg-type]


def test_state_round_trip() -> None:
    classes, batches = segmentation_batches(5)
    check_state_round_trip(lambda: DiceCoefficient(ConfusionMatrix(classes)), batches * 2)
