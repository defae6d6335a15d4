"""CohenKappa and MatthewsCorrCoef: pytorch-ignite 0.5.5's values (its MCC calls sklearn; ours is torch)."""

from __future__ import annotations

import random
from typing import Any

import ignite.metrics as ig
import pytest
import torch

from ignite_async.metrics.agreement import CohenKappa, MatthewsCorrCoef, cohen_kappa_score, matthews_corrcoef
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import check_attached, check_direct

# sklearn (pytorch-ignite's MatthewsCorrCoef) warns when both sides hold one label; the value is still compared.
pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")


def label_batches(seed: int, column: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    classes = rng.randint(2, 6)
    batches = []
    for _ in range(rng.randint(1, 4)):
        n = rng.randint(1, 12)
        shape = (n, 1) if column else (n,)
        batches.append((torch.randint(0, classes, shape, generator=g), torch.randint(0, classes, shape, generator=g)))
    return batches


def score_batches(seed: int, one_hot: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    classes = rng.randint(2, 5)
    batches = []
    for _ in range(rng.randint(1, 4)):
        n = rng.randint(2, 10)
        y = torch.randint(0, classes, (n,), generator=g)
        batches.append((torch.rand(n, classes, generator=g), torch.nn.functional.one_hot(y, classes) if one_hot else y))
    return batches


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("known_classes", [False, True])
def test_cohen_kappa_equals_ignites(seed: int, weights: Any, known_classes: bool) -> None:
    batches = label_batches(seed, column=seed % 3 == 0)
    kwargs: dict[str, Any] = {"weights": weights}
    if known_classes:
        kwargs["num_classes"] = 6
    check_direct(CohenKappa(**kwargs), ig.CohenKappa(**kwargs), batches)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kind", ["labels", "scores", "one-hot"])
def test_matthews_corrcoef_equals_sklearns(seed: int, kind: str) -> None:
    if kind == "labels":
        batches = label_batches(seed, column=seed % 2 == 0)
    else:
        batches = score_batches(seed, one_hot=kind == "one-hot")
    check_direct(MatthewsCorrCoef(), ig.MatthewsCorrCoef(), batches)


@pytest.mark.anyio
@pytest.mark.parametrize("usage", ["epoch_wise", "batch_wise", "running_epoch_wise"])
async def test_attached_like_ignite(usage: str) -> None:
    batches = label_batches(5) + label_batches(6)
    for make in (
        lambda ours: (CohenKappa if ours else ig.CohenKappa)(weights="quadratic"),
        lambda ours: (CohenKappa if ours else ig.CohenKappa)(num_classes=6),
        lambda ours: (MatthewsCorrCoef if ours else ig.MatthewsCorrCoef)(),
    ):
        await check_attached(make, batches, usage)


def test_degenerate_and_bad_input() -> None:
    same = (torch.tensor([1, 1, 1]), torch.tensor([1, 1, 1]))
    check_direct(CohenKappa(), ig.CohenKappa(), [same])
    check_direct(MatthewsCorrCoef(), ig.MatthewsCorrCoef(), [same])
    with pytest.raises(ValueError, match="weights must be"):
        CohenKappa(weights="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multilabel"):
        CohenKappa().update((torch.zeros(3, 2), torch.zeros(3, 2)))
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        CohenKappa(num_classes=3).update((torch.tensor([0, 3]), torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="whole numbers"):
        cohen_kappa_score(torch.tensor([0.5, 1.0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="whole numbers"):
        matthews_corrcoef(torch.tensor([0.5, 1.0]), torch.tensor([0, 1]))
    mcc = MatthewsCorrCoef()
    mcc.update((torch.tensor([0, 1]), torch.tensor([[0, 1], [1, 0]])))
    with pytest.raises(ValueError, match=r"is \(N,\) labels while y is \(N, C\)"):
        mcc.compute()
    with pytest.raises(NotComputableError, match="at least one example"):
        CohenKappa().compute()


def test_state_dict_round_trip() -> None:
    for make in (lambda: CohenKappa(), lambda: CohenKappa(num_classes=4)):
        before, after = make(), make()
        before.update((torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 3, 3])))
        after.load_state_dict(before.state_dict())
        assert after.compute() == before.compute()
