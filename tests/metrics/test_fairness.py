"""SelectionRate, DemographicParityDifference, SubgroupAccuracyDifference (and SubgroupMetric/SubgroupDifference):
pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random
from typing import Any

import ignite.exceptions
import ignite.metrics as ig_metrics
import ignite.metrics.fairness as ig
import pytest
import torch

from ignite_async import Engine
from ignite_async.metrics.accuracy import Accuracy
from ignite_async.metrics.fairness import (
    DemographicParityDifference,
    SelectionRate,
    SubgroupAccuracyDifference,
    SubgroupDifference,
    SubgroupMetric,
)
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._data import classification_batches
from tests.metrics._oracle import assert_close, check_attached, check_direct, check_state_round_trip

pytestmark = pytest.mark.anyio

KINDS = ("binary", "multiclass", "multilabel")
GroupBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
OURS: dict[str, Any] = {
    "DemographicParityDifference": DemographicParityDifference,
    "SubgroupAccuracyDifference": SubgroupAccuracyDifference,
}
DIFFERENCES = tuple(OURS)


def grouped_batches(kind: str, seed: int, n_groups: int = 4) -> list[GroupBatch]:
    """Classification batches with group labels ``0..n_groups-1`` (some groups may not occur)."""
    g = torch.Generator().manual_seed(seed + 1000)
    batches = []
    for y_pred, y in classification_batches(kind, seed):
        batches.append((y_pred, y, torch.randint(0, n_groups, (y.shape[0],), generator=g)))
    return batches


def groups_for(seed: int) -> list[int]:
    """Some of the labels used (label 3 is never a group, so its samples count nowhere), in a random order."""
    groups = random.Random(seed).sample([0, 1, 2], random.Random(seed).randint(2, 3))
    return groups


def same_outcome(mine: Any, theirs: Any) -> None:
    """Both compute the same value, or both raise NotComputableError."""
    try:
        expected = theirs.compute()
    except ignite.exceptions.NotComputableError:
        with pytest.raises(NotComputableError):
            mine.compute()
        return
    value = mine.compute()
    assert type(value) is type(expected)
    if isinstance(expected, torch.Tensor):
        assert value.dtype == expected.dtype
        assert value.shape == expected.shape
    assert_close(value, expected)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DIFFERENCES)
def test_differences_equal_ignites(name: str, kind: str, seed: int) -> None:
    groups = groups_for(seed)
    multilabel = kind == "multilabel"
    mine = OURS[name](groups=groups, is_multilabel=multilabel)
    theirs = getattr(ig, name)(groups=groups, is_multilabel=multilabel)
    for batch in grouped_batches(kind, seed):
        mine.update(batch)
        theirs.update(batch)
        same_outcome(mine, theirs)  # after every batch: with fewer than two groups seen, both refuse


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", KINDS)
def test_selection_rate_equals_ignites(kind: str, seed: int) -> None:
    multilabel = kind == "multilabel"
    mine, theirs = SelectionRate(is_multilabel=multilabel), ig.SelectionRate(is_multilabel=multilabel)
    for y_pred, y in classification_batches(kind, seed):
        mine.update((y_pred, y))
        theirs.update((y_pred, y))
    same_outcome(mine, theirs)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", KINDS)
def test_subgroup_metric_and_difference_equal_ignites(kind: str, seed: int) -> None:
    multilabel = kind == "multilabel"
    groups = groups_for(seed)
    batches = grouped_batches(kind, seed)
    mine = SubgroupMetric(Accuracy(is_multilabel=multilabel), groups=groups)
    theirs = ig.SubgroupMetric(ig_metrics.Accuracy(is_multilabel=multilabel), groups=groups)
    check_direct(mine, theirs, batches)
    assert list(mine.compute()) == list(theirs.compute())  # the groups that had samples, in the given order
    mine_rates = SubgroupMetric(SelectionRate(is_multilabel=multilabel), groups=groups)
    theirs_rates = ig.SubgroupMetric(ig.SelectionRate(is_multilabel=multilabel), groups=groups)
    check_direct(mine_rates, theirs_rates, batches)
    mine_gap = SubgroupDifference(SelectionRate(is_multilabel=multilabel), groups=groups)
    theirs_gap = ig.SubgroupDifference(ig.SelectionRate(is_multilabel=multilabel), groups=groups)
    for batch in batches:
        mine_gap.update(batch)
        theirs_gap.update(batch)
    same_outcome(mine_gap, theirs_gap)


def test_documented_examples() -> None:
    y_pred = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]])
    y = torch.tensor([1, 1, 0, 0])
    groups = torch.tensor([0, 0, 1, 1])
    parity = DemographicParityDifference(groups=[0, 1])
    parity.update((y_pred, y, groups))
    assert parity.compute() == 1.0
    accuracy_gap = SubgroupAccuracyDifference(groups=[0, 1])
    accuracy_gap.update((y_pred, torch.tensor([1, 1, 1, 1]), groups))
    assert accuracy_gap.compute() == 1.0
    rate = SelectionRate()
    rate.update((y_pred, y))
    assert rate.compute().tolist() == [0.5, 0.5]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DIFFERENCES)
async def test_attached_like_ignite(name: str, kind: str) -> None:
    multilabel = kind == "multilabel"
    batches: list[Any] = [{"y_pred": p, "y": y, "group_labels": g} for p, y, g in grouped_batches(kind, 5)]
    await check_attached(
        lambda ours: (OURS[name] if ours else getattr(ig, name))(groups=[0, 1, 2], is_multilabel=multilabel), batches
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_selection_rate_attached_like_ignite(kind: str) -> None:
    multilabel = kind == "multilabel"
    batches = classification_batches(kind, 6)
    await check_attached(lambda ours: (SelectionRate if ours else ig.SelectionRate)(is_multilabel=multilabel), batches)


async def test_attached_with_output_transform_like_ignite() -> None:
    known = (torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]), torch.tensor([1, 1, 0]), torch.tensor([0, 1, 2]))
    batches: list[Any] = [(g, (p, y)) for p, y, g in [known, known]]

    def transform(output: Any) -> Any:
        return output[1][0], output[1][1], output[0]

    await check_attached(
        lambda ours: (SubgroupAccuracyDifference if ours else ig.SubgroupAccuracyDifference)(
            groups=[2, 0, 1], output_transform=transform
        ),
        batches,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", DIFFERENCES)
def test_state_round_trip(name: str, kind: str) -> None:
    multilabel = kind == "multilabel"
    batches = grouped_batches(kind, 8, n_groups=2) * 2
    check_state_round_trip(lambda: OURS[name](groups=[0, 1], is_multilabel=multilabel), batches)
    # pytorch-ignite's layout: each group's metric state under "_metrics", keyed by str(group)
    mine, theirs = OURS[name](groups=[0, 1]), getattr(ig, name)(groups=[0, 1])
    assert set(mine.state_dict()) == {"_metrics"}
    assert list(mine.state_dict()["_metrics"]) == list(theirs.state_dict()["_metrics"]) == ["0", "1"]


def test_state_of_a_group_this_metric_lacks_is_skipped() -> None:
    batch = grouped_batches("multiclass", 9, n_groups=3)[0]
    source = SubgroupAccuracyDifference(groups=[0, 1, 2])
    source.update(batch)
    target = SubgroupAccuracyDifference(groups=[0, 2])
    target.load_state_dict(source.state_dict())
    reference = SubgroupAccuracyDifference(groups=[0, 2])
    reference.update(batch)
    same_outcome(target, reference)
    with pytest.raises(ValueError, match=r"lacks \['_metrics'\]"):
        target.load_state_dict({})


def test_selection_rate_state_round_trip() -> None:
    batches = classification_batches("multiclass", 10) * 2
    check_state_round_trip(SelectionRate, batches)


def test_reset_forgets() -> None:
    first, second = grouped_batches("binary", 11)[0], grouped_batches("binary", 12)
    metric, theirs = DemographicParityDifference(groups=[0, 1, 2]), ig.DemographicParityDifference(groups=[0, 1, 2])
    metric.update(first)
    metric.reset()
    for batch in second:
        metric.update(batch)
        theirs.update(batch)
    same_outcome(metric, theirs)


def _engine_with_output(output: Any) -> Engine:
    engine = Engine(lambda e, b: b)
    engine.state.output = output
    return engine


@pytest.mark.parametrize("name", DIFFERENCES)
def test_bad_input(name: str) -> None:
    metric = OURS[name](groups=[0, 1])
    with pytest.raises(NotComputableError, match="at least one example"):
        metric.compute()
    with pytest.raises(ValueError, match="must have the same batch size"):
        metric.update((torch.rand(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"takes \(y_pred, y, group_labels\)"):
        metric.update((torch.rand(4, 2), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(TypeError, match="takes tensors"):
        metric.update((torch.rand(4, 2), [0, 0, 0, 0], torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="needs the output keys"):
        metric.iteration_completed(_engine_with_output({"y_pred": torch.rand(2, 2), "y": torch.zeros(2)}))
    metric.update((torch.rand(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(NotComputableError, match="at least two of its groups"):
        metric.compute()
    with pytest.raises(ValueError, match="groups is empty"):
        OURS[name](groups=[])
    with pytest.raises(TypeError, match="groups must be a sequence"):
        OURS[name](groups=5)


def test_bad_base_metric_and_selection_rate_input() -> None:
    with pytest.raises(TypeError, match="base_metric must be a Metric"):
        SubgroupMetric(lambda p, y: 0.0, groups=[0, 1])  # type: ignore[arg-type]
    rate = SelectionRate()
    with pytest.raises(NotComputableError):
        rate.compute()
    with pytest.raises(ValueError, match="0s and 1s"):
        rate.update((torch.tensor([0, 2, 1]), torch.tensor([0, 1, 1])))
    with pytest.raises(ValueError, match="multilabel"):
        SelectionRate(is_multilabel=True).update((torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1])))
