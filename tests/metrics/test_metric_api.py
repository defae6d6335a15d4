"""pytorch-ignite 0.5.5's Metric API for user-written metrics: the same metric source, written once against
``Metric``/``reinit__is_reduced``/``sync_all_reduce`` and built from either library, gives the same
``engine.state.metrics``; plus the checks of pytorch-ignite's own test_metric.py that such metrics rely on
(unrolling, ``skip_unrolling``, ``metrics_result_mode``, state dicts, reductions across 2 gloo ranks),
``RunningAverage(epoch_bound=...)`` and what ``IoU``/``mIoU``/``cmAccuracy`` return."""

from __future__ import annotations

import inspect
import json
import math
import types
from pathlib import Path
from typing import Any

import anyio
import ignite.exceptions
import ignite.metrics
import ignite.metrics.confusion_matrix
import ignite.metrics.metric
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

import ignite_async.metrics as ours_metrics
import ignite_async.metrics.metric as ours_metric
from ignite_async import Engine, Events
from ignite_async.distributed import Parallel
from ignite_async.metrics.confusion_matrix import ConfusionMatrix, IoU, cmAccuracy, mIoU
from ignite_async.metrics.metric import Metric, NotComputableError, reinit__is_reduced, sync_all_reduce
from ignite_async.metrics.running_average import RunningAverage
from tests.metrics._oracle import assert_close, plain

pytestmark = pytest.mark.anyio

IGNITE = types.SimpleNamespace(
    Metric=ignite.metrics.metric.Metric,
    reinit__is_reduced=ignite.metrics.metric.reinit__is_reduced,
    sync_all_reduce=ignite.metrics.metric.sync_all_reduce,
    NotComputableError=ignite.exceptions.NotComputableError,
)
OURS = types.SimpleNamespace(
    Metric=Metric,
    reinit__is_reduced=reinit__is_reduced,
    sync_all_reduce=sync_all_reduce,
    NotComputableError=NotComputableError,
)


def user_metrics(lib: Any) -> types.SimpleNamespace:
    """Metrics as a user writes them for pytorch-ignite, built on ``lib``'s base and decorators: one source."""
    base, reinit, sync = lib.Metric, lib.reinit__is_reduced, lib.sync_all_reduce

    class ErrorSummary(base):  # type: ignore[misc,valid-type]
        """Error statistics, one accumulator per reduction (SUM, MAX, MIN, PRODUCT); a dict result."""

        _state_dict_all_req_keys = ("_total", "_count", "_largest", "_smallest", "_growth")

        @reinit
        def reset(self) -> None:
            self._total = torch.tensor(0.0, dtype=self._double_dtype, device=self._device)
            self._count = 0
            self._largest = torch.tensor(-math.inf, dtype=torch.float64, device=self._device)
            self._smallest = math.inf
            self._growth = torch.tensor(1.0, dtype=torch.float64, device=self._device)

        @reinit
        def update(self, output: Any) -> None:
            y_pred, y = output[0].detach(), output[1].detach()
            errors = (y_pred - y.view_as(y_pred)).abs().to(torch.float64)
            self._total += errors.sum().to(self._device)
            self._count += y.shape[0]
            self._largest = torch.maximum(self._largest, errors.max())
            self._smallest = min(self._smallest, float(errors.min()))
            self._growth *= 1.0 + errors.mean() / 10

        @sync("_total", "_count:SUM", "_largest:MAX", "_smallest:MIN", "_growth:PRODUCT")
        def compute(self) -> dict[str, float]:
            if self._count == 0:
                raise lib.NotComputableError("ErrorSummary needs an update first")
            return {
                "mean_error": (self._total / self._count).item(),
                "max_error": self._largest.item(),
                "min_error": self._smallest,
                "growth": self._growth.item(),
            }

    class ColumnMeans(base):  # type: ignore[misc,valid-type]
        """The mean of each column of y_pred: a vector tensor result (stays a tensor in state.metrics)."""

        _state_dict_all_req_keys = ("_sums", "_rows")

        @reinit
        def reset(self) -> None:
            self._sums = torch.zeros(3, dtype=torch.float64, device=self._device)
            self._rows = 0

        @reinit
        def update(self, output: Any) -> None:
            self._sums += output[0].detach().to(torch.float64).reshape(-1, 3).sum(dim=0)
            self._rows += output[0].reshape(-1, 3).shape[0]

        @sync("_sums", "_rows")
        def compute(self) -> torch.Tensor:
            return self._sums / self._rows

    class CachedMedian(base):  # type: ignore[misc,valid-type]
        """The median of the targets, cached in ``_result``: reinit__is_reduced drops the cache on update."""

        _state_dict_all_req_keys = ("_values",)

        @reinit
        def reset(self) -> None:
            self._values: list[torch.Tensor] = []
            self._result: Any = None

        @reinit
        def update(self, output: Any) -> None:
            self._values.append(output[1].detach().flatten().to(torch.float64))

        def compute(self) -> torch.Tensor:
            if self._result is None:
                self._result = torch.cat(self._values).median()  # 0-d: a number in state.metrics
            return self._result

    class TwoHeads(base):  # type: ignore[misc,valid-type]
        """A multi-output model's summed MSE: y_pred and y are lists of heads, given as they are."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(skip_unrolling=True, **kwargs)

        @reinit
        def reset(self) -> None:
            self._sum = torch.tensor(0.0, dtype=torch.float64)
            self._n = 0

        @reinit
        def update(self, output: Any) -> None:
            (a_pred, b_pred), (a, b) = output
            self._sum += ((a_pred - a) ** 2).mean().double() + ((b_pred - b) ** 2).mean().double()
            self._n += 1

        @sync("_sum", "_n")
        def compute(self) -> float:
            return float(self._sum / self._n)

    class PerItem(base):  # type: ignore[misc,valid-type]
        """Fed lists of tensors and numbers, unrolled into one (1, ...) pair per item (the default)."""

        @reinit
        def reset(self) -> None:
            self._sum = 0.0
            self._updates = 0
            self._shapes: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()

        @reinit
        def update(self, output: Any) -> None:
            y_pred, y = output
            self._shapes.add((tuple(y_pred.shape), tuple(y.shape)))
            self._sum += float((y_pred.sum() - y.sum()) ** 2)
            self._updates += 1

        def compute(self) -> dict[str, Any]:
            return {"per_item_sq": self._sum / self._updates, "per_item_updates": self._updates}

    return types.SimpleNamespace(
        ErrorSummary=ErrorSummary,
        ColumnMeans=ColumnMeans,
        CachedMedian=CachedMedian,
        TwoHeads=TwoHeads,
        PerItem=PerItem,
    )


def regression_batches(seed: int, n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)) for _ in range(n)]


def head_batches(seed: int) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    return [
        ([torch.rand(6, 1, generator=g), torch.rand(6, 2, generator=g)], [torch.rand(6, 1), torch.rand(6, 2)])
        for _ in range(3)
    ]


def item_batches(seed: int, scalar_targets: bool) -> list[tuple[list[Any], list[Any]]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(4):
        preds = [torch.rand(5, generator=g) for _ in range(2 + i)]
        targets = [float(torch.rand(1, generator=g)) if scalar_targets else torch.rand(5, generator=g) for _ in preds]
        out.append((preds, targets))
    return out


def trace_ignite(attach: Any, batches: list[Any], epochs: int = 2) -> list[dict[str, Any]]:
    engine = IgniteEngine(lambda e, b: b)
    attach(engine)
    seen: list[dict[str, Any]] = []
    engine.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda e: seen.append(dict(e.state.metrics)))
    engine.run(batches, max_epochs=epochs)
    return seen


async def trace_ours(attach: Any, batches: list[Any], epochs: int = 2) -> list[dict[str, Any]]:
    engine = Engine(lambda e, b: b)
    attach(engine)
    seen: list[dict[str, Any]] = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(dict(e.state.metrics)))
    await engine.run(batches, max_epochs=epochs)
    return seen


def same_metrics(mine: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """Same keys, same kinds of value (number, tensor of a dtype and shape, dict), same values."""
    assert len(mine) == len(theirs) > 0
    for m, t in zip(mine, theirs, strict=True):
        assert sorted(m) == sorted(t)
        for key in t:
            if isinstance(t[key], torch.Tensor):
                assert isinstance(m[key], torch.Tensor), key
                assert (m[key].dtype, m[key].shape, m[key].device) == (t[key].dtype, t[key].shape, t[key].device)
            else:
                assert type(m[key]) is type(t[key]), (key, m[key], t[key])
        assert_close(m, t)


# ---------------------------------------------------------------------------------------------- differential


@pytest.mark.parametrize("mode", ["flatten", "named", "both"])
async def test_a_user_metric_with_a_dict_result_lands_as_in_ignite(mode: str) -> None:
    batches = regression_batches(1)

    def attacher(lib: Any) -> Any:
        def attach(engine: Any) -> None:
            user_metrics(lib).ErrorSummary(metrics_result_mode=mode).attach(engine, "summary")

        return attach

    theirs = trace_ignite(attacher(IGNITE), batches)
    mine = await trace_ours(attacher(OURS), batches)
    same_metrics(mine, theirs)
    assert ("summary" in mine[0]) == (mode != "flatten")
    assert ("max_error" in mine[0]) == (mode != "named")


@pytest.mark.parametrize("usage", ["epoch_wise", "running_epoch_wise", "batch_wise", "running_batch_wise"])
async def test_user_metrics_attached_together_give_ignites_state_metrics(usage: str) -> None:
    batches = regression_batches(2, n=5)

    def attacher(lib: Any) -> Any:
        def attach(engine: Any) -> None:
            m = user_metrics(lib)
            m.ErrorSummary().attach(engine, "summary", usage=usage)
            m.ColumnMeans(output_transform=lambda o: (o[0], o[1])).attach(engine, "column_means", usage=usage)
            m.CachedMedian().attach(engine, "median", usage=usage)
            # Arithmetic on a user metric builds a MetricsLambda in both libraries.
            (m.ColumnMeans().mean() * 2).attach(engine, "twice_mean", usage=usage)

        return attach

    same_metrics(await trace_ours(attacher(OURS), batches), trace_ignite(attacher(IGNITE), batches))


async def test_skip_unrolling_gives_a_multi_output_model_s_lists_as_they_are() -> None:
    batches = head_batches(3)

    def attacher(lib: Any) -> Any:
        return lambda engine: user_metrics(lib).TwoHeads().attach(engine, "heads")

    mine = await trace_ours(attacher(OURS), batches)
    same_metrics(mine, trace_ignite(attacher(IGNITE), batches))
    assert isinstance(mine[0]["heads"], float)


@pytest.mark.parametrize("scalar_targets", [False, True])
async def test_lists_of_tensors_or_numbers_are_unrolled_into_pairs_as_in_ignite(scalar_targets: bool) -> None:
    batches = item_batches(4, scalar_targets)
    shapes: dict[str, Any] = {}

    def attacher(lib: Any, key: str) -> Any:
        def attach(engine: Any) -> None:
            metric = user_metrics(lib).PerItem()
            metric.attach(engine, "items")
            shapes[key] = metric

        return attach

    same_metrics(await trace_ours(attacher(OURS, "ours"), batches), trace_ignite(attacher(IGNITE, "ig"), batches))
    expected_target = (1,) if scalar_targets else (1, 5)
    assert shapes["ours"]._shapes == shapes["ig"]._shapes == {((1, 5), expected_target)}
    assert shapes["ours"]._updates == sum(len(p) for p, _ in batches)  # the second epoch's


async def test_outputs_that_cannot_be_unrolled_fail_as_in_ignite() -> None:
    for output in (([0, 1, 2], [0, 1, 2], [0, 1, 2]), ([0, 1, 2], [0, 1, 2, 4])):
        for lib_engine, lib in ((IgniteEngine, IGNITE), (Engine, OURS)):
            engine = lib_engine(lambda e, b, output=output: output)
            user_metrics(lib).PerItem().attach(engine, "m")
            if lib is OURS:
                with pytest.raises(ValueError, match="same length") as raised:
                    await engine.run([0] * 3)
                assert "skip_unrolling=True" in str(raised.value)
            else:
                with pytest.raises(ValueError, match="same length"):
                    engine.run([0] * 3)


def test_direct_use_and_state_dicts_like_ignite() -> None:
    batches = regression_batches(5)
    for name in ("ErrorSummary", "ColumnMeans", "CachedMedian"):
        theirs, mine = getattr(user_metrics(IGNITE), name)(), getattr(user_metrics(OURS), name)()
        resumed = getattr(user_metrics(OURS), name)()
        for i, batch in enumerate(batches):
            theirs.update(batch)
            mine.update(batch)
            assert_close(mine.compute(), theirs.compute())  # the cache dropped by each update
            if i == 1:
                resumed.load_state_dict(mine.state_dict())
            elif i > 1:
                resumed.update(batch)
        assert_close(resumed.compute(), theirs.compute())
        assert sorted(mine.state_dict()) == sorted(type(mine)._state_dict_all_req_keys)
        mine.reset()
        theirs.reset()
        if name == "ErrorSummary":
            with pytest.raises(NotComputableError):
                mine.compute()


# ---------------------------------------------------------------------------------------------- ports


class Recorded(Metric):
    """compute() returns whatever the test put in ``value``; counts its calls."""

    required_output_keys = None

    def __init__(self, value: Any = None, **kwargs: Any) -> None:
        self.value = value
        self.resets = self.updates = self.computes = 0
        super().__init__(**kwargs)
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def update(self, output: Any) -> None:
        self.updates += 1
        self.output = output

    def compute(self) -> Any:
        self.computes += 1
        return self.value


async def run_once(metric: Metric, output: Any, name: str = "m", epochs: int = 1, n: int = 1) -> dict[str, Any]:
    engine = Engine(lambda e, b: output)
    metric.attach(engine, name)
    return dict((await engine.run([0] * n, max_epochs=epochs)).metrics)


async def test_completed_puts_numbers_tensors_mappings_and_others_as_ignite() -> None:
    assert await run_once(Recorded(torch.tensor(1.0)), 0) == {"m": 1.0}
    assert isinstance((await run_once(Recorded(torch.tensor(2)), 0))["m"], int)
    vector = (await run_once(Recorded(torch.tensor([1.0, 2.0])), 0))["m"]
    assert isinstance(vector, torch.Tensor)
    assert vector.tolist() == [1.0, 2.0]
    result = {"foo": 1, "bar": torch.tensor(2.0), "baz": {"qux": "quux"}}
    assert await run_once(Recorded(result), 0) == {**result, "m": result}  # "both": values as they are
    assert await run_once(Recorded(result, metrics_result_mode="flatten"), 0) == result
    assert await run_once(Recorded(result, metrics_result_mode="named"), 0) == {"m": result}
    with pytest.raises(ValueError, match="'foo' is also a key of its result"):
        await run_once(Recorded(result), 0, name="foo")
    # Flattened only, the name may be one of the keys, as in pytorch-ignite.
    assert await run_once(Recorded(result, metrics_result_mode="flatten"), 0, name="foo") == result
    assert await run_once(Recorded("foo"), 0) == {"m": "foo"}
    with pytest.raises(ValueError, match="metrics_result_mode must be one of"):
        Recorded(metrics_result_mode="nested")  # type: ignore[arg-type]


async def test_attach_counts_resets_updates_and_computes_as_ignite() -> None:
    engine = Engine(lambda e, b: 1)
    m1, m2 = Recorded(123), Recorded(456)
    m1.attach(engine, "m1")
    m2.attach(engine, "m2_1")
    m2.attach(engine, "m2_2")  # one metric under two names: updated once, computed twice
    state = await engine.run(range(10), max_epochs=5)
    assert (state.metrics["m1"], state.metrics["m2_1"], state.metrics["m2_2"]) == (123, 456, 456)
    assert (m1.resets, m1.updates, m1.computes) == (5, 50, 5)
    assert (m2.resets, m2.updates, m2.computes) == (5, 50, 10)
    m1.detach(engine)
    assert not m1.is_attached(engine)
    assert m2.is_attached(engine)


async def test_mapping_outputs_and_required_output_keys_as_ignite() -> None:
    y_pred, y, x = torch.rand(4, 3), torch.randint(0, 3, (4,)), torch.rand(4, 10)

    class WithInputs(Recorded):
        required_output_keys = ("y_pred", "y", "x")

    metric = WithInputs()
    await run_once(metric, {"x": x, "y": y, "y_pred": y_pred, "extra": 1})
    assert [t is s for t, s in zip(metric.output, (y_pred, y, x), strict=True)] == [True, True, True]

    class Pair(Recorded):
        required_output_keys = ("y_pred", "y")

    with pytest.raises(ValueError, match=r"needs the output keys \['y_pred', 'y'\]"):
        await run_once(Pair(), {"y1": 0, "y2": 1})
    with pytest.raises(TypeError, match="cannot take a mapping output"):
        await run_once(Recorded(), {"y1": 0, "y2": 1})  # required_output_keys None


async def test_updates_build_no_graph_and_transforms_apply() -> None:
    y_pred = torch.zeros(4, requires_grad=True)

    class NoGrad(Recorded):
        def update(self, output: Any) -> None:
            a, b = output
            self.grad_seen = a.requires_grad, torch.pow(a - b, 2).requires_grad

    metric = NoGrad(output_transform=lambda o: (o[0]["y"], o[1]["y"]))
    await run_once(metric, ({"y": y_pred}, {"y": torch.zeros(4)}))
    assert metric.grad_seen == (True, False)
    assert torch.is_grad_enabled()
    with pytest.raises(TypeError, match="output_transform must be callable"):
        Recorded(output_transform=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="XLA"):
        Recorded(device="xla")


def test_dunder_lookups_are_not_turned_into_metric_arithmetic() -> None:
    class Callable_(Recorded):
        def __call__(self, value: Any) -> None:
            pass

    assert "value" in inspect.signature(Callable_()).parameters


class Nested(Metric):
    """pytorch-ignite's DummyMetric4: numbers, tensors, None, a metric, and metrics in a dict and a list."""

    required_output_keys = None
    _state_dict_all_req_keys = ("dnumber", "fnumber", "tensor", "metric", "metric_dict", "metric_list", "none")

    def __init__(self, value: int) -> None:
        self.metric = ours_metrics.Accuracy()
        self.metric_dict: dict[str, Any] = {"m1": ours_metrics.Accuracy(), "m2": ours_metrics.Precision(), "n": value}
        self.metric_list: list[Any] = [ours_metrics.Recall(), ours_metrics.Precision(), value + 234]
        super().__init__()
        self.dnumber, self.fnumber, self.tensor = value + 1, value + 2.234, torch.tensor(value + 2.5)
        batch = (torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]), torch.tensor([0, 0, 1]))
        for m in (self.metric, *self.metric_dict.values(), *self.metric_list):
            if isinstance(m, Metric):
                m.update(batch)

    def reset(self) -> None:
        self.dnumber, self.fnumber, self.tensor, self.none = -1, -2.0, torch.tensor([-3]), None
        for m in (getattr(self, "metric", None), *getattr(self, "metric_dict", {}).values()):
            if isinstance(m, Metric):
                m.reset()
        for m in getattr(self, "metric_list", []):
            if isinstance(m, Metric):
                m.reset()

    def update(self, output: Any) -> None:
        pass

    def compute(self) -> Any:
        return [self.metric.compute(), self.metric_dict["m2"].compute().tolist(), self.metric_list[0].compute()]


def test_state_dict_of_nested_metrics_round_trips() -> None:
    saved = Nested(1)
    state = saved.state_dict()
    assert sorted(state) == sorted(Nested._state_dict_all_req_keys)
    assert plain(state["metric"]) == plain(saved.metric.state_dict())
    assert state["metric_dict"]["n"] == 1
    assert state["metric_list"][2] == 235
    assert state["none"] is None
    restored = Nested(7)
    restored.reset()
    restored.none = 1
    inner = restored.metric_dict["m2"]
    restored.load_state_dict(state)
    assert restored.metric_dict["m2"] is inner  # loaded into, not replaced
    assert (restored.dnumber, restored.fnumber, restored.none) == (2, 3.234, None)
    assert restored.tensor.item() == 3.5
    assert_close(restored.compute(), saved.compute())


def test_state_dict_refuses_what_it_cannot_save() -> None:
    class Wrong(Recorded):
        _state_dict_all_req_keys = ("thing",)

    metric = Wrong()
    metric.thing = object()
    with pytest.raises(TypeError, match=r"Wrong\.thing is a object, which state_dict"):
        metric.state_dict()
    del metric.thing
    with pytest.raises(ValueError, match="'thing' named in its state keys is not an attribute"):
        metric.state_dict()
    with pytest.raises(ValueError, match="the state lacks"):
        metric.load_state_dict({})


def test_sync_all_reduce_alone_leaves_the_accumulators_and_checks_its_arguments() -> None:
    class Counted(Metric):
        @reinit__is_reduced
        def reset(self) -> None:
            self.a = torch.tensor(0.0, device=self._device)
            self.b = 0.0

        def update(self, output: Any) -> None:
            self.a += torch.tensor(1.0)
            self.b += 1.0

        @sync_all_reduce("a", "b:SUM")
        def compute(self) -> tuple[float, float]:
            return self.a.item(), self.b

    metric = Counted()
    metric.update(None)
    assert metric.compute() == (1.0, 1.0)
    assert metric.a.item() == metric.b == 1.0
    assert getattr(Counted.compute, "_decorated", False)
    assert getattr(Counted.reset, "_decorated", False)
    for bad in ("a:sum", "c:MaX", "n:MINN", "m:PROduCT"):
        with pytest.raises(ValueError, match="the reduction must be one of"):
            sync_all_reduce(bad)
    with pytest.raises(RuntimeError, match="decorates methods of Metric subclasses"):
        sync_all_reduce("a")(lambda self: None)(object())


# ---------------------------------------------------------------------------------------------- across ranks


def _ranks(local_rank: int, out: Path) -> None:
    """Run by ``Parallel("gloo", nproc_per_node=2)``: the user metrics of both libraries on rank-shaped data."""
    rank = local_rank
    # Ranks see different data (as many batches each: pytorch-ignite's RunningAverage reduces at every update).
    batches = regression_batches(10 + rank, n=3)
    results: dict[str, Any] = {"rank": rank}

    def attacher(lib: Any) -> Any:
        def attach(engine: Any) -> None:
            m = user_metrics(lib)
            m.ErrorSummary().attach(engine, "summary")
            m.ColumnMeans().attach(engine, "column_means")
            ra_module = ignite.metrics if lib is IGNITE else ours_metrics
            ra_module.RunningAverage(output_transform=lambda o: float(o[0].sum()), alpha=0.6).attach(engine, "ra")

        return attach

    results["ignite"] = plain(trace_ignite(attacher(IGNITE), batches))
    for backend in ("asyncio", "trio"):
        results[backend] = plain(anyio.run(trace_ours, attacher(OURS), batches, backend=backend))

    # The accumulators are the rank's own again after compute (pytorch-ignite's own check).
    summary = user_metrics(OURS).ErrorSummary()
    for batch in batches:
        summary.update(batch)
    before = summary.state_dict()
    summary.compute()
    results["kept"] = plain(before) == plain(summary.state_dict())

    # Its argument checks, which pytorch-ignite makes only across ranks.
    class Broken(Metric):
        def reset(self) -> None:
            self.text = "a string"

        def update(self, output: Any) -> None:
            pass

        @sync_all_reduce("missing")
        def compute(self) -> None:
            pass

        @sync_all_reduce("text")
        def compute_text(self) -> None:
            pass

    errors = []
    for call in (Broken().compute, Broken().compute_text):
        try:
            call()
        except (ValueError, TypeError) as e:
            errors.append(f"{type(e).__name__}: {e}")
    results["errors"] = errors
    (out / f"ranks_{rank}.json").write_text(json.dumps(results))


def test_reductions_across_two_gloo_ranks_equal_ignites(tmp_path: Path) -> None:
    with Parallel("gloo", nproc_per_node=2) as parallel:
        parallel.run(_ranks, tmp_path)
    results = [json.loads((tmp_path / f"ranks_{rank}.json").read_text()) for rank in (0, 1)]
    # One process over both ranks' data in rank order: what the reduced values must equal.
    alone = trace_ignite(
        lambda engine: user_metrics(IGNITE).ErrorSummary().attach(engine, "summary"),
        regression_batches(10, n=3) + regression_batches(11, n=3),
        epochs=1,
    )
    for r in results:
        for backend in ("asyncio", "trio"):
            assert len(r[backend]) == len(r["ignite"]) == 2
            for mine, theirs in zip(r[backend], r["ignite"], strict=True):
                assert sorted(mine) == sorted(theirs)
                assert_close(mine, theirs)
        assert_close(r["asyncio"][0]["summary"], alone[0]["summary"])
        assert r["kept"] is True
        assert r["errors"] == [
            "ValueError: sync_all_reduce: Broken has no attribute 'missing' to reduce",
            "TypeError: sync_all_reduce reduces numbers and tensors, but Broken.text is a str",
        ]
    assert_close(results[0]["asyncio"], results[1]["asyncio"])  # every rank has the job's values


# ---------------------------------------------------------------------------------------------- RunningAverage


def running_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(9)
    return [(torch.rand(6, 4, generator=g), torch.randint(0, 4, (6,), generator=g)) for _ in range(4)]


@pytest.mark.parametrize("epoch_bound", [True, False])
@pytest.mark.parametrize("usage", [None, "running_epoch_wise"])
@pytest.mark.parametrize("source", ["output", "accuracy"])
async def test_running_average_epoch_bound_is_deprecated_and_picks_the_usage(
    epoch_bound: bool, usage: str | None, source: str
) -> None:
    def make(lib: Any) -> Any:
        kwargs: dict[str, Any] = {"alpha": 0.7, "epoch_bound": epoch_bound}
        if source == "accuracy":
            kwargs["src"] = lib.Accuracy()
        else:
            kwargs["output_transform"] = lambda o: float(o[0].sum())
        with pytest.warns(UserWarning, match="epoch_bound"):
            return lib.RunningAverage(**kwargs)

    def trace(metric: Any, engine: Any, events: Any) -> list[Any]:
        if usage is None:
            metric.attach(engine, "m")
        else:
            metric.attach(engine, "m", usage=usage)
        seen: list[Any] = []
        engine.add_event_handler(events.ITERATION_COMPLETED, lambda e: seen.append(e.state.metrics.get("m")))
        return seen

    ref = IgniteEngine(lambda e, b: b)
    theirs = trace(make(ignite.metrics), ref, IgniteEvents)
    ref.run(running_batches(), max_epochs=2)
    engine = Engine(lambda e, b: b)
    metric = make(ours_metrics)
    mine = trace(metric, engine, Events)
    await engine.run(running_batches(), max_epochs=2)
    assert mine == pytest.approx(theirs, rel=1e-6)
    assert len(mine) == 8
    # epoch_bound=True restarts at each epoch: epoch 2 repeats epoch 1 (same batches), whatever the usage.
    assert (mine[4:] == pytest.approx(mine[:4])) is epoch_bound
    assert metric.epoch_bound is epoch_bound
    if usage is None:
        metric.detach(engine)
    else:
        metric.detach(engine, usage=usage)
    assert not metric.is_attached(engine, "single_epoch_running_batch_wise" if epoch_bound else "running_batch_wise")


async def test_running_average_epoch_bound_true_restarts_each_epoch() -> None:
    def make(epoch_bound: bool) -> RunningAverage:
        with pytest.warns(UserWarning, match="deprecated"):
            return RunningAverage(output_transform=lambda o: o, alpha=0.5, epoch_bound=epoch_bound)

    values: dict[bool, list[float]] = {}
    for bound in (True, False):
        engine = Engine(lambda e, b: b)
        make(bound).attach(engine, "m")
        seen: list[float] = []
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e, seen=seen: seen.append(e.state.metrics["m"]))
        await engine.run([4.0, 0.0], max_epochs=2)
        values[bound] = seen
    assert values[True] == [4.0, 2.0, 4.0, 2.0]
    assert values[False] == [4.0, 2.0, 3.0, 1.5]
    with pytest.raises(TypeError, match="epoch_bound must be None, True or False"):
        RunningAverage(output_transform=lambda o: o, epoch_bound="yes")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- confusion matrix


def segmentation_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(6)
    return [(torch.rand(4, 3, 2, 2, generator=g), torch.randint(0, 3, (4, 2, 2), generator=g)) for _ in range(3)]


IG_CM = ignite.metrics.confusion_matrix
DERIVED = {
    "iou": lambda lib, cm: lib.IoU(cm),
    "iou-ignore": lambda lib, cm: lib.IoU(cm, ignore_index=0),
    "miou": lambda lib, cm: lib.mIoU(cm),
    "miou-ignore": lambda lib, cm: lib.mIoU(cm, ignore_index=2),
    "cm-accuracy": lambda lib, cm: lib.cmAccuracy(cm),
}


@pytest.mark.parametrize("average", [None, "samples"])
@pytest.mark.parametrize("name", list(DERIVED))
async def test_iou_miou_and_cm_accuracy_return_what_ignite_returns(name: str, average: str | None) -> None:
    ours_ns = types.SimpleNamespace(IoU=IoU, mIoU=mIoU, cmAccuracy=cmAccuracy)
    theirs_cm, mine_cm = IG_CM.ConfusionMatrix(3, average=average), ConfusionMatrix(3, average=average)
    theirs, mine = DERIVED[name](IG_CM, theirs_cm), DERIVED[name](ours_ns, mine_cm)
    for batch in segmentation_batches():
        theirs_cm.update(batch)
        mine_cm.update(batch)
    t, m = theirs.compute(), mine.compute()
    assert isinstance(m, torch.Tensor)
    assert isinstance(t, torch.Tensor)
    assert (m.dtype, m.shape) == (t.dtype, t.shape)
    assert_close(m, t)

    def attacher(lib: Any, cm_class: Any) -> Any:
        return lambda engine: DERIVED[name](lib, cm_class(3, average=average)).attach(engine, "value")

    same_metrics(
        await trace_ours(attacher(ours_ns, ConfusionMatrix), segmentation_batches()),
        trace_ignite(attacher(IG_CM, IG_CM.ConfusionMatrix), segmentation_batches()),
    )


def test_cm_accuracy_takes_a_normalised_matrix_as_ignite() -> None:
    theirs_cm, mine_cm = IG_CM.ConfusionMatrix(3, average="recall"), ConfusionMatrix(3, average="recall")
    theirs, mine = IG_CM.cmAccuracy(theirs_cm), cmAccuracy(mine_cm)
    for batch in segmentation_batches():
        theirs_cm.update(batch)
        mine_cm.update(batch)
    assert_close(mine.compute(), theirs.compute())
    with pytest.raises(TypeError, match="needs a ConfusionMatrix"):
        cmAccuracy(ours_metrics.Accuracy())  # type: ignore[arg-type]
    assert ours_metric.Metric is Metric


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        (Metric, ignite.metrics.metric.Metric),
        (RunningAverage, ignite.metrics.RunningAverage),
        (ConfusionMatrix, IG_CM.ConfusionMatrix),
    ],
)
def test_constructor_arguments_in_ignites_order_and_defaults(mine: Any, theirs: Any) -> None:
    def arguments(cls: Any) -> list[tuple[str, Any]]:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        # Devices as torch.device (pytorch-ignite's default is torch.device("cpu"), ours "cpu").
        defaults = [torch.device(p.default) if p.name == "device" and p.default else p.default for p in params]
        return [
            (p.name, d if isinstance(d, (bool, str, float, torch.device, type(None))) else "?")
            for p, d in zip(params, defaults, strict=True)
        ]

    assert arguments(mine) == arguments(theirs)
