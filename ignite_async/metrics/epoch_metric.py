"""Metrics over a whole epoch's predictions, optionally computed in the background."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ignite_async._threads import run_sync
from ignite_async.distributed.comm import all_gather
from ignite_async.engine import Engine
from ignite_async.engine.background import TaskHandle
from ignite_async.metrics.metric import Metric, NotComputableError, ResultMode, check_pair, publish

__all__ = ["EpochMetric", "EpochMetricWarning"]


class EpochMetricWarning(UserWarning):
    """``compute_fn`` failed on the first batch: it will probably fail at the end of the epoch."""


class EpochMetric(Metric):
    """``compute_fn(all_predictions, all_targets)`` over everything seen since the last reset.

    ``y_pred`` and ``y`` are ``(N,)`` or ``(N, T)``; ``(N, 1)`` is squeezed to ``(N,)``. Batches are kept
    (copied to ``device``) and concatenated in ``compute()``.

    With ``background=True``, an attached metric hands the epoch's tensors to a worker thread and the
    next epoch starts at once: the value appears in ``state.metrics[name]`` when ready (values are
    published in epoch order), and the engine waits for it before ``COMPLETED``, so an evaluator's
    ``run()`` returns with every value in place. Handlers on the same ``EPOCH_COMPLETED`` do not see it yet.

    >>> import torch
    >>> metric = EpochMetric(lambda p, y: float((p.round() == y).float().mean()))
    >>> metric.update((torch.tensor([0.9, 0.2]), torch.tensor([1.0, 1.0])))
    >>> metric.update((torch.tensor([0.1]), torch.tensor([0.0])))
    >>> round(metric.compute(), 4)
    0.6667
    """

    _state_attrs = ("_predictions", "_targets")

    def __init__(
        self,
        compute_fn: Callable[[torch.Tensor, torch.Tensor], Any],
        output_transform: Callable[[Any], Any] = lambda x: x,
        check_compute_fn: bool = True,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        background: bool = False,
        *,
        metrics_result_mode: ResultMode = "both",
    ) -> None:
        if not callable(compute_fn):
            raise TypeError(f"compute_fn must be callable, got {compute_fn!r}")
        self.compute_fn = compute_fn
        self._check_compute_fn = check_compute_fn
        self._background = background
        self._pending: TaskHandle | None = None
        super().__init__(output_transform, device, skip_unrolling, metrics_result_mode)

    def reset(self) -> None:
        self._predictions: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._result: Any = None

    def update(self, output: Any) -> None:
        y_pred, y = check_pair(self, output)
        name = type(self).__name__
        for label, t in (("y_pred", y_pred), ("y", y)):
            if t.ndim not in (1, 2):
                raise ValueError(f"{name}: {label} must be (N,) or (N, T), got {tuple(t.shape)}")
        if y_pred.ndim == 2 and y_pred.shape[1] == 1:
            y_pred = y_pred.squeeze(-1)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.squeeze(-1)
        if y_pred.shape[0] != y.shape[0]:
            shapes = f"{tuple(y_pred.shape)} and {tuple(y.shape)}"
            raise ValueError(f"{name}: y_pred and y must have as many rows, got {shapes}")
        if self._predictions:
            for label, t, kept in (("y_pred", y_pred, self._predictions[-1]), ("y", y, self._targets[-1])):
                if t.dtype != kept.dtype or t.shape[1:] != kept.shape[1:]:
                    raise ValueError(
                        f"{name}: {label} changed from {kept.dtype} {tuple(kept.shape[1:])} per row to "
                        f"{t.dtype} {tuple(t.shape[1:])} between updates"
                    )
        self._keep(y_pred, y)

    def _keep(self, y_pred: torch.Tensor, y: torch.Tensor) -> None:
        """Keep a checked batch (copied to ``device``); after the first one, try ``compute_fn`` on it if asked."""
        self._predictions.append(y_pred.to(self._device, copy=True))
        self._targets.append(y.to(self._device, copy=True))
        self._result = None
        if len(self._predictions) == 1 and self._check_compute_fn:
            # As pytorch-ignite: a compute_fn that fails on the first batch will probably fail at the end.
            try:
                self.compute_fn(self._predictions[0], self._targets[0])
            except Exception as e:
                name = type(self).__name__
                # stacklevel 3: the warning names the caller of update(), as before this was shared.
                warnings.warn(f"{name}: compute_fn fails on the first batch: {e!r}", EpochMetricWarning, stacklevel=3)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._result = None  # computed from the rows it had before

    def _collected(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._predictions:
            raise NotComputableError(f"{type(self).__name__} must have at least one example before it can be computed")
        # Every rank's rows, in rank order, on every rank (a collective: called in event order, never in a task).
        return all_gather(torch.cat(self._predictions)), all_gather(torch.cat(self._targets))

    def compute(self) -> Any:
        if self._result is None:
            self._result = self.compute_fn(*self._collected())
        return self._result

    def completed(self, engine: Engine, name: str) -> None:
        if not self._background:
            return super().completed(engine, name)
        # Collected here, in event order; only compute_fn runs in the worker thread.
        y_pred, y = self._collected()
        self._pending = engine.spawn(self._compute_and_publish, engine, name, y_pred, y, self._pending)

    async def _compute_and_publish(
        self, engine: Engine, name: str, y_pred: torch.Tensor, y: torch.Tensor, previous: TaskHandle | None
    ) -> None:
        # Waited for no longer than the grace period when the run is cancelled (a thread cannot be stopped).
        result = await run_sync(self.compute_fn, y_pred, y, grace=engine.cancel_grace_period)
        if previous is not None:
            await previous.wait()
        publish(engine, name, result, self._metrics_result_mode)
