"""MutualInformation: pytorch-ignite 0.5.5's values."""

from __future__ import annotations

import math
import random

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.divergence import Entropy
from ignite_async.metrics.metric import NotComputableError
from ignite_async.metrics.mutual_information import MutualInformation
from tests.metrics._oracle import check_attached, check_direct, check_state_round_trip

Batch = tuple[torch.Tensor, torch.Tensor]


def logit_batches(seed: int) -> list[Batch]:
    """Logits ``(n, C)`` or ``(n, C, ...)``, some confident (scale 5), with unused targets."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    classes = rng.randint(2, 6)
    tail = rng.choice([(), (1,), (3,), (2, 3)])
    dtype = torch.float64 if seed % 4 == 3 else torch.float32
    scale = rng.choice([0.5, 2.0, 5.0])
    return [
        (scale * torch.randn(n, classes, *tail, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g))
        for n in (rng.randint(1, 5), rng.randint(6, 30), 1)
    ]


@pytest.mark.parametrize("seed", range(16))
def test_values_equal_ignites(seed: int) -> None:
    check_direct(MutualInformation(), ig.MutualInformation(), logit_batches(seed))


def test_ignites_doc_example() -> None:
    y_pred = torch.tensor([[0.0000, 0.6931, 1.0986], [1.3863, 1.6094, 1.6094], [0.0000, -2.3026, -2.3026]])
    metric = MutualInformation()
    metric.update((y_pred, torch.tensor([0, 1, 2])))
    assert metric.compute() == pytest.approx(0.18599730730056763, rel=1e-6)


def test_is_an_entropy_that_also_tracks_the_marginal() -> None:
    """MI = H(mean prediction) - Entropy's value, and it takes a bare y_pred as Entropy does."""
    y_pred = logit_batches(5)[1][0]
    metric, entropy = MutualInformation(), Entropy()
    assert isinstance(metric, Entropy)
    metric.update(y_pred)
    entropy.update(y_pred)
    marginal = torch.softmax(y_pred.movedim(1, -1).reshape(-1, y_pred.shape[1]).double(), dim=1).mean(dim=0)
    expected = float(-(marginal * marginal.log()).sum()) - entropy.compute()
    assert expected > 0.05
    assert metric.compute() == pytest.approx(expected, rel=1e-6)


@pytest.mark.anyio
@pytest.mark.parametrize("usage", ["epoch_wise", "batch_wise", "running_epoch_wise"])
async def test_attached_like_ignite(usage: str) -> None:
    await check_attached(lambda ours: (MutualInformation if ours else ig.MutualInformation)(), logit_batches(2), usage)


@pytest.mark.parametrize("seed", [3, 6])
def test_state_round_trip(seed: int) -> None:
    check_state_round_trip(MutualInformation, logit_batches(seed))


def test_state_dict_holds_the_marginal() -> None:
    metric = MutualInformation()
    metric.update(logit_batches(0)[0])
    state = metric.state_dict()
    assert sorted(state) == ["_num_examples", "_sum", "_sum_of_probabilities"]
    fresh = MutualInformation()
    with pytest.raises(ValueError, match="_sum_of_probabilities"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "_sum_of_probabilities"})


def test_underflowing_class_counts_zero_where_ignite_gives_nan() -> None:
    """A class whose probability underflows to 0 in every prediction adds 0 log 0 = 0 to the marginal entropy."""
    two = torch.tensor([[5.0, -5.0], [-5.0, 4.0], [1.0, 0.0]])
    three = torch.cat([two, torch.full((3, 1), -300.0)], dim=1)
    reference = ig.MutualInformation()
    reference.update((two, torch.zeros(3)))
    theirs = ig.MutualInformation()
    theirs.update((three, torch.zeros(3)))
    assert math.isnan(theirs.compute())
    ours = MutualInformation()
    ours.update((three, torch.zeros(3)))
    assert ours.compute() == pytest.approx(reference.compute(), rel=1e-6)
    assert ours.compute() > 0.1


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"MutualInformation: y_pred must be \(B, C\) or \(B, C, \.\.\.\)"):
        MutualInformation().update((torch.zeros(3), torch.zeros(3)))
    metric = MutualInformation()
    metric.update((torch.zeros(2, 3), torch.zeros(2)))
    with pytest.raises(ValueError, match="4 classes, the batches before had 3"):
        metric.update((torch.zeros(2, 4), torch.zeros(2)))
    with pytest.raises(TypeError, match=r"MutualInformation\.update takes"):
        MutualInformation().update("logits")
    with pytest.raises(NotComputableError):
        MutualInformation().compute()


@pytest.mark.anyio
async def test_attached_unrolls_lists_like_ignite() -> None:
    """An output of lists of per-sample logits is fed one sample at a time, as pytorch-ignite does."""
    batches = [(list(y_pred), list(y)) for y_pred, y in logit_batches(7)[:2]]
    await check_attached(lambda ours: (MutualInformation if ours else ig.MutualInformation)(), batches)
