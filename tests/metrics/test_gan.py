"""FID and InceptionScore: pytorch-ignite 0.5.5's values given the same (small, seeded) feature extractor."""

from __future__ import annotations

import random
import warnings
from typing import Any

import ignite.metrics.gan as ig
import pytest
import torch

from ignite_async import Engine
from ignite_async.metrics.gan import FID, InceptionScore, fid_score
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import assert_close, check_attached, check_state_round_trip

OURS = type("ours", (), {"FID": FID, "InceptionScore": InceptionScore})

# (input shape per sample, num_features, batch sizes): full-rank covariances, rank-deficient ones (fewer samples
# than features), images flattened by the extractor, and a batch of one sample.
FID_CASES: dict[str, tuple[tuple[int, ...], int, list[int]]] = {
    "full rank": ((6,), 3, [8, 5, 7]),
    "rank deficient": ((10,), 8, [3, 2, 1]),
    "images": ((2, 3, 3), 5, [4, 6]),
    "wide": ((12,), 16, [20, 9, 11]),
}
IS_CASES: dict[str, tuple[tuple[int, ...], int, list[int]]] = {
    "few classes": ((6,), 3, [8, 5, 1]),
    "images": ((2, 3, 3), 10, [4, 6]),
    "many classes": ((7,), 40, [3, 9, 12]),
}


def extractor(shape: tuple[int, ...], features: int, seed: int, softmax: bool) -> torch.nn.Module:
    torch.manual_seed(1000 + seed)  # the Linear's weights: the same for ours and pytorch-ignite's
    layers: list[torch.nn.Module] = [torch.nn.Flatten(), torch.nn.Linear(int(torch.tensor(shape).prod()), features)]
    if softmax:
        layers.append(torch.nn.Softmax(dim=1))
    return torch.nn.Sequential(*layers)


def fid_batches(case: str, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    shape, _, sizes = FID_CASES[case]
    g = torch.Generator().manual_seed(seed)
    shift = random.Random(seed).uniform(-1.0, 1.0)
    return [(torch.randn(n, *shape, generator=g), torch.randn(n, *shape, generator=g) * 1.5 + shift) for n in sizes]


def is_batches(case: str, seed: int) -> list[torch.Tensor]:
    shape, _, sizes = IS_CASES[case]
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *shape, generator=g) * 2 for n in sizes]


def make_fid(lib: Any, case: str, seed: int) -> Any:
    shape, features, _ = FID_CASES[case]
    return lib.FID(num_features=features, feature_extractor=extractor(shape, features, seed, softmax=False))


def make_is(lib: Any, case: str, seed: int) -> Any:
    shape, features, _ = IS_CASES[case]
    return lib.InceptionScore(num_features=features, feature_extractor=extractor(shape, features, seed, softmax=True))


def ignite_value(metric: Any, batches: list[Any]) -> float:
    for batch in batches:
        metric.update(batch)
    with warnings.catch_warnings():
        # scipy's sqrtm may warn on the rank-deficient products; the value is what is compared.
        warnings.simplefilter("ignore")
        value: float = metric.compute()
    return value


def our_value(metric: Any, batches: list[Any]) -> float:
    for batch in batches:
        metric.update(batch)
    value = metric.compute()
    assert isinstance(value, float)
    return value


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", list(FID_CASES))
def test_fid_equals_ignites(case: str, seed: int) -> None:
    batches = fid_batches(case, seed)
    assert_close(our_value(make_fid(OURS, case, seed), batches), ignite_value(make_fid(ig, case, seed), batches))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", list(IS_CASES))
def test_inception_score_equals_ignites(case: str, seed: int) -> None:
    batches = is_batches(case, seed)
    assert_close(our_value(make_is(OURS, case, seed), batches), ignite_value(make_is(ig, case, seed), batches))


def test_identity_extractors_equal_ignites() -> None:
    """``num_features`` alone: the inputs are the features (FID) or the probabilities (InceptionScore)."""
    g = torch.Generator().manual_seed(5)
    pairs = [(torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g) + 0.5) for n in (6, 9)]
    assert_close(our_value(FID(num_features=4), pairs), ignite_value(ig.FID(num_features=4), pairs))
    probs = [torch.softmax(torch.randn(n, 5, generator=g) * 3, dim=1) for n in (4, 7)]
    assert_close(
        our_value(InceptionScore(num_features=5), probs), ignite_value(ig.InceptionScore(num_features=5), probs)
    )
    one_hot = [torch.eye(5)]  # every class once, with certainty: the score is the number of classes
    assert our_value(InceptionScore(num_features=5), one_hot) == pytest.approx(5.0, rel=1e-9)


def test_callable_extractor_equals_module() -> None:
    """A plain callable is accepted too (pytorch-ignite takes only modules): the same values as the module."""
    module = extractor((6,), 3, 0, softmax=False)
    batches = fid_batches("full rank", 0)
    mine = our_value(FID(num_features=3, feature_extractor=lambda x: module(x)), batches)
    assert_close(mine, ignite_value(ig.FID(num_features=3, feature_extractor=module), batches))


def test_fid_separates_distributions() -> None:
    g = torch.Generator().manual_seed(3)
    same = [(torch.randn(400, 3, generator=g), torch.randn(400, 3, generator=g))]
    apart = [(torch.randn(400, 3, generator=g), torch.randn(400, 3, generator=g) + 3.0)]
    near, far = our_value(FID(num_features=3), same), our_value(FID(num_features=3), apart)
    assert near < 0.2
    assert far == pytest.approx(27.0, rel=0.1)  # |mu1 - mu2|^2 = 3 * 3^2, covariances alike


def test_fid_score_function() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(30, 4, generator=g, dtype=torch.float64), torch.randn(30, 4, generator=g, dtype=torch.float64)
    args = (a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T))
    assert fid_score(*args) == pytest.approx(ig.fid.fid_score(*args), rel=1e-9, abs=1e-9)
    # A covariance that is not finite: the diagonal fallback, as pytorch-ignite, then NaN here.
    bad = torch.full((4, 4), float("nan"), dtype=torch.float64)
    assert fid_score(args[0], args[1], bad, args[3]) != fid_score(args[0], args[1], bad, args[3])


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["full rank", "images"])
async def test_fid_attached_like_ignite(case: str) -> None:
    await check_attached(lambda ours: make_fid(OURS if ours else ig, case, 1), fid_batches(case, 1))


@pytest.mark.anyio
@pytest.mark.parametrize("case", ["few classes", "images"])
async def test_inception_score_attached_like_ignite(case: str) -> None:
    await check_attached(lambda ours: make_is(OURS if ours else ig, case, 1), is_batches(case, 1))


@pytest.mark.anyio
async def test_mapping_outputs() -> None:
    """``{"y_pred", "y"}`` for FID, ``{"y_pred"}`` alone for InceptionScore (pytorch-ignite would need a ``y``)."""
    fid, score = make_fid(OURS, "full rank", 0), make_is(OURS, "few classes", 0)
    pairs, images = fid_batches("full rank", 0), is_batches("few classes", 0)
    engine = Engine(lambda e, b: b)
    fid.attach(engine, "fid")
    await engine.run([{"y_pred": p, "y": y} for p, y in pairs])
    assert engine.state.metrics["fid"] == pytest.approx(ignite_value(make_fid(ig, "full rank", 0), pairs), rel=1e-6)
    engine = Engine(lambda e, b: b)
    score.attach(engine, "is")
    await engine.run([{"y_pred": x} for x in images])
    expected = ignite_value(make_is(ig, "few classes", 0), images)
    assert engine.state.metrics["is"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["fid", "is"])
def test_state_round_trip(name: str) -> None:
    if name == "fid":
        check_state_round_trip(lambda: make_fid(OURS, "full rank", 2), fid_batches("full rank", 2))
    else:
        check_state_round_trip(lambda: make_is(OURS, "many classes", 2), is_batches("many classes", 2))
    metric = make_fid(OURS, "full rank", 2)
    metric.update(fid_batches("full rank", 2)[0])
    state = metric.state_dict()
    assert sorted(state) == sorted(["_num_examples", "_train_total", "_test_total", "_train_sigma", "_test_sigma"])
    assert state["_train_sigma"].dtype == torch.float64
    assert state["_num_examples"] == 8


def test_bad_arguments() -> None:
    module = torch.nn.Linear(3, 2)
    for cls in (FID, InceptionScore):
        with pytest.raises(ValueError, match="num_features must be given with feature_extractor"):
            cls(feature_extractor=module)
        with pytest.raises(ValueError, match="positive int"):
            cls(num_features=0)
        with pytest.raises(TypeError, match=r"torch\.nn\.Module or a callable"):
            cls(num_features=2, feature_extractor="inception")  # type: ignore[arg-type]


def test_bad_updates() -> None:
    fid = FID(num_features=2, feature_extractor=torch.nn.Linear(3, 2))
    with pytest.raises(ValueError, match="should be 2, got: 3"):
        FID(num_features=2, feature_extractor=torch.nn.Linear(3, 3)).update((torch.zeros(4, 3), torch.zeros(4, 3)))
    with pytest.raises(ValueError, match="as many features of as many samples"):
        fid.update((torch.zeros(4, 3), torch.zeros(5, 3)))
    with pytest.raises(ValueError, match="dim 2"):
        FID(num_features=3).update((torch.zeros(4, 3, 1), torch.zeros(4, 3, 1)))
    with pytest.raises(ValueError, match="takes"):
        fid.update(torch.zeros(4, 3))
    with pytest.raises(NotComputableError, match="at least two examples"):
        fid.compute()
    fid.update((torch.zeros(1, 3), torch.ones(1, 3)))
    with pytest.raises(NotComputableError, match="got 1"):
        fid.compute()
    score = InceptionScore(num_features=2)
    with pytest.raises(NotComputableError):
        score.compute()
    with pytest.raises(ValueError, match="greater than one"):
        score.update(torch.zeros(0, 2))
    with pytest.raises(TypeError, match="takes tensors"):
        score.update([[0.5, 0.5]])


@pytest.mark.parametrize("cls", [FID, InceptionScore])
def test_default_extractor_needs_downloaded_weights(
    cls: type[Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Neither argument: pytorch-ignite's InceptionV3, which needs torchvision and downloaded weights."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache, even with torchvision
    with pytest.raises((ModuleNotFoundError, FileNotFoundError), match="InceptionV3") as info:
        cls()
    assert "feature_extractor=" in str(info.value)
    assert "torchvision" in str(info.value)
