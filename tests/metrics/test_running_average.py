"""RunningAverage and Average: pytorch-ignite 0.5.5's values at every event."""

from __future__ import annotations

from typing import Any

import ignite.metrics as ig
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

import ignite_async.metrics as ours
from ignite_async import Engine, Events

pytestmark = pytest.mark.anyio


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [(torch.rand(6, 4, generator=g), torch.randint(0, 4, (6,), generator=g)) for _ in range(5)]


CASES: dict[str, tuple[Any, Any]] = {
    "of the loss": (lambda lib: lib.RunningAverage(output_transform=lambda o: float(o[0].sum()), alpha=0.9), None),
    "of the loss, per epoch": (
        lambda lib: lib.RunningAverage(output_transform=lambda o: float(o[0].sum()), alpha=0.7),
        "single_epoch_running_batch_wise",
    ),
    "of a tensor output": (lambda lib: lib.RunningAverage(output_transform=lambda o: o[0].mean(dim=0)), None),
    "of accuracy": (lambda lib: lib.RunningAverage(src=lib.Accuracy(), alpha=0.8), None),
    "plain average of scalars": (lambda lib: lib.Average(output_transform=lambda o: float(o[0].max())), "epoch_wise"),
    "plain average of rows": (lambda lib: lib.Average(output_transform=lambda o: o[0]), "epoch_wise"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_values_at_every_event_equal_ignites(case: str) -> None:
    make, usage = CASES[case]

    def trace(lib: Any, engine: Any, events: Any) -> list[Any]:
        metric = make(lib)
        if usage is None:
            metric.attach(engine, "m")
        else:
            metric.attach(engine, "m", usage=usage)
        seen: list[Any] = []
        for event in (events.ITERATION_COMPLETED, events.EPOCH_COMPLETED):
            engine.add_event_handler(event, lambda e: seen.append(e.state.metrics.get("m")))
        return seen

    ref = IgniteEngine(lambda e, b: b)
    theirs = trace(ig, ref, IgniteEvents)
    ref.run(batches(), max_epochs=2)
    engine = Engine(lambda e, b: b)
    mine = trace(ours, engine, Events)
    await engine.run(batches(), max_epochs=2)

    def flat(values: list[Any]) -> list[float]:
        out: list[float] = []
        for v in values:
            out += v.flatten().tolist() if isinstance(v, torch.Tensor) else [float("nan") if v is None else v]
        return out

    assert flat(mine) == pytest.approx(flat(theirs), rel=1e-6, nan_ok=True)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="alpha must be in"):
        ours.RunningAverage(output_transform=lambda x: x, alpha=0.0)
    with pytest.raises(ValueError, match=r"give src .* or output_transform"):
        ours.RunningAverage()
    with pytest.raises(ValueError, match="not both"):
        ours.RunningAverage(src=ours.Accuracy(), output_transform=lambda x: x)
    with pytest.raises(TypeError, match="src must be a Metric"):
        ours.RunningAverage(src=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="numbers or tensors"):
        ours.Average().update("high")
    with pytest.raises(ours.NotComputableError):
        ours.Average().compute()


def test_state_dict_carries_the_sources_partial_state() -> None:
    first = (torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]))
    second = (torch.tensor([[0.3, 0.7], [0.6, 0.4], [0.1, 0.9]]), torch.tensor([1, 0, 0]))
    whole, saved = (ours.RunningAverage(ours.Accuracy(), alpha=0.5) for _ in range(2))
    for metric in (whole, saved):  # as attached: the engine updates the source, then the average
        metric.src.update(first)
        metric.update(None)
        metric.src.update(second)  # saved between the source's update and the average's
    restored = ours.RunningAverage(ours.Accuracy(), alpha=0.5)
    restored.load_state_dict(saved.state_dict())
    whole.update(None)
    restored.update(None)
    assert restored.compute() == whole.compute() == 0.5 * 0.5 + 0.5 * (2 / 3)
    with pytest.raises(ValueError, match="lacks its source metric"):
        ours.RunningAverage(ours.Accuracy()).load_state_dict({"_value": 1.0})
