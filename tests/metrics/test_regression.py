"""ignite.metrics.regression's metrics: values equal to pytorch-ignite 0.5.5's, directly and attached."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import ignite.metrics.regression as ig
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.exceptions import NotComputableError as IgniteNotComputableError
from scipy.stats import kendalltau, spearmanr

import ignite_async.metrics.regression as ours
from ignite_async import Engine, Events
from ignite_async.distributed import Parallel
from ignite_async.metrics import NotComputableError

Batch = tuple[torch.Tensor, torch.Tensor]

NAMES = [name for name in ig.__dict__ if name[0].isupper()]
# Every metric of ignite.metrics.regression, Kendall's under both variants.


def _default(name: str) -> Callable[[Any], Any]:
    return lambda lib: getattr(lib, name)()


MAKERS: dict[str, Callable[[Any], Any]] = {name: _default(name) for name in NAMES}
MAKERS["KendallRankCorrelation tau-c"] = lambda lib: lib.KendallRankCorrelation(variant="c")
MAKERS["PearsonCorrelation eps=0.5"] = lambda lib: lib.PearsonCorrelation(eps=0.5)
# Those pytorch-ignite checks as (N,) or (N, 1) floats of one shape; the medians take (N,) or (N, T) of anything.
CHECKED = [n for n in NAMES if not n.startswith("Median")]
# Sums over nothing: 0.0 in pytorch-ignite, not an error.
DISTANCES = ["CanberraMetric", "ManhattanDistance", "WaveHedgesDistance"]
# Accumulated as sums, which never read a value back in update() (the others keep the examples).
SUMS = [n for n in CHECKED if n != "GeometricMeanRelativeAbsoluteError" and "Rank" not in n]


def batches(seed: int, tail: tuple[int, ...] = (), dtype: torch.dtype = torch.float32) -> list[Batch]:
    """Three batches of random sizes; every other seed rounds to 1 decimal, so that values tie."""
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    out = []
    for _ in range(3):
        n = rng.randint(3, 12)
        y_pred, y = (torch.randn(n, *tail, generator=g, dtype=dtype) for _ in range(2))
        if seed % 2:
            y_pred, y = y_pred.round(decimals=1), y.round(decimals=1)
        y[y == 0] = 0.25  # no relative error divides by 0
        out.append((y_pred, y))
    return out


CASES = [(seed, tail, dtype) for seed, (tail, dtype) in enumerate([((), torch.float32), ((1,), torch.float64)] * 3)]


def close(mine: float, theirs: float) -> bool:
    if theirs != theirs:  # NaN
        return mine != mine
    return mine == pytest.approx(theirs, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("name", list(MAKERS))
def test_values_equal_ignites(name: str, case: int) -> None:
    seed, tail, dtype = CASES[case]
    theirs, mine = MAKERS[name](ig), MAKERS[name](ours)
    for batch in batches(seed, tail, dtype):
        theirs.update(batch)
        mine.update(batch)
        assert close(mine.compute(), float(theirs.compute()))  # a value after each update, not a cached one


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("Median")])
def test_medians_take_several_targets_per_row_like_ignite(name: str) -> None:
    theirs, mine = MAKERS[name](ig), MAKERS[name](ours)
    for batch in batches(4, tail=(3,), dtype=torch.float64):
        theirs.update(batch)
        mine.update(batch)
    assert close(mine.compute(), theirs.compute())


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(MAKERS))
async def test_attached_values_equal_ignites_at_every_event(name: str) -> None:
    data = batches(7, (1,))

    def trace(lib: Any, engine: Any, events: Any, usage: str) -> list[Any]:
        MAKERS[name](lib).attach(engine, "m", usage=usage)
        seen: list[Any] = []
        engine.add_event_handler(events.ITERATION_COMPLETED, lambda e: seen.append(e.state.metrics.get("m")))
        engine.add_event_handler(events.EPOCH_COMPLETED, lambda e: seen.append(e.state.metrics.get("m")))
        return seen

    for usage in ("epoch_wise", "running_batch_wise"):
        ref = IgniteEngine(lambda e, b: b)
        theirs = trace(ig, ref, IgniteEvents, usage)
        ref.run(data, max_epochs=2)
        engine = Engine(lambda e, b: b)
        mine = trace(ours, engine, Events, usage)
        await engine.run(data, max_epochs=2)
        assert len(mine) == len(theirs) == 8
        assert [m is None for m in mine] == [t is None for t in theirs]
        assert all(close(m, float(t)) for m, t in zip(mine, theirs, strict=True) if t is not None)


@pytest.mark.parametrize("name", CHECKED)
def test_bad_shapes_and_dtypes_are_refused_like_ignite(name: str) -> None:
    wrong: list[tuple[Batch, type[Exception], str]] = [
        ((torch.rand(4, 2), torch.rand(4, 2)), ValueError, r"y_pred must be \(N,\) or \(N, 1\), got \(4, 2\)"),
        ((torch.rand(4), torch.rand(4, 3)), ValueError, r"y must be \(N,\) or \(N, 1\), got \(4, 3\)"),
        (
            (torch.rand(4), torch.rand(4, 1)),
            ValueError,
            r"y_pred and y must have the same shape, got \(4,\) and \(4, 1\)",
        ),
        ((torch.rand(4), torch.rand(5)), ValueError, r"y_pred and y must have the same shape, got \(4,\) and \(5,\)"),
        ((torch.ones(4, dtype=torch.long), torch.rand(4)), TypeError, "y_pred must be float16, float32 or float64"),
        ((torch.rand(4), torch.ones(4, dtype=torch.int32)), TypeError, "y must be float16, .* got torch.int32"),
    ]
    for batch, error, message in wrong:
        with pytest.raises(error):
            MAKERS[name](ig).update(batch)
        with pytest.raises(error, match=f"{name}: {message}"):
            MAKERS[name](ours).update(batch)


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("Median")])
def test_medians_refuse_what_an_epoch_metric_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="should be of shape"):
        MAKERS[name](ig).update((torch.rand(4, 2, 2), torch.rand(4, 2, 2)))
    with pytest.raises(ValueError, match=r"y_pred must be \(N,\) or \(N, T\), got \(4, 2, 2\)"):
        MAKERS[name](ours).update((torch.rand(4, 2, 2), torch.rand(4, 2, 2)))


@pytest.mark.parametrize("name", list(MAKERS))
def test_nothing_updated_is_not_computable_except_for_distances(name: str) -> None:
    theirs, mine = MAKERS[name](ig), MAKERS[name](ours)
    if name in DISTANCES:
        assert mine.compute() == theirs.compute() == 0.0
        return
    with pytest.raises(IgniteNotComputableError):
        theirs.compute()
    with pytest.raises(NotComputableError, match=f"{name.split()[0]} must have at least one example"):
        mine.compute()


@pytest.mark.parametrize("name", ["MeanAbsoluteRelativeError", "MeanNormalizedBias"])
def test_a_zero_target_is_refused_when_computing(name: str) -> None:
    batch = (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 3.0]))
    with pytest.raises(IgniteNotComputableError):  # pytorch-ignite refuses it at once, reading y back from the device
        MAKERS[name](ig).update(batch)
    metric = MAKERS[name](ours)
    metric.update(batch)
    metric.update((torch.tensor([1.0]), torch.tensor([2.0])))
    with pytest.raises(NotComputableError, match=f"{name}: the ground truth y had 1 zero"):
        metric.compute()
    metric.reset()
    metric.update((torch.tensor([1.0]), torch.tensor([2.0])))
    assert metric.compute() == 0.5


def test_other_undefined_values() -> None:
    r2 = ours.R2Score()
    r2.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 3.0])))
    with pytest.raises(NotComputableError, match="every y was the same"):
        r2.compute()
    with pytest.raises(ValueError, match="variant must be 'b' or 'c', got 'a'"):
        ours.KendallRankCorrelation(variant="a")
    for make in (ours.KendallRankCorrelation, ours.SpearmanRankCorrelation):
        constant = make(check_compute_fn=False)
        constant.update((torch.tensor([1.0, 2.0]), torch.tensor([3.0, 3.0])))
        assert constant.compute() != constant.compute()  # NaN, as scipy's
        with_nan = make(check_compute_fn=False)
        with_nan.update((torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1.0, 2.0, 3.0])))
        assert with_nan.compute() != with_nan.compute()
    best = ours.MaximumAbsoluteError()
    best.update((torch.zeros(0), torch.zeros(0)))  # an empty batch adds nothing
    with pytest.raises(NotComputableError):
        best.compute()


def test_rank_correlations_equal_scipys_on_many_ties_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 30, (3000,), generator=g).double(), torch.randn(3000, generator=g).round(decimals=1)
    expected = [kendalltau(x, y, variant="b").statistic, kendalltau(x, y, variant="c").statistic, spearmanr(x, y)[0]]
    for module in [m for m in sys.modules if m == "scipy" or m.startswith("scipy.")]:
        monkeypatch.setitem(sys.modules, module, None)  # an import of scipy would fail from here on
    metrics = [ours.KendallRankCorrelation(), ours.KendallRankCorrelation("c"), ours.SpearmanRankCorrelation()]
    for metric, value in zip(metrics, expected, strict=True):
        for start in range(0, 3000, 1000):
            metric.update((x[start : start + 1000], y[start : start + 1000]))
        assert metric.compute() == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_resumes_midway(name: str) -> None:
    data = batches(3) * 2
    whole, first, resumed = MAKERS[name](ours), MAKERS[name](ours), MAKERS[name](ours)
    for batch in data:
        whole.update(batch)
    for batch in data[:2]:
        first.update(batch)
    resumed.load_state_dict(first.state_dict())
    first.update(data[0])  # the state was a copy
    for batch in data[2:]:
        resumed.update(batch)
    assert resumed.compute() == pytest.approx(whole.compute(), rel=1e-9)


@pytest.mark.parametrize("name", SUMS)
def test_updates_never_read_a_value_back(name: str) -> None:
    # Meta tensors have shapes but no values: a read-back (.item(), bool(), a value check) raises there, as
    # on a GPU it would wait for the device.
    metric = getattr(ours, name)(device="meta")
    for _ in range(3):
        metric.update((torch.empty(8, 1, device="meta"), torch.empty(8, 1, device="meta")))
    with pytest.raises(Exception, match="meta"):  # the proof that a read-back would have failed
        torch.empty((), device="meta").item()


def test_old_names_still_import() -> None:
    from ignite_async.metrics.regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError

    assert {MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError} <= {getattr(ours, n) for n in ours.__all__}
    assert set(NAMES) <= set(ours.__all__)


def _rank_values(local_rank: int, out: Path) -> None:
    """On each of two ranks: half of the batches, every metric computed over both halves."""
    data = batches(11, (1,), torch.float64)
    values = {}
    for name, make in MAKERS.items():
        metric = make(ours)
        for batch in data[local_rank::2]:
            metric.update(batch)
        values[name] = metric.compute()
    (out / f"rank{local_rank}.json").write_text(json.dumps(values))


def test_two_ranks_compute_the_value_of_all_the_data(tmp_path: Path) -> None:
    with Parallel("gloo", nproc_per_node=2, timeout=timedelta(seconds=60)) as parallel:
        parallel.run(_rank_values, tmp_path)
    data = batches(11, (1,), torch.float64)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for name, make in MAKERS.items():
        theirs = make(ig)
        for batch in data[0::2] + data[1::2]:  # gathered in rank order
            theirs.update(batch)
        assert close(ranks[0][name], float(theirs.compute())), name
        assert ranks[1][name] == ranks[0][name], name
