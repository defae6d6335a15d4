"""TorchMetric: torchmetrics metrics and collections under every usage, resumed, in the background, sync-free."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torchmetrics import Metric as TMMetric
from torchmetrics import MetricCollection
from torchmetrics.aggregation import MeanMetric, SumMetric
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
)
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, PearsonCorrCoef
from torchmetrics.wrappers import ClasswiseWrapper

import ignite_async.metrics as ours
from ignite_async import Engine, Events
from ignite_async.metrics.metric import MetricUsage
from ignite_async.metrics.torchmetric import TorchMetric

pytestmark = pytest.mark.anyio

CLASSES = 4
USAGES: list[Any] = [
    "epoch_wise",
    "running_epoch_wise",
    "batch_wise",
    "running_batch_wise",
    "single_epoch_running_batch_wise",
    ours.BatchFiltered(every=2),
]


def batches(n: int = 5, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    # Every class in every batch, so that ranking metrics have positives and negatives at every compute.
    sizes = [CLASSES + i for i in range(n)]
    return [
        (torch.rand(k, CLASSES, generator=g), (torch.arange(k) % CLASSES)[torch.randperm(k, generator=g)])
        for k in sizes
    ]


def regression(n: int = 5, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2 + i, generator=g), torch.randn(2 + i, generator=g)) for i in range(n)]


def plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("usage", USAGES, ids=lambda u: u if isinstance(u, str) else type(u).__name__)
async def test_every_usage_gives_the_values_of_this_packages_own_metrics(usage: str | MetricUsage) -> None:
    # The package's Accuracy and MeanSquaredError follow pytorch-ignite's usages (tested against it): the same
    # torchmetrics metrics through TorchMetric must give the same values at the same events.
    data = [(p, y, torch.randn(len(y)), torch.randn(len(y))) for p, y in batches()]
    engine = Engine(lambda e, b: b)
    pairs = {
        "acc": (
            TorchMetric(MulticlassAccuracy(CLASSES, average="micro"), lambda o: o[:2]),
            ours.Accuracy(lambda o: o[:2]),
        ),
        "mse": (TorchMetric(MeanSquaredError(), lambda o: o[2:]), ours.MeanSquaredError(lambda o: o[2:])),
    }
    for name, (theirs, reference) in pairs.items():
        theirs.attach(engine, name, usage)
        reference.attach(engine, "ref_" + name, usage)
    seen: list[tuple[str, int, float, float]] = []
    completed = ours.metric._usage(usage).COMPLETED

    def record(e: Engine) -> None:
        for name in pairs:
            seen.append((name, e.state.iteration, e.state.metrics[name], e.state.metrics["ref_" + name]))

    engine.add_event_handler(completed, record)
    await engine.run(data, max_epochs=2)
    expected = 2 if completed == Events.EPOCH_COMPLETED else 2 * len(data)
    assert len(seen) == 2 * expected
    for name, iteration, value, reference_value in seen:
        assert isinstance(value, float), (name, iteration)
        assert value == pytest.approx(reference_value, rel=1e-5), (name, iteration)


async def test_a_collection_publishes_each_member_under_its_name() -> None:
    collection = MetricCollection(
        {"acc": MulticlassAccuracy(CLASSES), "f1": MulticlassF1Score(CLASSES, average="macro")},
        prefix="val_",
        postfix="_top1",
    )
    reference = collection.clone()
    engine = Engine(lambda e, b: b)
    TorchMetric(collection).attach(engine, "ignored")
    state = await engine.run(batches())
    for p, y in batches():
        reference.update(p, y)
    expected = {k: float(v) for k, v in reference.compute().items()}
    assert sorted(expected) == ["val_acc_top1", "val_f1_top1"]
    assert state.metrics == pytest.approx(expected)


async def test_a_metric_returning_a_dict_publishes_its_items_too() -> None:
    per_class = ClasswiseWrapper(MulticlassAccuracy(3, average=None), labels=["cat", "dog", "owl"])
    engine = Engine(lambda e, b: b)
    TorchMetric(per_class).attach(engine, "per_class")
    state = await engine.run([(torch.eye(3), torch.tensor([0, 1, 1]))])
    names = ["multiclassaccuracy_cat", "multiclassaccuracy_dog", "multiclassaccuracy_owl"]
    assert sorted(state.metrics) == [*names, "per_class"]
    assert plain(state.metrics["per_class"]) == {names[0]: 1.0, names[1]: 0.5, names[2]: 0.0}
    assert plain(state.metrics[names[1]]) == 0.5


# list states (BinaryAUROC keeps every score; Pearson keeps running means) and a collection with a compute group
def _auroc() -> Any:
    return BinaryAUROC()


def _collection() -> Any:
    return MetricCollection([MulticlassAccuracy(CLASSES), MulticlassF1Score(CLASSES), MulticlassAUROC(CLASSES)])


RESUMABLE: dict[str, tuple[Any, Any]] = {
    "auroc (list states)": (_auroc, lambda: [(p[:, 0], (y < CLASSES // 2).long()) for p, y in batches(6)]),
    "pearson": (PearsonCorrCoef, lambda: regression(6)),
    # a wrapper keeps no states of its own: its inner metric does
    "wrapper": (lambda: ClasswiseWrapper(MulticlassAccuracy(CLASSES, average=None)), lambda: batches(6)),
    "collection": (_collection, lambda: batches(6)),
}


@pytest.mark.parametrize("case", sorted(RESUMABLE))
def test_state_dict_resumes_exactly(case: str, tmp_path: Path) -> None:
    make, data_for = RESUMABLE[case]
    data = data_for()
    whole, first = TorchMetric(make()), TorchMetric(make())
    for batch in data:
        whole.update(batch)
    for batch in data[:3]:
        first.update(batch)
    torch.save(first.state_dict(), tmp_path / "metric.pt")
    first.update(data[3])  # the saved state is a copy: later updates do not leak into it
    resumed = TorchMetric(make())
    resumed.update(data[5])  # what it had seen and computed must not leak into the loaded state
    resumed.compute()
    resumed.load_state_dict(torch.load(tmp_path / "metric.pt"))
    for batch in data[3:]:
        resumed.update(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "compute called before update" from torchmetrics: counts restored
        assert plain(resumed.compute()) == pytest.approx(plain(whole.compute()), rel=1e-6)


def test_load_state_dict_names_what_is_missing() -> None:
    metric = TorchMetric(MetricCollection({"a": MeanSquaredError(), "b": MeanAbsoluteError()}))
    with pytest.raises(ValueError, match="takes what state_dict"):
        metric.load_state_dict({"sum_squared_error": torch.tensor(1.0)})
    saved = metric.state_dict()
    del saved["members"]["b"]
    with pytest.raises(ValueError, match=r"lacks the metrics \['b'\]"):
        metric.load_state_dict(saved)
    saved = metric.state_dict()
    del saved["members"]["a"]["states"]["total"]
    with pytest.raises(ValueError, match=r"state of 'a' lacks \['total'\]"):
        metric.load_state_dict(saved)
    with pytest.raises(TypeError, match="takes a mapping"):
        metric.load_state_dict([1])  # type: ignore[arg-type]


async def test_dict_outputs_go_through_required_output_keys() -> None:
    data = batches(3)
    reference = MulticlassAccuracy(CLASSES)
    for p, y in data:
        reference.update(p, y)
    engine = Engine(lambda e, b: {"y_pred": b[0], "y": b[1], "x": torch.zeros(1)})  # extra keys are ignored
    TorchMetric(MulticlassAccuracy(CLASSES)).attach(engine, "default_keys")
    TorchMetric(MeanMetric(), lambda o: {"value": o["y"].float()}, required_output_keys=("value",)).attach(engine, "m")
    state = await engine.run(data)
    assert state.metrics["default_keys"] == pytest.approx(float(reference.compute()))
    assert state.metrics["m"] == pytest.approx(float(torch.cat([y for _, y in data]).float().mean()))

    missing = Engine(lambda e, b: {"logits": b[0], "y": b[1]})
    TorchMetric(MulticlassAccuracy(CLASSES)).attach(missing, "acc")
    with pytest.raises(ValueError, match=r"needs the output keys \['y_pred'\]; got \['logits', 'y'\]"):
        await missing.run(data)
    refused = Engine(lambda e, b: {"y_pred": b[0], "y": b[1]})
    TorchMetric(MulticlassAccuracy(CLASSES), required_output_keys=None).attach(refused, "acc")
    with pytest.raises(TypeError, match="cannot take a mapping output; give output_transform"):
        await refused.run(data)


SECOND_COMPUTED = threading.Event()  # not an attribute: the metric is copied for each background compute


class EpochNumber(TMMetric):
    """The epoch's number (each batch is it); epoch 1's compute waits until epoch 2's has been computed."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("last", torch.tensor(0.0), dist_reduce_fx="max")

    def update(self, value: torch.Tensor) -> None:
        self.last = torch.maximum(self.last, value)

    def compute(self) -> torch.Tensor:
        if int(self.last) == 1:  # returns only once epoch 2 has run and been computed: inline it never would
            assert SECOND_COMPUTED.wait(timeout=30), "epoch 2 never ran while epoch 1 was being computed"
        else:
            SECOND_COMPUTED.set()
        return self.last.clone()


async def test_background_compute_lets_the_next_epoch_start_and_publishes_in_order() -> None:
    SECOND_COMPUTED.clear()
    engine = Engine(lambda e, b: torch.tensor(float(e.state.epoch)))
    metric = TorchMetric(EpochNumber(), background=True)
    metric.attach(engine, "epoch")
    at_epoch_end: list[object] = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: at_epoch_end.append(e.state.metrics.get("epoch")))
    at_completed: list[object] = []
    engine.add_event_handler(Events.COMPLETED, lambda e: at_completed.append(e.state.metrics["epoch"]))
    state = await engine.run([0, 0], max_epochs=2)
    assert at_epoch_end == [None, None]  # not ready at its own EPOCH_COMPLETED
    assert at_completed == [2.0]  # epoch 2's value, though epoch 1's was computed last
    assert state.metrics["epoch"] == 2.0
    assert metric.metric.update_count == 2  # the attached metric went on accumulating; the threads used copies


@pytest.mark.parametrize("usage", ["epoch_wise", "running_batch_wise"])
async def test_background_values_equal_inline_ones(usage: str) -> None:
    values = {}
    for background in (False, True):
        evaluator = Engine(lambda e, b: b)
        collection = MetricCollection([MulticlassAccuracy(CLASSES), MulticlassAUROC(CLASSES)], prefix="c_")
        TorchMetric(collection, background=background).attach(evaluator, "c", usage)
        TorchMetric(BinaryAUROC(), lambda o: (o[0][:, 0], (o[1] < 2).long()), background=background).attach(
            evaluator, "auroc", usage
        )
        TorchMetric(ClasswiseWrapper(MulticlassAccuracy(CLASSES, average=None)), background=background).attach(
            evaluator, "per_class", usage
        )
        values[background] = (await evaluator.run(batches(), max_epochs=2)).metrics
    per_class = [f"multiclassaccuracy_{i}" for i in range(CLASSES)]
    assert sorted(values[True]) == ["auroc", "c_MulticlassAUROC", "c_MulticlassAccuracy", *per_class, "per_class"]
    assert plain(values[True].pop("per_class")) == pytest.approx(plain(values[False].pop("per_class")))
    assert plain(values[True]) == pytest.approx(plain(values[False]))


async def test_a_failing_background_compute_fails_the_run() -> None:
    class Broken(SumMetric):
        def compute(self) -> torch.Tensor:
            raise ZeroDivisionError("no samples of class 1")

    engine = Engine(lambda e, b: torch.tensor(1.0))
    TorchMetric(Broken(), background=True).attach(engine, "broken")
    with pytest.raises(ZeroDivisionError, match="no samples of class 1"):
        await engine.run([0])


def meta(*shape: int, **kw: Any) -> torch.Tensor:
    return torch.empty(*shape, device="meta", **kw)


# Sync-free torchmetrics settings (see TorchMetric's docstring): validate_args=False, nan_strategy="disable",
# explicit compute groups. Meta tensors have shapes but no values: any read-back (.item(), bool(), a value
# check, a data-dependent shape) raises, as on a GPU it would wait for the device.
SYNC_FREE: dict[str, tuple[Any, Any]] = {
    "binary accuracy": (lambda: BinaryAccuracy(validate_args=False), lambda: (meta(8), meta(8, dtype=torch.long))),
    "multiclass auroc": (
        lambda: MulticlassAUROC(CLASSES, validate_args=False),
        lambda: (meta(8, CLASSES), meta(8, dtype=torch.long)),
    ),
    "mse": (MeanSquaredError, lambda: (meta(8), meta(8))),
    "mean": (lambda: MeanMetric(nan_strategy="disable"), lambda: meta(8)),
    "collection": (
        lambda: MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "pearson": PearsonCorrCoef()},
            compute_groups=[["mae"], ["mse"], ["pearson"]],
        ),
        lambda: {"y_pred": meta(8), "y": meta(8)},
    ),
}


@pytest.mark.parametrize("case", sorted(SYNC_FREE))
async def test_updates_never_read_a_value_back(case: str) -> None:
    make, output = SYNC_FREE[case]
    metric = TorchMetric(make(), device="meta")
    engine = Engine(lambda e, b: output())
    metric.attach(engine, "m")
    # Every update of the epoch passes; the first read-back is the value's, where the usage computes.
    with pytest.raises(Exception, match=r"(?i)meta"):
        await engine.run(range(4))
    assert engine.state.iteration == 4
    members = metric.metric.values() if isinstance(metric.metric, MetricCollection) else [metric.metric]
    assert [m.update_count for m in members] == [4] * len(members)


def test_torchmetrics_input_checks_do_read_values_back() -> None:
    # Why the docstring advises validate_args=False and nan_strategy="disable": with the defaults these fail.
    for make, output in (
        (BinaryAccuracy, (meta(8), meta(8, dtype=torch.long))),
        (MeanMetric, (meta(8),)),
    ):
        metric = TorchMetric(make(), device="meta")
        with pytest.raises(Exception, match=r"(?i)meta"):
            metric.update(output)


def test_multiclass_counts_are_sync_free_only_with_deterministic_algorithms() -> None:
    # torch.bincount sizes its output by the input's maximum (a read-back on CUDA); in deterministic mode
    # torchmetrics counts by comparison with arange instead.
    output = (meta(8, CLASSES), meta(8, dtype=torch.long))
    with pytest.raises(NotImplementedError, match="bincount"):
        TorchMetric(MulticlassAccuracy(CLASSES, validate_args=False), device="meta").update(output)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for make in (MulticlassAccuracy, MulticlassF1Score):
            metric = TorchMetric(make(CLASSES, validate_args=False), device="meta")
            metric.update(output)
            assert metric.metric.update_count == 1
    finally:
        torch.use_deterministic_algorithms(before)


def test_inputs_move_to_the_metrics_device() -> None:
    metric = TorchMetric(MeanSquaredError(), device="meta")
    assert metric.metric.sum_squared_error.device.type == "meta"
    metric.update((torch.ones(3), torch.zeros(3)))  # CPU inputs, moved to meta: no mixed-device error
    assert metric.metric.update_count == 1
    kept = MeanSquaredError()
    assert TorchMetric(kept).metric is kept
    assert kept.device.type == "cpu"  # no device: left where it is


def test_compute_before_update_is_not_computable() -> None:
    metric = TorchMetric(MeanSquaredError())
    with pytest.raises(ours.NotComputableError, match=r"TorchMetric\(MeanSquaredError\) must be updated"):
        metric.compute()
    metric.update((torch.ones(2), torch.zeros(2)))
    assert float(metric.compute()) == 1.0
    metric.reset()
    with pytest.raises(ours.NotComputableError):
        metric.compute()


def test_bad_input_names_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"wraps a torchmetrics.Metric or torchmetrics.MetricCollection.*got 42"):
        TorchMetric(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a metric of ignite_async is attached as it is"):
        TorchMetric(ours.Accuracy())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="required_output_keys must be a tuple of str or None"):
        TorchMetric(MeanSquaredError(), required_output_keys=["y_pred", "y"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="output_transform must be callable"):
        TorchMetric(MeanSquaredError(), 42)  # type: ignore[arg-type]


def test_without_torchmetrics_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['torchmetrics'] = None\n"
        "import ignite_async.metrics.torchmetric as t\n"  # importing works: only using it needs the extra
        "try:\n    t.TorchMetric(object())\n"
        "except ImportError as e:\n    print('ImportError:', e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "ImportError: TorchMetric needs torchmetrics" in result.stdout
    assert "pip install 'ignite-async[metrics]'" in result.stdout


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("mode", [None, "flatten", "named", "both"])
async def test_a_collection_publishes_by_metrics_result_mode(background: bool, mode: str | None) -> None:
    # None keeps a collection's values one per member; the other modes go through the shared publish().
    collection = MetricCollection({"acc": MulticlassAccuracy(CLASSES), "f1": MulticlassF1Score(CLASSES)})
    reference = collection.clone()
    engine = Engine(lambda e, b: b)
    TorchMetric(collection, background=background, metrics_result_mode=mode).attach(engine, "val")  # type: ignore[arg-type]
    state = await engine.run(batches())
    for p, y in batches():
        reference.update(p, y)
    expected = {k: float(v) for k, v in reference.compute().items()}
    keys = {None: ["acc", "f1"], "flatten": ["acc", "f1"], "named": ["val"], "both": ["acc", "f1", "val"]}[mode]
    assert sorted(state.metrics) == keys
    if mode != "named":
        assert {k: state.metrics[k] for k in expected} == pytest.approx(expected)
        assert all(isinstance(state.metrics[k], float) for k in expected)  # numbers, as a single metric's
    if mode in ("named", "both"):
        assert state.metrics["val"] == pytest.approx(expected)


def test_a_bad_metrics_result_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="metrics_result_mode"):
        TorchMetric(MeanMetric(), metrics_result_mode="nested")  # type: ignore[arg-type]
