"""``skip_unrolling`` (and ``metrics_result_mode``) on every built-in metric, where pytorch-ignite 0.5.5's class of
the same name takes it: the same position and default, honoured by the constructor; and, for representative
metrics, a list-of-pairs output unrolled into one update per pair (``skip_unrolling=False``) or handed to
``update`` as it is (``True``), with pytorch-ignite's ``state.metrics``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

import ignite.metrics
import pytest
import torch

import ignite_async.metrics
from ignite_async import Engine
from ignite_async.metrics.metric import publish
from tests.metrics._oracle import check_attached

pytestmark = pytest.mark.anyio


def _classes(package: ModuleType) -> dict[str, type]:
    """Every public class defined in ``package`` or its submodules, by name."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and not name.startswith("_"):
                found.setdefault(name, value)
    return found


IGNITE_CLASSES = _classes(ignite.metrics)
OUR_CLASSES = _classes(ignite_async.metrics)


def _taking(keyword: str) -> list[str]:
    return sorted(n for n, c in IGNITE_CLASSES.items() if keyword in inspect.signature(c.__init__).parameters)


SKIP_UNROLLING = _taking("skip_unrolling")
RESULT_MODE = _taking("metrics_result_mode")

# The arguments without a default, per class (the rest take none).
REQUIRED: dict[str, Callable[[], dict[str, Any]]] = {
    "ConfusionMatrix": lambda: {"num_classes": 3},
    "EpochMetric": lambda: {"compute_fn": lambda p, y: 0.0},
    "Loss": lambda: {"loss_fn": torch.nn.functional.mse_loss},
    "MetricGroup": lambda: {"metrics": {"mse": ignite_async.metrics.MeanSquaredError()}},
    "MultiLabelConfusionMatrix": lambda: {"num_classes": 3},
    "NDCG": lambda: {"top_k": [1]},
    "PSNR": lambda: {"data_range": 1.0},
    "RunningAverage": lambda: {"output_transform": lambda x: x},
    "SSIM": lambda: {"data_range": 1.0},
    "VariableAccumulation": lambda: {"op": lambda acc, x: (acc, x)},
}


def _build(name: str, **kwargs: Any) -> Any:
    cls = OUR_CLASSES[name]
    if name == "MetricsLambda":  # f is positional, before *args
        return cls(lambda: 0.0, **kwargs)
    if inspect.isabstract(cls):  # Metric itself: the least a subclass defines
        cls = type("Concrete", (cls,), {"reset": lambda self: None, "update": _no_op, "compute": _no_op})
    return cls(**REQUIRED.get(name, dict)(), **kwargs)


def _no_op(self: Any, *args: Any) -> None:
    return None


def test_every_class_is_found() -> None:
    # The walk found the metrics (a failed discovery would pass the parametrized tests vacuously).
    assert len(SKIP_UNROLLING) >= 50
    assert {"Accuracy", "Loss", "MetricsLambda", "ObjectDetectionAvgPrecisionRecall", "SSIM"} <= set(SKIP_UNROLLING)
    assert {"MetricsLambda", "MutualInformation"} <= set(RESULT_MODE)


@pytest.mark.parametrize("name", SKIP_UNROLLING)
def test_skip_unrolling_as_pytorch_ignite(name: str) -> None:
    assert name in OUR_CLASSES, f"ignite_async.metrics has no {name}"
    theirs = inspect.signature(IGNITE_CLASSES[name].__init__).parameters
    ours = inspect.signature(OUR_CLASSES[name].__init__).parameters
    assert "skip_unrolling" in ours
    # The same place among the arguments (so positional calls mean the same), the same kind and default.
    assert list(ours).index("skip_unrolling") == list(theirs).index("skip_unrolling")
    assert ours["skip_unrolling"].kind == theirs["skip_unrolling"].kind
    assert ours["skip_unrolling"].default == theirs["skip_unrolling"].default
    # Handed on to Metric.__init__: the metric unrolls by it.
    assert _build(name, skip_unrolling=True)._skip_unrolling is True
    assert _build(name, skip_unrolling=False)._skip_unrolling is False
    assert _build(name)._skip_unrolling is theirs["skip_unrolling"].default


@pytest.mark.parametrize("name", RESULT_MODE)
def test_metrics_result_mode_as_pytorch_ignite(name: str) -> None:
    theirs = inspect.signature(IGNITE_CLASSES[name].__init__).parameters
    ours = inspect.signature(OUR_CLASSES[name].__init__).parameters
    assert list(ours).index("metrics_result_mode") == list(theirs).index("metrics_result_mode")
    assert ours["metrics_result_mode"].default == theirs["metrics_result_mode"].default == "both"
    assert _build(name, metrics_result_mode="flatten")._metrics_result_mode == "flatten"
    with pytest.raises(ValueError, match="metrics_result_mode"):
        _build(name, metrics_result_mode="nested")


def _pairs(kind: str, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One batch as a two-headed model gives it: ``([y_pred_1, y_pred_2], [y_1, y_2])``, per-sample tensors
    that unrolling gives a batch dimension of 1."""
    g = torch.Generator().manual_seed(seed)
    if kind == "multiclass":
        return [torch.rand(4, generator=g) for _ in range(2)], [torch.randint(0, 4, (), generator=g) for _ in range(2)]
    if kind == "binary":
        return [torch.randint(0, 2, (3,), generator=g) for _ in range(2)], [
            torch.randint(0, 2, (3,), generator=g) for _ in range(2)
        ]
    return [torch.randn(3, generator=g) for _ in range(2)], [torch.randn(3, generator=g) for _ in range(2)]


def _roc_fn(y_pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((y_pred.argmax(dim=1) == y).float().mean())


# (name, arguments for both libraries, batch kind): each unrolls a list-of-pairs output by default.
UNROLLED = [
    ("Accuracy", {}, "multiclass"),
    ("Precision", {"average": "macro"}, "multiclass"),
    ("TopKCategoricalAccuracy", {"k": 2}, "multiclass"),
    ("Loss", {"loss_fn": torch.nn.functional.cross_entropy}, "multiclass"),
    ("EpochMetric", {"compute_fn": _roc_fn}, "multiclass"),
    ("Recall", {}, "binary"),
    ("MeanSquaredError", {}, "regression"),
    ("MeanPairwiseDistance", {}, "regression"),
    ("CosineSimilarity", {}, "regression"),
]


@pytest.mark.parametrize(("name", "kwargs", "kind"), UNROLLED, ids=[u[0] for u in UNROLLED])
async def test_list_of_pairs_unrolled_as_pytorch_ignite(name: str, kwargs: dict[str, Any], kind: str) -> None:
    batches = [_pairs(kind, seed) for seed in range(3)]

    def make(ours: bool) -> Any:
        return (OUR_CLASSES if ours else IGNITE_CLASSES)[name](**kwargs, skip_unrolling=False)

    await check_attached(make, batches)


def _two_head_loss(y_pred: list[torch.Tensor], y: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.nn.functional.mse_loss(p, t) for p, t in zip(y_pred, y, strict=True)) / len(y_pred)


async def test_skip_unrolling_hands_the_lists_to_update_as_pytorch_ignite() -> None:
    # pytorch-ignite's docstring case: a two-headed model's loss over both heads, batches of 5 per head.
    g = torch.Generator().manual_seed(7)
    batches = [([torch.randn(5, 2, generator=g)] * 2, [torch.randn(5, 2, generator=g)] * 2) for _ in range(3)]

    def make(ours: bool) -> Any:
        cls = (OUR_CLASSES if ours else IGNITE_CLASSES)["Loss"]
        return cls(_two_head_loss, batch_size=lambda y: y[0].shape[0], skip_unrolling=True)

    await check_attached(make, batches)
    seen: list[Any] = []
    metric = ignite_async.metrics.Loss(lambda p, y: seen.append((p, y)) or torch.tensor(0.0), skip_unrolling=True)
    engine = Engine(lambda e, b: b)
    metric.attach(engine, "loss")
    await engine.run([batches[0]])
    assert len(seen) == 1  # one update, with the lists themselves
    assert seen[0][0] is batches[0][0]


async def test_skip_unrolling_false_refuses_lists_of_unequal_length() -> None:
    engine = Engine(lambda e, b: b)
    ignite_async.metrics.Accuracy().attach(engine, "accuracy")
    with pytest.raises(ValueError, match="skip_unrolling"):
        await engine.run([([torch.rand(3), torch.rand(3)], [torch.tensor(0)])])


class _Dict(ignite_async.metrics.EpochMetric):
    """A mapping result, for the publishing modes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(lambda p, y: {"low": float(y.min()), "high": float(y.max())}, check_compute_fn=False, **kwargs)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize(
    ("mode", "keys"), [("both", ["high", "low", "r"]), ("flatten", ["high", "low"]), ("named", ["r"])]
)
async def test_epoch_metric_publishes_by_its_mode(background: bool, mode: str, keys: list[str]) -> None:
    # The background path goes through the same publish() as the foreground one, with the metric's mode.
    engine = Engine(lambda e, b: b)
    _Dict(background=background, metrics_result_mode=mode).attach(engine, "r")
    state = await engine.run([(torch.zeros(2), torch.tensor([1.0, 3.0]))])
    assert sorted(state.metrics) == keys
    reference = Engine(lambda e, b: b)
    publish(reference, "r", {"low": 1.0, "high": 3.0}, mode)  # type: ignore[arg-type]
    assert state.metrics == reference.state.metrics
