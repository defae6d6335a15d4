"""EpochMetric, ROC_AUC, AveragePrecision and Frequency beyond their values (see test_metrics.py for those)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from ignite_async import Engine, Events
from ignite_async.metrics import (
    ROC_AUC,
    AveragePrecision,
    EpochMetric,
    EpochMetricWarning,
    Frequency,
    NotComputableError,
)

pytestmark = pytest.mark.anyio

SCORES = [(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))]


async def test_background_compute_lets_the_next_epoch_start_and_publishes_in_order() -> None:
    second_computed = threading.Event()

    def slow_first(y_pred: torch.Tensor, y: torch.Tensor) -> float:
        epoch = int(y_pred[0])
        if epoch == 1:
            # Only returns once epoch 2 has run and been computed: inline, this would never happen.
            assert second_computed.wait(timeout=30), "epoch 2 never ran while epoch 1 was being computed"
        else:
            second_computed.set()
        return float(epoch)

    # Each epoch's predictions are its number, so the value says which epoch it is.
    engine = Engine(lambda e, b: (torch.tensor([float(e.state.epoch)]), torch.tensor([0.0])))
    EpochMetric(slow_first, check_compute_fn=False, background=True).attach(engine, "m")
    at_epoch_end: list[object] = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: at_epoch_end.append(e.state.metrics.get("m")))
    at_completed: list[object] = []
    engine.add_event_handler(Events.COMPLETED, lambda e: at_completed.append(e.state.metrics["m"]))
    state = await engine.run([0], max_epochs=2)
    assert at_epoch_end == [None, None]  # not ready at its own EPOCH_COMPLETED
    assert at_completed == [2.0]  # epoch 2's value, though epoch 1's was computed last
    assert state.metrics["m"] == 2.0


async def test_background_roc_auc_equals_inline_and_failures_fail_the_run() -> None:
    values = {}
    for background in (False, True):
        evaluator = Engine(lambda e, b: b)
        ROC_AUC(background=background).attach(evaluator, "auc")
        AveragePrecision(background=background).attach(evaluator, "ap")
        values[background] = (await evaluator.run(SCORES * 3)).metrics
    assert values[True] == values[False] == {"auc": 0.75, "ap": pytest.approx(0.8333333333)}

    def broken(y_pred: torch.Tensor, y: torch.Tensor) -> float:
        raise ZeroDivisionError("no samples of class 1")

    evaluator = Engine(lambda e, b: b)
    EpochMetric(broken, check_compute_fn=False, background=True).attach(evaluator, "m")
    with pytest.raises(ZeroDivisionError, match="no samples of class 1"):
        await evaluator.run(SCORES)


def test_epoch_metric_checks_its_input() -> None:
    with pytest.raises(TypeError, match="compute_fn must be callable"):
        EpochMetric(42)  # type: ignore[arg-type]
    metric = EpochMetric(lambda p, y: 0.0)
    with pytest.raises(ValueError, match=r"y_pred must be \(N,\) or \(N, T\), got \(2, 3, 4\)"):
        metric.update((torch.zeros(2, 3, 4), torch.zeros(2)))
    with pytest.raises(ValueError, match=r"as many rows, got \(2,\) and \(3,\)"):
        metric.update((torch.zeros(2), torch.zeros(3)))
    metric.update((torch.zeros(2, 1), torch.zeros(2)))  # (N, 1) is squeezed
    with pytest.raises(ValueError, match=r"y_pred changed from torch.float32 \(\) per row to torch.int64"):
        metric.update((torch.zeros(2, dtype=torch.long), torch.zeros(2)))
    with pytest.warns(EpochMetricWarning, match="fails on the first batch"):
        EpochMetric(lambda p, y: 1 / 0).update((torch.zeros(2), torch.zeros(2)))
    with pytest.raises(NotComputableError):
        AveragePrecision().compute()
    with pytest.raises(ValueError, match=r"same shape, \(N,\) or \(N, labels\), got \(3, 2\) and \(3,\)"):
        ROC_AUC().update((torch.rand(3, 2), torch.tensor([0, 1, 1])))
    with pytest.raises(ValueError, match="AveragePrecision: y must be 0s and 1s"):
        AveragePrecision().update((torch.rand(3), torch.tensor([0, 2, 1])))
    one_class = ROC_AUC()
    one_class.update((torch.rand(3), torch.ones(3)))
    with pytest.warns(UserWarning, match="only one class is present"):
        assert torch.isnan(torch.tensor(one_class.compute()))


async def test_frequency_counts_per_second_each_epoch() -> None:
    def step(engine: Engine, batch: list[int]) -> int:
        time.sleep(0.01)  # each step takes at least 10 ms, so the rate is at most len(batch) / 10 ms
        return len(batch)

    engine = Engine(step)
    frequency = Frequency()
    frequency.attach(engine, "samples/s", event_name=Events.EPOCH_COMPLETED)
    assert frequency.is_attached(engine)
    rates: list[int] = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: rates.append(e.state.metrics["samples/s"]))
    started = time.perf_counter()
    await engine.run([[0] * 8] * 5, max_epochs=2)
    elapsed = time.perf_counter() - started
    assert len(rates) == 2
    for rate in rates:
        assert isinstance(rate, int)
        assert 40 / elapsed - 1 <= rate <= 40 / 0.05  # restarted each epoch: 40 samples per epoch
    frequency.detach(engine)
    assert not frequency.is_attached(engine)
