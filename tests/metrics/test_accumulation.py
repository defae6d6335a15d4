"""VariableAccumulation, GeometricAverage, MetricGroup and Perplexity: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import random
from typing import Any

import ignite.metrics as ig
import pytest
import torch

import ignite_async.metrics as ours_lib
from ignite_async.metrics.accumulation import GeometricAverage, VariableAccumulation
from ignite_async.metrics.metric import NotComputableError
from ignite_async.metrics.metric_group import MetricGroup
from ignite_async.metrics.perplexity import Perplexity
from tests.metrics._data import regression_batches
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip


def positive_outputs(seed: int) -> list[Any]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    kind = seed % 3
    if kind == 0:
        return [rng.uniform(0.1, 5.0) for _ in range(4)]
    shape = (rng.randint(1, 6), 3) if kind == 1 else (rng.randint(2, 5),)
    return [torch.rand(shape, generator=g) + 0.1 for _ in range(3)]


@pytest.mark.parametrize("seed", range(9))
def test_geometric_average_equals_ignites(seed: int) -> None:
    check_direct(GeometricAverage(), ig.GeometricAverage(), positive_outputs(seed))


@pytest.mark.parametrize("seed", range(6))
def test_variable_accumulation_equals_ignites(seed: int) -> None:
    def op(a: Any, x: Any) -> Any:
        return torch.maximum(a, x.max()) if isinstance(x, torch.Tensor) else a + x

    check_direct(VariableAccumulation(op), ig.VariableAccumulation(op), positive_outputs(seed))


def token_batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    vocab, length = rng.randint(3, 10), rng.randint(1, 5)
    batches = []
    for n in (3, rng.randint(1, 6)):
        y = torch.randint(0, vocab, (n, length), generator=g)
        y[0, 0] = -100
        batches.append((2 * torch.randn(n, vocab, length, generator=g), y))
    return batches


@pytest.mark.parametrize("seed", range(6))
def test_perplexity_equals_ignites(seed: int) -> None:
    check_direct(Perplexity(), ig.Perplexity(), token_batches(seed))


def group(ours: bool) -> Any:
    lib: Any = ours_lib if ours else ig
    first = lib.MeanSquaredError(output_transform=lambda o: (o[0][:1], o[1][:1]))
    members = {"mae": lib.MeanAbsoluteError(), "mse_first": first}
    return (MetricGroup if ours else ig.MetricGroup)(members)


@pytest.mark.parametrize("seed", range(4))
def test_metric_group_equals_ignites(seed: int) -> None:
    check_direct(group(True), group(False), regression_batches(seed))


@pytest.mark.anyio
async def test_attached_like_ignite() -> None:
    await check_attached(group, regression_batches(5), "batch_wise")
    await check_attached(lambda ours: (GeometricAverage if ours else ig.GeometricAverage)(), positive_outputs(1))
    await check_attached(lambda ours: (Perplexity if ours else ig.Perplexity)(), token_batches(2))
    add = lambda a, x: a + x  # noqa: E731
    await check_attached(lambda ours: (VariableAccumulation if ours else ig.VariableAccumulation)(add), [1.0, 2.5])


def test_bad_input_and_state() -> None:
    with pytest.raises(TypeError, match="op must be callable"):
        VariableAccumulation(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numbers or tensors"):
        GeometricAverage().update("2")
    with pytest.raises(NotComputableError):
        GeometricAverage().compute()
    with pytest.raises(TypeError, match="dict of names to metrics"):
        MetricGroup({"x": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"\(N, C, \.\.\.\) logits"):
        Perplexity().update((torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long)))
    before, after = group(True), group(True)
    before.update(regression_batches(1)[0])
    after.load_state_dict(before.state_dict())
    assert after.compute() == before.compute()


def test_state_round_trips() -> None:
    check_state_round_trip(GeometricAverage, positive_outputs(2))
    check_state_round_trip(Perplexity, token_batches(1))
