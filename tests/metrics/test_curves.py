"""PrecisionRecallCurve and RocCurve: pytorch-ignite 0.5.5's (sklearn's) curves, computed with torch."""

from __future__ import annotations

import warnings
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.curves import PrecisionRecallCurve, RocCurve
from tests.metrics._data import ranking_batches
from tests.metrics._oracle import assert_close, check_attached, check_direct, check_state_round_trip

OURS: dict[str, Any] = {"pr": PrecisionRecallCurve, "roc": RocCurve}
THEIRS: dict[str, Any] = {"pr": ig.PrecisionRecallCurve, "roc": ig.RocCurve}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("name", list(OURS))
def test_values_equal_ignites(name: str, seed: int) -> None:
    batches = ranking_batches(seed, labels=0)
    if seed % 3 == 0:  # continuous scores (no ties), as a column
        g = torch.Generator().manual_seed(seed)
        batches = [(torch.rand(len(y), 1, generator=g), y.unsqueeze(1)) for _, y in batches]
    if seed % 4 == 1:  # float32 scores
        batches = [(p.float(), y) for p, y in batches]
    check_direct(OURS[name](), THEIRS[name](), batches)


@pytest.mark.parametrize("name", list(OURS))
def test_one_class_like_sklearn(name: str) -> None:
    for y in (torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.long)):
        batch = (torch.tensor([0.1, 0.5, 0.5, 0.9, 0.3]), y)
        mine, theirs = OURS[name](), THEIRS[name]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mine.update(batch)
            theirs.update(batch)
            assert_close(mine.compute(), theirs.compute())


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(OURS))
async def test_attached_like_ignite(name: str) -> None:
    await check_attached(lambda ours: (OURS if ours else THEIRS)[name](), ranking_batches(3, labels=0))


def test_bad_input() -> None:
    for cls in OURS.values():
        with pytest.raises(ValueError, match="binary data only"):
            cls().update((torch.rand(4, 3), torch.randint(0, 2, (4, 3))))
        with pytest.raises(ValueError, match="0s and 1s"):
            cls().update((torch.rand(3), torch.tensor([0, 2, 1])))


@pytest.mark.parametrize("name", list(OURS))
def test_state_round_trip(name: str) -> None:
    check_state_round_trip(OURS[name], ranking_batches(2, labels=0))
