"""Several metrics updated on one output and computed together, as one dict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ignite_async.metrics.metric import Metric

__all__ = ["MetricGroup"]


class MetricGroup(Metric):
    """``{name: metric.compute()}`` of ``metrics``, each updated with its own ``output_transform`` applied to
    the group's output. Attached, its items land in ``state.metrics`` and the dict under its name.

    :raises TypeError: if ``metrics`` is not a mapping of names to metrics.

    >>> import torch
    >>> from ignite_async.metrics import MeanAbsoluteError, MeanSquaredError
    >>> group = MetricGroup({"mae": MeanAbsoluteError(), "mse": MeanSquaredError()})
    >>> group.update((torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])))
    >>> group.compute()
    {'mae': 2.0, 'mse': 5.0}
    """

    def __init__(
        self,
        metrics: dict[str, Metric],
        output_transform: Callable[[Any], Any] = lambda x: x,
        skip_unrolling: bool = False,
    ) -> None:
        if not isinstance(metrics, Mapping) or not all(
            isinstance(k, str) and isinstance(m, Metric) for k, m in metrics.items()
        ):
            raise TypeError(f"MetricGroup takes a dict of names to metrics, got {metrics!r}")
        self.metrics = dict(metrics)
        super().__init__(output_transform, skip_unrolling=skip_unrolling)

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()

    def update(self, output: Any) -> None:
        for metric in self.metrics.values():
            metric.update(metric._output_transform(output))

    def compute(self) -> dict[str, Any]:
        return {name: metric.compute() for name, metric in self.metrics.items()}

    def state_dict(self) -> dict[str, Any]:
        """Each member's state, by its name."""
        return {name: metric.state_dict() for name, metric in self.metrics.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        missing = [name for name in self.metrics if name not in state_dict]
        if missing:
            raise ValueError(f"MetricGroup.load_state_dict: the state lacks the metrics {missing}")
        for name, metric in self.metrics.items():
            metric.load_state_dict(state_dict[name])
