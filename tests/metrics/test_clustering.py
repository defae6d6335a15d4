"""SilhouetteScore, CalinskiHarabaszScore, DaviesBouldinScore: pytorch-ignite 0.5.5's (scikit-learn's) values."""

from __future__ import annotations

import math
import random
from typing import Any

import ignite.metrics.clustering as ig
import numpy as np
import pytest
import sklearn.metrics
import torch

from ignite_async import Engine
from ignite_async.metrics.clustering import CalinskiHarabaszScore, DaviesBouldinScore, SilhouetteScore
from ignite_async.metrics.clustering import silhouette_score as silhouette_module
from ignite_async.metrics.epoch_metric import EpochMetricWarning
from ignite_async.metrics.metric import NotComputableError
from tests.metrics._oracle import assert_close, check_attached, check_direct, check_state_round_trip

pytestmark = pytest.mark.anyio

Batch = tuple[torch.Tensor, torch.Tensor]
NAMES = ("SilhouetteScore", "CalinskiHarabaszScore", "DaviesBouldinScore")
OURS: dict[str, Any] = {
    "SilhouetteScore": SilhouetteScore,
    "CalinskiHarabaszScore": CalinskiHarabaszScore,
    "DaviesBouldinScore": DaviesBouldinScore,
}
SKLEARN: dict[str, Any] = {
    "SilhouetteScore": sklearn.metrics.silhouette_score,
    "CalinskiHarabaszScore": sklearn.metrics.calinski_harabasz_score,
    "DaviesBouldinScore": sklearn.metrics.davies_bouldin_score,
}


def cluster_batches(seed: int) -> list[Batch]:
    """Gaussian blobs (some overlapping) with 2 to 6 clusters, labelled by arbitrary (negative, sparse) ids,
    in 1 to 4 batches of 1 to 40 rows, float32 or float64."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    k, d = rng.randint(2, 6), rng.randint(2, 8)
    dtype = rng.choice([torch.float32, torch.float64])
    ids = torch.tensor(rng.sample(range(-5, 50), k))
    centres = torch.randn(k, d, generator=g, dtype=torch.float64) * rng.choice([0.5, 3.0])
    batches = []
    for _ in range(rng.randint(1, 4)):
        n = rng.randint(1, 40)
        which = torch.randint(0, k, (n,), generator=g)
        features = centres[which] + torch.randn(n, d, generator=g, dtype=torch.float64)
        batches.append((features.to(dtype), ids[which]))
    return batches


def build(name: str, ours: bool, **kwargs: Any) -> Any:
    return (OURS[name] if ours else getattr(ig, name))(**kwargs)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("name", NAMES)
def test_values_equal_ignites(name: str, seed: int) -> None:
    batches = cluster_batches(seed)
    check_direct(build(name, True), build(name, False), batches)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metric": "cosine"},
        {"metric": "manhattan"},
        {"metric": "l1"},
        {"metric": "l2"},
        {"metric": "sqeuclidean"},
        {"metric": "chebyshev"},
        {"metric": "minkowski", "p": 3},
        {"sample_size": 25, "random_state": 7},
        {"metric": "cityblock", "sample_size": 30, "random_state": np.random.RandomState(3)},
    ],
)
def test_silhouette_kwargs_equal_ignites(kwargs: dict[str, Any]) -> None:
    g = torch.Generator().manual_seed(3)
    features = torch.randn(60, 4, generator=g, dtype=torch.float64) + torch.arange(60)[:, None] % 4
    labels = torch.arange(60) % 4
    batches = [(features[:35], labels[:35]), (features[35:], labels[35:])]
    theirs = dict(kwargs)
    if isinstance(kwargs.get("random_state"), np.random.RandomState):  # each side gets its own generator
        theirs["random_state"] = np.random.RandomState(3)
    check_direct(SilhouetteScore(silhouette_kwargs=kwargs), ig.SilhouetteScore(silhouette_kwargs=theirs), batches)


def test_silhouette_precomputed_equals_ignites() -> None:
    features, labels = cluster_batches(5)[0]
    while len(labels) < 6 or len(labels.unique()) < 2:
        features, labels = torch.randn(12, 3, dtype=torch.float64), torch.arange(12) % 3
    distances = torch.cdist(features.double(), features.double())
    distances.fill_diagonal_(0.0)
    batches = [(distances[:4], labels[:4]), (distances[4:], labels[4:])]
    kwargs = {"metric": "precomputed"}
    # the first batch alone is no square matrix: both would warn about it
    check_direct(
        SilhouetteScore(silhouette_kwargs=kwargs, check_compute_fn=False),
        ig.SilhouetteScore(silhouette_kwargs=kwargs, check_compute_fn=False),
        batches,
    )


def test_silhouette_in_chunks_equals_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distances are worked out a block of rows at a time; blocks of 3 rows give the same value."""
    g = torch.Generator().manual_seed(6)
    labels = torch.randint(-2, 3, (50,), generator=g)
    features = torch.randn(50, 3, generator=g, dtype=torch.float64) + labels[:, None]
    expected = sklearn.metrics.silhouette_score(features.numpy(), labels.numpy())
    monkeypatch.setattr(silhouette_module, "_CHUNK_ELEMENTS", 3 * features.shape[0])
    metric = SilhouetteScore()
    metric.update((features, labels))
    assert metric.compute() == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_one_feature_per_sample(name: str) -> None:
    """(B, 1) features stay one feature per sample (pytorch-ignite squeezes them to (B,), and scikit-learn
    then rejects them): the values are scikit-learn's for the (B, 1) array."""
    features = torch.tensor([[0.0], [1.5], [2.0], [9.0], [11.0], [10.0], [4.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 0])
    metric = build(name, True)
    metric.update((features[:3], labels[:3]))
    metric.update((features[3:], labels[3:]))
    assert metric.compute() == pytest.approx(SKLEARN[name](features.numpy(), labels.numpy()), rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "labels",
    [[3, 3, 3, 3, 3], [0, 1, 2, 3, 4], [7]],
    ids=["one cluster", "one cluster per sample", "one sample"],
)
def test_undefined_is_nan_like_ignite(name: str, labels: list[int]) -> None:
    """One cluster, or as many clusters as samples: pytorch-ignite gives NaN (scikit-learn would raise)."""
    y = torch.tensor(labels)
    batches = [(torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(len(labels))), y)]
    check_direct(build(name, True), build(name, False), batches)
    metric = build(name, True)
    metric.update(batches[0])
    assert math.isnan(metric.compute())


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_clusters_like_ignite(name: str) -> None:
    """Clusters each of one repeated point (no spread): CH is 1.0 and DB 0.0 as in scikit-learn; and two
    clusters with the same centroid."""
    same_points = (
        torch.tensor([[1.0, 2.0], [1.0, 2.0], [5.0, 5.0], [5.0, 5.0], [5.0, 5.0]]),
        torch.tensor([0, 0, 1, 1, 1]),
    )
    same_centre = (
        torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 0.0], [1.0, 2.0], [8.0, 8.0], [9.0, 9.0]]),
        torch.tensor([0, 0, 1, 1, 2, 2]),
    )
    for batch in (same_points, same_centre):
        check_direct(build(name, True), build(name, False), [batch])


@pytest.mark.parametrize("name", NAMES)
async def test_attached_like_ignite(name: str) -> None:
    batches: list[Any] = [{"features": f, "labels": y} for f, y in cluster_batches(8)]
    await check_attached(lambda ours: build(name, ours), batches)


async def test_attached_in_the_background_like_ignite() -> None:
    """Computed in a worker thread, the values land in state.metrics by the end of the run, in epoch order."""
    from ignite.engine import Engine as IgniteEngine

    batches: list[Any] = [{"features": f, "labels": y} for f, y in cluster_batches(9)]
    for name in NAMES:
        for epochs in (1, 2):
            ref = IgniteEngine(lambda e, b: b)
            build(name, False).attach(ref, "m")
            expected = ref.run(batches, max_epochs=epochs).metrics["m"]
            engine = Engine(lambda e, b: b)
            build(name, True, background=True).attach(engine, "m")
            state = await engine.run(batches, max_epochs=epochs)
            assert_close(state.metrics["m"], expected)


async def test_attached_with_output_transform_like_ignite() -> None:
    batches: list[Any] = [(y, f) for f, y in cluster_batches(10)]
    await check_attached(
        lambda ours: build("CalinskiHarabaszScore", ours, output_transform=lambda o: (o[1], o[0])), batches
    )


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip(name: str) -> None:
    batches = [(f.float(), y) for f, y in cluster_batches(11) * 2]
    check_state_round_trip(lambda: build(name, True), batches)
    metric = build(name, True)
    # pytorch-ignite's accumulator names (it nests them per rank in its state_dict)
    assert set(metric.state_dict()) == set(build(name, False)._state_dict_all_req_keys) == {"_predictions", "_targets"}


def test_reset_forgets() -> None:
    metric = SilhouetteScore()
    first, second = cluster_batches(13)[0], cluster_batches(14)[0]
    metric.update(first)
    metric.compute()
    metric.reset()
    metric.update(second)
    theirs = ig.SilhouetteScore()
    theirs.update(second)
    assert_close(metric.compute(), theirs.compute())


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name: str) -> None:
    metric = build(name, True)
    with pytest.raises(NotComputableError):
        metric.compute()
    with pytest.raises(ValueError, match=r"features should be of shape \(batch_size, n_features\)"):
        metric.update((torch.zeros(4), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"labels should be of shape \(batch_size,\)"):
        metric.update((torch.zeros(4, 2), torch.zeros(4, 1, dtype=torch.long)))
    with pytest.raises(ValueError, match="as many rows"):
        metric.update((torch.zeros(4, 2), torch.zeros(3, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"takes \(features, labels\)"):
        metric.update(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="takes tensors"):
        metric.update(([[0.0, 1.0]], [0]))
    metric.update((torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"features dtype changed from torch\.float32 to torch\.float64"):
        metric.update((torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"labels dtype changed from torch\.int64 to torch\.int32"):
        metric.update((torch.zeros(4, 2), torch.zeros(4, dtype=torch.int32)))
    with pytest.raises(ValueError, match="features changed from 2 to 3"):
        metric.update((torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="needs the output keys"):
        metric.iteration_completed(_engine_with_output({"features": torch.zeros(2, 2)}))


def _engine_with_output(output: Any) -> Engine:
    engine = Engine(lambda e, b: b)
    engine.state.output = output
    return engine


def test_bad_silhouette_kwargs() -> None:
    with pytest.raises(ValueError, match="unsupported keys"):
        SilhouetteScore(silhouette_kwargs={"n_jobs": 2})
    with pytest.raises(ValueError, match="metric must be one of"):
        SilhouetteScore(silhouette_kwargs={"metric": "hamming"})
    with pytest.raises(ValueError, match="p is for metric='minkowski'"):
        SilhouetteScore(silhouette_kwargs={"p": 3})
    with pytest.raises(ValueError, match="sample_size must be a positive int"):
        SilhouetteScore(silhouette_kwargs={"sample_size": 0})
    with pytest.raises(TypeError, match="must be a dict"):
        SilhouetteScore(silhouette_kwargs=[("metric", "cosine")])  # type: ignore[arg-type]


def test_precomputed_must_be_square_with_a_zero_diagonal() -> None:
    metric = SilhouetteScore(silhouette_kwargs={"metric": "precomputed"})
    # the first batch alone is not square: compute_fn's check on it warns, as in pytorch-ignite
    with pytest.warns(EpochMetricWarning, match="distance matrix over all N samples"):
        metric.update((torch.ones(3, 4), torch.tensor([0, 1, 1])))
    metric.update((torch.ones(1, 4), torch.tensor([1])))
    with pytest.raises(ValueError, match="non-zero elements on the diagonal"):
        metric.compute()


@pytest.mark.parametrize("name", NAMES)
def test_float32_features_are_computed_in_float64(name: str) -> None:
    """Far from the origin, scikit-learn's float32 centroids and distances lose digits (DaviesBouldinScore by
    up to ~1e-5 relative); ours are worked out in float64 from the float32 values: scikit-learn's value for
    their float64 copy."""
    g = torch.Generator().manual_seed(15)
    labels = torch.randint(0, 4, (300,), generator=g)
    features = torch.randn(300, 6, generator=g) + 100.0 + 0.5 * labels[:, None]
    metric = build(name, True)
    metric.update((features, labels))
    expected = SKLEARN[name](features.double().numpy(), labels.numpy())
    assert metric.compute() == pytest.approx(expected, rel=1e-9, abs=1e-12)
