"""MeanAveragePrecision: pytorch-ignite 0.5.5's values for binary, multiclass and multilabel scores."""

from __future__ import annotations

import random
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.mean_average_precision import MeanAveragePrecision
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import assert_close, check_attached, check_direct, check_state_round_trip

# pytorch-ignite's gather helper warns about its own indexing in torch >= 2.9, even in a single process.
pytestmark = pytest.mark.filterwarnings("ignore:Using a non-tuple sequence for multidimensional indexing")

Batch = tuple[torch.Tensor, torch.Tensor]


def score_batches(kind: str, seed: int) -> list[Batch]:
    """Scores rounded to one decimal, so that many tie; optional trailing dimensions; several batch sizes."""
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    classes, extra = rng.randint(2, 5), rng.choice([(), (2,), (3, 2)])
    batches = []
    for n in (rng.randint(1, 9), 6, 1):
        if kind == "binary":
            batches.append((torch.rand(n, *extra, generator=g), torch.randint(0, 2, (n, *extra), generator=g)))
        elif kind == "binary (N, 1)":
            batches.append((torch.rand(n, 1, *extra, generator=g), torch.randint(0, 2, (n, *extra), generator=g)))
        elif kind == "multiclass":
            batches.append(
                (torch.rand(n, classes, *extra, generator=g), torch.randint(0, classes, (n, *extra), generator=g))
            )
        else:
            shape = (n, classes, *extra)
            batches.append((torch.rand(shape, generator=g), torch.randint(0, 2, shape, generator=g)))
    return [(p.round(decimals=1), y) for p, y in batches]


OPTIONS: dict[str, dict[str, Any]] = {
    "macro": {},
    "per class": {"class_mean": None},
    "weighted": {"class_mean": "weighted"},
    "micro": {"class_mean": "micro"},
    "rec thresholds": {"rec_thresholds": [0.9, 0.1, 0.5, 0.0]},
    "rec thresholds per class": {"class_mean": None, "rec_thresholds": torch.tensor([0.25, 0.75, 1.0])},
}
KINDS = ["binary", "binary (N, 1)", "multiclass", "multilabel"]


def build(lib: Any, kind: str, option: str) -> Any:
    return lib.MeanAveragePrecision(is_multilabel=kind == "multilabel", **OPTIONS[option])


OURS = type("ours", (), {"MeanAveragePrecision": MeanAveragePrecision})


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("kind", KINDS)
def test_values_equal_ignites(kind: str, option: str, seed: int) -> None:
    check_direct(build(OURS, kind, option), build(ig, kind, option), score_batches(kind, seed))


def test_value_types_follow_ignite() -> None:
    binary = MeanAveragePrecision()
    binary.update(score_batches("binary", 0)[0])
    assert isinstance(binary.compute(), float)
    per_class = MeanAveragePrecision(class_mean=None)
    y_pred, y = score_batches("multiclass", 1)[1]
    per_class.update((y_pred, y))
    value = per_class.compute()
    assert isinstance(value, torch.Tensor)
    assert value.shape == (y_pred.shape[1],)
    assert value.dtype == torch.float64


def test_class_without_positives_scores_zero() -> None:
    metric = MeanAveragePrecision(class_mean=None)
    reference = ig.MeanAveragePrecision(class_mean=None)
    batch = (torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]), torch.tensor([0, 1, 0]))
    check_direct(metric, reference, [batch])
    value = metric.compute()
    assert isinstance(value, torch.Tensor)
    assert float(value[2]) == 0.0


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "option"), [("multiclass", "macro"), ("binary", "rec thresholds")])
async def test_attached_like_ignite(kind: str, option: str) -> None:
    await check_attached(lambda ours: build(OURS if ours else ig, kind, option), score_batches(kind, 4))


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip(kind: str) -> None:
    check_state_round_trip(lambda: build(OURS, kind, "per class"), score_batches(kind, 5))


def test_state_keeps_the_data_type() -> None:
    first = MeanAveragePrecision(is_multilabel=True)
    first.update(score_batches("multilabel", 6)[0])
    second = MeanAveragePrecision(is_multilabel=True)
    second.load_state_dict(first.state_dict())
    assert_close(second.compute(), first.compute())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="class_mean"):
        MeanAveragePrecision(class_mean="samples")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="between 0 and 1"):
        MeanAveragePrecision(rec_thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="one-dimensional"):
        MeanAveragePrecision(rec_thresholds=torch.zeros(2, 2))
    with pytest.raises(TypeError, match="sequence of floats or a tensor"):
        MeanAveragePrecision(rec_thresholds=0.5)  # type: ignore[arg-type]


def test_bad_input() -> None:
    with pytest.raises(NotComputableError, match="at least one example"):
        MeanAveragePrecision().compute()
    assert issubclass(NotComputableError, RuntimeError)  # what pytorch-ignite raises here
    with pytest.raises(TypeError, match="float scores"):
        MeanAveragePrecision().update((torch.tensor([1, 0]), torch.tensor([1, 0])))
    with pytest.raises(ValueError, match="0s and 1s"):
        MeanAveragePrecision().update((torch.tensor([0.2, 0.8]), torch.tensor([2, 0])))
    with pytest.raises(ValueError, match="only 3 classes"):
        MeanAveragePrecision().update((torch.rand(2, 3), torch.tensor([0, 3])))
    with pytest.raises(ValueError, match=r"must be \(N, C, ...\)"):
        MeanAveragePrecision().update((torch.rand(2, 3), torch.tensor([0, 1, 2])))
    with pytest.warns(RuntimeWarning, match="dtype long"):
        MeanAveragePrecision().update((torch.rand(2, 3), torch.tensor([0, 1], dtype=torch.int32)))
    metric = MeanAveragePrecision()
    metric.update((torch.rand(2, 3), torch.tensor([0, 1])))
    with pytest.raises(RuntimeError, match="changed from multiclass to binary"):
        metric.update((torch.rand(2), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="number of classes changed"):
        metric.update((torch.rand(2, 4), torch.tensor([0, 1])))
