"""Metrics: values equal to pytorch-ignite 0.5.5's for random outputs, under every usage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ignite.metrics as ig
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

import ignite_async.metrics as ours
from ignite_async import Engine, Events
from tests.metrics._data import Batch, classification_batches, ranking_batches, regression_batches, scores_batches

PAIRS: list[tuple[str, Callable[[Any], Any], Callable[[int], list[Batch]]]] = [
    ("binary accuracy", lambda lib: lib.Accuracy(), lambda s: classification_batches("binary", s)),
    ("multiclass accuracy", lambda lib: lib.Accuracy(), lambda s: classification_batches("multiclass", s)),
    (
        "multilabel accuracy",
        lambda lib: lib.Accuracy(is_multilabel=True),
        lambda s: classification_batches("multilabel", s),
    ),
    ("mse", lambda lib: lib.MeanSquaredError(), regression_batches),
    ("mae", lambda lib: lib.MeanAbsoluteError(), regression_batches),
    ("rmse", lambda lib: lib.RootMeanSquaredError(), regression_batches),
    ("loss", lambda lib: lib.Loss(torch.nn.functional.mse_loss), regression_batches),
    (
        "cross-entropy loss",
        lambda lib: lib.Loss(torch.nn.functional.cross_entropy),
        lambda s: [(p.float(), y) for p, y in classification_batches("multiclass", s)],
    ),
    *(
        (
            f"{kind} {cls.lower()} average={average}",
            lambda lib, cls=cls, kind=kind, average=average: getattr(lib, cls)(
                average=average, is_multilabel=kind == "multilabel"
            ),
            lambda s, kind=kind: classification_batches(kind, s),
        )
        for cls in ("Precision", "Recall")
        for kind in ("binary", "multiclass", "multilabel")
        for average in (False, None, True, "micro", "weighted", *(["samples"] if kind == "multilabel" else []))
    ),
    *(
        (
            f"{kind} f{beta} average={average}",
            lambda lib, kind=kind, beta=beta, average=average: lib.Fbeta(
                beta,
                average,
                precision=lib.Precision(is_multilabel=kind == "multilabel"),
                recall=lib.Recall(is_multilabel=kind == "multilabel"),
            ),
            lambda s, kind=kind: classification_batches(kind, s),
        )
        for kind in ("binary", "multiclass", "multilabel")
        for beta in (0.5, 1.0, 2.0)
        for average in (True, False)
    ),
    *(
        (f"top-{k} accuracy", lambda lib, k=k: lib.TopKCategoricalAccuracy(k), lambda s, k=k: scores_batches(s, k))
        for k in (1, 2, 3)
    ),
    ("roc auc", lambda lib: lib.ROC_AUC(), lambda s: ranking_batches(s, labels=0)),
    ("multilabel roc auc", lambda lib: lib.ROC_AUC(), lambda s: ranking_batches(s, labels=3)),
    ("average precision", lambda lib: lib.AveragePrecision(), lambda s: ranking_batches(s, labels=0)),
    ("multilabel average precision", lambda lib: lib.AveragePrecision(), lambda s: ranking_batches(s, labels=4)),
    (
        "epoch metric",
        lambda lib: lib.EpochMetric(lambda p, y: float(((p - y) ** 3).mean())),
        regression_batches,
    ),
]


def plain(value: Any) -> Any:
    """A metric's value as numbers pytest.approx compares (tensors become lists)."""
    return value.tolist() if isinstance(value, torch.Tensor) else value


def flat(values: list[Any]) -> list[Any]:
    """The values that are set, per-class lists spliced in."""
    return [x for v in values if v is not None for x in (v if isinstance(v, list) else [v])]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("index", range(len(PAIRS)), ids=[p[0] for p in PAIRS])
def test_values_equal_ignites(index: int, seed: int) -> None:
    _, make, batches_for = PAIRS[index]
    batches = batches_for(seed)
    theirs, mine = make(ig), make(ours)
    for batch in batches:
        theirs.update(batch)
        mine.update(batch)
    assert plain(mine.compute()) == pytest.approx(plain(theirs.compute()), rel=1e-6, abs=1e-9)


USAGES = ["epoch_wise", "batch_wise", "running_batch_wise", "single_epoch_running_batch_wise", "running_epoch_wise"]


@pytest.mark.anyio
@pytest.mark.parametrize("usage", [*USAGES, "batch_filtered"])
@pytest.mark.parametrize("name", [p[0] for p in PAIRS])
async def test_every_usage_gives_ignites_values_at_every_event(name: str, usage: str) -> None:
    _, make, batches_for = next(p for p in PAIRS if p[0] == name)
    batches = batches_for(7) * 2

    def trace(lib: Any, engine: Any, events: Any) -> list[Any]:
        metric = make(lib)
        u = lib.BatchFiltered(every=2) if usage == "batch_filtered" else usage
        metric.attach(engine, "m", usage=u)
        seen: list[Any] = []
        engine.add_event_handler(events.ITERATION_COMPLETED, lambda e: seen.append(plain(e.state.metrics.get("m"))))
        engine.add_event_handler(events.EPOCH_COMPLETED, lambda e: seen.append(plain(e.state.metrics.get("m"))))
        return seen

    ref = IgniteEngine(lambda e, b: b)
    theirs = trace(ig, ref, IgniteEvents)
    ref.run(batches, max_epochs=2)
    engine = Engine(lambda e, b: b)
    mine = trace(ours, engine, Events)
    await engine.run(batches, max_epochs=2)
    assert [m is None for m in mine] == [t is None for t in theirs]
    assert flat(mine) == pytest.approx(flat(theirs), rel=1e-6)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(4, 2\) and \(4,\)"):
        ours.MeanSquaredError().update((torch.zeros(4, 2), torch.zeros(4)))
    with pytest.raises(ValueError, match=r"got \(3, 2\) and \(3, 4\)"):
        ours.Accuracy().update((torch.zeros(3, 2), torch.zeros(3, 4)))
    accuracy = ours.Accuracy()
    accuracy.update((torch.tensor([1, 0]), torch.tensor([1, 1])))
    with pytest.raises(RuntimeError, match="changed from binary to multiclass"):
        accuracy.update((torch.rand(2, 3), torch.tensor([0, 2])))
    with pytest.raises(ValueError, match="must be 0s and 1s"):
        ours.Accuracy().update((torch.tensor([0.3, 1.0]), torch.tensor([0, 1])))
    for metric in (ours.Accuracy(), ours.MeanAbsoluteError(), ours.Loss(torch.nn.functional.mse_loss)):
        with pytest.raises(ours.NotComputableError):
            metric.compute()
    with pytest.raises(ValueError, match="mean loss"):
        ours.Loss(lambda p, y: (p - y) ** 2).update((torch.zeros(3), torch.ones(3)))
    with pytest.raises(ValueError, match="usage must be"):
        ours.Accuracy().attach(Engine(lambda e, b: b), "acc", usage="sometimes")


@pytest.mark.anyio
async def test_dict_outputs_need_the_required_keys() -> None:
    engine = Engine(lambda e, b: {"y_pred": torch.rand(2, 3), "target": torch.tensor([0, 1])})
    ours.Accuracy().attach(engine, "acc")
    with pytest.raises(ValueError, match=r"needs the output keys \['y'\]"):
        await engine.run([0])
    ok = Engine(lambda e, b: {"y_pred": torch.tensor([[0.1, 0.9]]), "y": torch.tensor([1])})
    metric = ours.Accuracy()
    metric.attach(ok, "acc")
    assert metric.is_attached(ok)
    assert (await ok.run([0])).metrics["acc"] == 1.0
    metric.detach(ok)
    assert not metric.is_attached(ok)


@pytest.mark.parametrize("index", range(len(PAIRS)), ids=[p[0] for p in PAIRS])
def test_state_dict_resumes_midway(index: int, tmp_path: Any) -> None:
    _, make, batches_for = PAIRS[index]
    batches = batches_for(3) * 2
    whole, first = make(ours), make(ours)
    for batch in batches:
        whole.update(batch)
    for batch in batches[:2]:
        first.update(batch)
    torch.save(first.state_dict(), tmp_path / "metric.pt")
    for batch in batches[:1]:
        first.update(batch)  # the saved state is a copy: later updates do not leak into it
    resumed = make(ours)
    for batch in batches_for(4)[:1]:  # what it had seen and computed must not leak into the loaded state
        resumed.update(batch)
    resumed.compute()
    resumed.load_state_dict(torch.load(tmp_path / "metric.pt"))
    for batch in batches[2:]:
        resumed.update(batch)
    assert plain(resumed.compute()) == pytest.approx(plain(whole.compute()), rel=1e-9)


@pytest.mark.parametrize("index", range(len(PAIRS)), ids=[p[0] for p in PAIRS])
def test_loading_a_state_forgets_what_was_cached(index: int) -> None:
    _, make, batches_for = PAIRS[index]
    used, other, fresh = make(ours), make(ours), make(ours)
    for batch in batches_for(5):
        used.update(batch)
    used.compute()
    for batch in batches_for(6):
        other.update(batch)
    used.load_state_dict(other.state_dict())
    assert plain(used.compute()) == pytest.approx(plain(other.compute()), rel=1e-9)  # not a cached value
    used.load_state_dict(make(ours).state_dict())
    for batch in reversed(batches_for(5)):  # the shape last checked comes first: it must be checked again
        used.update(batch)
        fresh.update(batch)
    assert plain(used.compute()) == pytest.approx(plain(fresh.compute()), rel=1e-9)


def test_classification_bad_input_is_named() -> None:
    for average in ("mean", "binary", 1):
        with pytest.raises(ValueError, match=f"average must be .* got {average!r}"):
            ours.Precision(average=average)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="samples' needs multilabel data, got multiclass"):
        ours.Recall(average="samples").update((torch.rand(3, 4), torch.tensor([0, 1, 2])))
    with pytest.raises(ValueError, match="y has class 5 but y_pred scores only 3 classes"):
        ours.Precision().update((torch.rand(2, 3), torch.tensor([0, 5])))
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3\) and \(2, 4\)"):
        ours.Recall(is_multilabel=True).update((torch.ones(2, 3), torch.ones(2, 4)))
    precision = ours.Precision()
    precision.update((torch.rand(2, 3), torch.tensor([0, 2])))
    with pytest.raises(ValueError, match="number of classes changed from 3 to 4"):
        precision.update((torch.rand(2, 4), torch.tensor([0, 2])))
    with pytest.raises(ValueError, match="must have average=False, got average='macro'"):
        ours.Fbeta(1.0, precision=ours.Precision(average=True))
    with pytest.raises(ValueError, match="beta must be a positive number"):
        ours.Fbeta(0.0)
    with pytest.raises(ValueError, match="k=3 but y_pred scores only 2 classes"):
        ours.TopKCategoricalAccuracy(3).update((torch.rand(4, 2), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"y_pred must be \(N, C\) and y \(N,\), got \(4, 5\) and \(3,\)"):
        ours.TopKCategoricalAccuracy(3).update((torch.rand(4, 5), torch.zeros(3, dtype=torch.long)))
    for metric in (ours.Precision(), ours.Recall(), ours.TopKCategoricalAccuracy(), ours.ROC_AUC(), ours.Fbeta(2.0)):
        with pytest.raises(ours.NotComputableError):
            metric.compute()
    with pytest.raises(ValueError, match=r"lacks \['_sum', '_num_examples'\]"):
        ours.MeanSquaredError().load_state_dict({})


@pytest.mark.anyio
async def test_the_shared_argmax_is_never_stale() -> None:
    # One output buffer, rewritten through numpy each iteration: torch's version counter does not see
    # such writes, so the shared argmax must not outlive the iteration (nor serve direct update() calls).
    buffer, y = torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
    rows = [[0, 1, 2, 0], [1, 2, 0, 1], [0, 1, 0, 0]]

    def step(engine: Any, batch: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        buffer.numpy()[:] = torch.eye(3)[batch].numpy()
        return buffer, y

    engine = Engine(step)
    ours.Accuracy().attach(engine, "accuracy")
    ours.ConfusionMatrix(3).attach(engine, "cm")
    ref = IgniteEngine(lambda e, batch: (torch.eye(3)[batch], y))
    ig.Accuracy().attach(ref, "accuracy")
    ig.ConfusionMatrix(3).attach(ref, "cm")
    mine, theirs = (await engine.run(rows)).metrics, ref.run(rows).metrics
    assert mine["accuracy"] == theirs["accuracy"]
    assert mine["cm"].tolist() == theirs["cm"].tolist()

    direct = ours.Accuracy()
    for batch in rows:
        step(None, batch)
        direct.update((buffer, y))
    assert direct.compute() == theirs["accuracy"]


@pytest.mark.anyio
async def test_tensor_methods_on_metrics_build_lambdas_like_ignite() -> None:
    batches = classification_batches("multiclass", 5)

    def f1(lib: Any) -> Any:
        precision, recall = lib.Precision(average=False), lib.Recall(average=False)
        return (2 * precision * recall / (precision + recall + 1e-20)).mean()

    ref = IgniteEngine(lambda e, b: b)
    f1(ig).attach(ref, "f1")
    engine = Engine(lambda e, b: b)
    f1(ours).attach(engine, "f1")
    expected = ref.run(batches).metrics["f1"]
    assert (await engine.run(batches)).metrics["f1"] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(AttributeError, match="'Accuracy' object has no attribute 'no_such_method'"):
        ours.Accuracy().no_such_method()


META_UPDATES: list[tuple[str, Callable[[], Any], Callable[[Callable[..., torch.Tensor]], Any]]] = [
    ("accuracy", lambda: ours.Accuracy(device="meta"), lambda t: (t(8, 4), t(8, dtype=torch.long))),
    ("binary accuracy", lambda: ours.Accuracy(device="meta"), lambda t: (t(8, dtype=torch.long),) * 2),
    ("loss", lambda: ours.Loss(torch.nn.functional.cross_entropy, device="meta"), lambda t: (t(8, 4), t(8).long())),
    ("confusion matrix", lambda: ours.ConfusionMatrix(4, device="meta"), lambda t: (t(8, 4), t(8).long())),
    ("weighted precision", lambda: ours.Precision(average="weighted", device="meta"), lambda t: (t(8, 4), t(8).long())),
    (
        "samples recall",
        lambda: ours.Recall(average="samples", is_multilabel=True, device="meta"),
        lambda t: (t(8, 4).long(),) * 2,
    ),
    ("top-k", lambda: ours.TopKCategoricalAccuracy(2, device="meta"), lambda t: (t(8, 4), t(8).long())),
    ("mse", lambda: ours.MeanSquaredError(device="meta"), lambda t: (t(8), t(8))),
    ("running average", lambda: ours.RunningAverage(output_transform=lambda x: x, device="meta"), lambda t: t(())),
    ("roc auc", lambda: ours.ROC_AUC(device="meta"), lambda t: (t(8), t(8))),
]


@pytest.mark.parametrize("index", range(len(META_UPDATES)), ids=[c[0] for c in META_UPDATES])
def test_updates_never_read_a_value_back(index: int) -> None:
    # Meta tensors have shapes but no values: reading one back (.item(), bool(), a value check) raises, as
    # on a GPU it would wait for the device. So updates that pass here cost no device sync per iteration.
    _, make, output = META_UPDATES[index]
    metric = make()
    for _ in range(3):
        metric.update(output(lambda *shape, **kw: torch.empty(*shape, device="meta", **kw)))
    with pytest.raises(Exception, match="meta"):  # the proof that a read-back would have failed
        torch.empty((), device="meta").item()


# ---------------------------------------------------------------- outputs with more than (y_pred, y)


def four_class_batches(seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, 4, 2, generator=g), torch.randint(0, 4, (n, 2), generator=g)) for n in (3, 7, 1)]


# Every family of PAIRS, and the confusion matrix and what is derived from it.
WITH_EXTRA = [
    *PAIRS,
    ("confusion matrix", lambda lib: lib.ConfusionMatrix(4), four_class_batches),
    ("confusion matrix iou", lambda lib: lib.IoU(lib.ConfusionMatrix(4)), four_class_batches),
    ("confusion matrix miou", lambda lib: lib.mIoU(lib.ConfusionMatrix(4)), four_class_batches),
    ("confusion matrix entry", lambda lib: lib.ConfusionMatrix(4)[1, 2], four_class_batches),
]
# pytorch-ignite's update of these reads only output[0] and output[1], so it takes a triple too; the others
# unpack `y_pred, y = output` and fail on one (Loss takes a third item only as loss_fn's kwargs).
IGNITE_TAKES_TRIPLES = ("mse", "mae", "rmse", "top-", "confusion matrix")


def numbers(value: Any) -> Any:
    """A value as a number or a flat list of them (a matrix too)."""
    return plain(value.flatten() if isinstance(value, torch.Tensor) and value.ndim > 1 else value)


def triple(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    y_pred, y = batch
    return y_pred, y, torch.arange(len(y))  # an extra item, as the inputs x of an evaluator's (y_pred, y, x)


def ignite_takes_triples(make: Callable[[Any], Any], batch: Batch) -> bool:
    try:
        make(ig).update(triple(batch))
    except (ValueError, TypeError):  # too many values to unpack; Loss: argument after ** must be a mapping
        return False
    return True


@pytest.mark.parametrize("name", [p[0] for p in WITH_EXTRA])
def test_items_after_y_are_ignored_as_ignite_ignores_them(name: str) -> None:
    _, make, batches_for = next(p for p in WITH_EXTRA if p[0] == name)
    batches = batches_for(2)
    takes = ignite_takes_triples(make, batches[0])
    assert takes == name.startswith(IGNITE_TAKES_TRIPLES)
    theirs, mine = make(ig), make(ours)
    for batch in batches:
        theirs.update(triple(batch) if takes else batch)
        mine.update(triple(batch))
    assert numbers(mine.compute()) == pytest.approx(numbers(theirs.compute()), rel=1e-6, abs=1e-9)


ENGINE_WITH_EXTRA = [
    *WITH_EXTRA,
    (
        "running average of mae",
        lambda lib: lib.RunningAverage(src=lib.MeanAbsoluteError(), alpha=0.6),
        regression_batches,
    ),
    ("running average of accuracy", lambda lib: lib.RunningAverage(src=lib.Accuracy()), four_class_batches),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "form"),
    # Not a dict for RunningAverage(src=...): pytorch-ignite's refuses any dict (its required_output_keys is None).
    [(p[0], "tuple") for p in ENGINE_WITH_EXTRA] + [(p[0], "dict") for p in WITH_EXTRA],
)
async def test_attached_metrics_take_outputs_with_extra_items_and_keys(name: str, form: str) -> None:
    _, make, batches_for = next(p for p in ENGINE_WITH_EXTRA if p[0] == name)
    batches = batches_for(9) * 2

    def output(batch: Batch, extra: bool) -> Any:
        y_pred, y, x = triple(batch)
        if form == "dict":  # criterion_kwargs, which pytorch-ignite's Loss requires in a dict, and an extra key
            return {"y_pred": y_pred, "y": y, "x": x, "criterion_kwargs": {}}
        return (y_pred, y, x) if extra else (y_pred, y)

    def trace(lib: Any, engine: Any, events: Any) -> list[Any]:
        make(lib).attach(engine, "m")
        seen: list[Any] = []

        def record(engine: Any) -> None:
            seen.append(numbers(engine.state.metrics.get("m")))

        engine.add_event_handler(events.ITERATION_COMPLETED, record)
        engine.add_event_handler(events.EPOCH_COMPLETED, record)
        return seen

    takes = name.startswith(("running average of mae", *IGNITE_TAKES_TRIPLES))
    ref = IgniteEngine(lambda e, b: output(b, extra=takes))
    theirs = trace(ig, ref, IgniteEvents)
    ref.run(batches, max_epochs=2)
    engine = Engine(lambda e, b: output(b, extra=True))
    mine = trace(ours, engine, Events)
    await engine.run(batches, max_epochs=2)
    assert [m is None for m in mine] == [t is None for t in theirs]
    assert flat(mine) == pytest.approx(flat(theirs), rel=1e-6)


def test_a_loss_takes_its_kwargs_as_the_third_item_and_ignores_the_rest() -> None:
    def scaled(y_pred: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return torch.nn.functional.mse_loss(y_pred, y) * scale

    batches = regression_batches(4)
    theirs, mine, ignoring = ig.Loss(scaled), ours.Loss(scaled), ours.Loss(scaled)
    for y_pred, y in batches:
        theirs.update((y_pred, y, {"scale": 3.0}))
        mine.update((y_pred, y, {"scale": 3.0}, "ignored"))
        ignoring.update((y_pred, y, torch.arange(len(y))))  # not a mapping: not kwargs, an extra item
    assert mine.compute() == pytest.approx(theirs.compute(), rel=1e-6)
    assert ignoring.compute() == pytest.approx(theirs.compute() / 3, rel=1e-6)
    for metric in (ours.Loss(scaled), ours.MeanAbsoluteError()):
        with pytest.raises(ValueError, match=r"takes \(y_pred, y\) or \(y_pred, y, .*\), got 1 items"):
            metric.update((torch.zeros(2),))


# ---------------------------------------------------------------- MetricsLambda.is_attached


@pytest.mark.parametrize("usage", ["epoch_wise", "batch_wise"])
def test_a_lambda_is_attached_only_while_every_metric_it_uses_is_like_ignites(usage: str) -> None:
    def states(lib: Any, engine: Any) -> list[tuple[bool, bool]]:
        precision, recall = lib.Precision(average=False), lib.Recall(average=False)
        f1 = (precision * recall * 2 / (precision + recall + 1e-20)).mean()  # lambdas of lambdas
        seen = []

        def record() -> None:
            seen.append((f1.is_attached(engine, usage), precision.is_attached(engine, usage)))

        record()
        f1.attach(engine, "f1", usage)
        record()
        precision.detach(engine, usage)  # deep below f1
        record()
        precision.attach(engine, "precision", usage)
        record()
        recall.detach(engine, usage)
        record()
        f1.detach(engine, usage)
        record()
        return seen

    mine, theirs = states(ours, Engine(lambda e, b: b)), states(ig, IgniteEngine(lambda e, b: b))
    assert mine == theirs
    assert [f1 for f1, _ in mine] == [False, True, False, True, False, False]
