"""MultiLabelConfusionMatrix: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.metric import NotComputableError
from ignite_async.metrics.multilabel_confusion_matrix import MultiLabelConfusionMatrix
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip


def batches_for(seed: int) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    classes, extra = rng.randint(2, 5), [rng.randint(1, 3)] * rng.randint(0, 2)
    dtype = rng.choice([torch.int64, torch.uint8, torch.int32])
    batches = []
    for _ in range(rng.randint(1, 4)):
        shape = (rng.randint(1, 8), classes, *extra)
        batches.append(
            (torch.randint(0, 2, shape, generator=g, dtype=dtype), torch.randint(0, 2, shape, generator=g, dtype=dtype))
        )
    return classes, batches


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("normalized", [False, True])
def test_values_equal_ignites(seed: int, normalized: bool) -> None:
    classes, batches = batches_for(seed)
    mine = MultiLabelConfusionMatrix(classes, normalized=normalized)
    check_direct(mine, ig.MultiLabelConfusionMatrix(classes, normalized=normalized), batches)


@pytest.mark.anyio
@pytest.mark.parametrize("usage", ["epoch_wise", "batch_wise"])
async def test_attached_like_ignite(usage: str) -> None:
    classes, batches = batches_for(3)
    lib = {True: MultiLabelConfusionMatrix, False: ig.MultiLabelConfusionMatrix}
    await check_attached(lambda ours: lib[ours](classes), batches, usage)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="num_classes must be an integer > 1"):
        MultiLabelConfusionMatrix(1)
    cm = MultiLabelConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"\(N, 3, \.\.\.\), got \(2, 2\) and \(2, 2\)"):
        cm.update((torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)))
    with pytest.raises(ValueError, match="integer tensor"):
        cm.update((torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)))
    with pytest.raises(ValueError, match="y must be 0s and 1s"):
        cm.update((torch.zeros(2, 3, dtype=torch.long), torch.full((2, 3), 2)))
    with pytest.raises(NotComputableError):
        cm.compute()


def test_state_round_trip() -> None:
    classes, batches = batches_for(4)
    check_state_round_trip(lambda: MultiLabelConfusionMatrix(classes), batches * 2)
