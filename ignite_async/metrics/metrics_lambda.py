"""Metrics computed from other metrics: ``2 * precision * recall / (precision + recall)``, ``cm[0, 1]``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ignite_async.engine import Engine
from ignite_async.metrics.metric import Metric, MetricUsage, ResultMode, _usage

__all__ = ["MetricsLambda"]


def _value(v: Any) -> Any:
    if isinstance(v, Metric):
        v = v.compute()
    return v.cpu() if isinstance(v, torch.Tensor) else v


class MetricsLambda(Metric):
    """``f(*args, **kwargs)`` where metric arguments are replaced by their computed values.

    Attaching it attaches the metrics it depends on (once, however many lambdas share them); arithmetic and
    indexing on metrics build one. ``skip_unrolling`` and ``metrics_result_mode`` are keyword-only, as in
    pytorch-ignite (``f``'s own keyword arguments of those names cannot be passed through).

    :param f: computes the value from the computed ``args`` and ``kwargs``.
    :param skip_unrolling: kept for pytorch-ignite's signature: the metrics it depends on are updated directly.
    :param metrics_result_mode: where a mapping result goes in ``state.metrics`` (see :class:`Metric`).
    :raises TypeError: if ``f`` is not callable.
    :raises ValueError: for an unknown ``metrics_result_mode``.

    >>> import torch
    >>> from ignite_async.metrics import MeanAbsoluteError, MeanSquaredError
    >>> mse, mae = MeanSquaredError(), MeanAbsoluteError()
    >>> blend = (mse + mae) / 2
    >>> blend.update((torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])))
    >>> blend.compute()
    2.0
    """

    required_output_keys = None

    def __init__(
        self,
        f: Callable[..., Any],
        *args: Any,
        skip_unrolling: bool = False,
        metrics_result_mode: ResultMode = "both",
        **kwargs: Any,
    ) -> None:
        if not callable(f):
            raise TypeError(f"MetricsLambda needs a callable, got {f!r}")
        self.function = f
        self.args = list(args)
        self.kwargs = kwargs
        self._attached_to: Engine | None = None
        super().__init__(skip_unrolling=skip_unrolling, metrics_result_mode=metrics_result_mode)

    def _dependencies(self) -> list[Metric]:
        return [m for m in itertools.chain(self.args, self.kwargs.values()) if isinstance(m, Metric)]

    def reset(self) -> None:
        for metric in self._dependencies():
            metric.reset()

    def update(self, output: Any) -> None:
        if self._attached_to is not None:
            raise ValueError("MetricsLambda is attached to an engine: its metrics are updated by it, not by update()")
        for metric in self._dependencies():
            metric.update(output)

    def compute(self) -> Any:
        return self.function(*[_value(a) for a in self.args], **{k: _value(v) for k, v in self.kwargs.items()})

    def state_dict(self) -> dict[str, Any]:
        """The state of each metric it depends on, by position."""
        return {str(i): metric.state_dict() for i, metric in enumerate(self._dependencies())}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        dependencies = self._dependencies()
        if sorted(state_dict) != sorted(str(i) for i in range(len(dependencies))):
            raise ValueError(f"MetricsLambda.load_state_dict: expected the states of {len(dependencies)} metrics")
        for i, metric in enumerate(dependencies):
            metric.load_state_dict(state_dict[str(i)])

    def _attach_dependencies(self, engine: Engine, usage: MetricUsage) -> None:
        self._attached_to = engine
        for metric in self._dependencies():
            if isinstance(metric, MetricsLambda):
                metric._attach_dependencies(engine, usage)
                continue
            if not engine.has_event_handler(metric.started, usage.STARTED):
                engine.add_event_handler(usage.STARTED, metric.started)
            if not engine.has_event_handler(metric.iteration_completed, usage.ITERATION_COMPLETED):
                engine.add_event_handler(usage.ITERATION_COMPLETED, metric.iteration_completed)

    def attach(self, engine: Engine, name: str, usage: str | MetricUsage = "epoch_wise") -> None:
        u = _usage(usage)
        self._attach_dependencies(engine, u)
        engine.add_event_handler(u.COMPLETED, self.completed, name)

    def detach(self, engine: Engine, usage: str | MetricUsage = "epoch_wise") -> None:
        super().detach(engine, usage)
        self._attached_to = None

    def is_attached(self, engine: Engine, usage: str | MetricUsage = "epoch_wise") -> bool:
        """Whether its value is computed on ``engine``: its own handler and every metric it depends on are
        attached (a detached source would leave it computing a stale value), as in pytorch-ignite."""
        u = _usage(usage)
        return super().is_attached(engine, u) and self._dependencies_attached(engine, u)

    def _dependencies_attached(self, engine: Engine, usage: MetricUsage) -> bool:
        for metric in self._dependencies():
            if isinstance(metric, MetricsLambda):
                if not metric._dependencies_attached(engine, usage):
                    return False
            elif not (
                engine.has_event_handler(metric.started, usage.STARTED)
                and engine.has_event_handler(metric.iteration_completed, usage.ITERATION_COMPLETED)
            ):
                return False
        return True
