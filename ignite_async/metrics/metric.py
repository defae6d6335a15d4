"""The metric protocol: ``reset``/``update``/``compute``, attached to an engine by a usage.

Accumulators stay on the tensors' device as tensors and are read back only in ``compute()``: no
per-iteration device synchronisation (``.item()`` in ``update`` is what costs pytorch-ignite users ~20% on
GPUs).
"""

from __future__ import annotations

import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ignite_async.distributed.comm import all_reduce, get_world_size
from ignite_async.engine import Engine, Events

__all__ = [
    "BatchFiltered",
    "BatchWise",
    "EpochWise",
    "Metric",
    "MetricUsage",
    "NotComputableError",
    "RunningBatchWise",
    "RunningEpochWise",
    "SingleEpochRunningBatchWise",
]


# Set while an attached metric updates on an engine's output: (engine, run, iteration). None for a direct
# update() call, whose tensors may have been rewritten in ways the version counter does not see.
_update_scope: tuple[int, float | None, int] | None = None


class NotComputableError(RuntimeError):
    """``compute()`` was called before any ``update()`` (pytorch-ignite's exception of the same name)."""


class MetricUsage:
    """When a metric resets (``started``), updates (``iteration_completed``) and is computed (``completed``)."""

    usage_name = "usage"

    def __init__(self, started: Any, completed: Any, iteration_completed: Any) -> None:
        self.STARTED = started
        self.COMPLETED = completed
        self.ITERATION_COMPLETED = iteration_completed


class EpochWise(MetricUsage):
    """Reset each epoch, update each iteration, computed at the end of the epoch (the default)."""

    usage_name = "epoch_wise"

    def __init__(self) -> None:
        super().__init__(Events.EPOCH_STARTED, Events.EPOCH_COMPLETED, Events.ITERATION_COMPLETED)


class RunningEpochWise(EpochWise):
    """Never reset during the run; updated and computed at the end of each epoch."""

    usage_name = "running_epoch_wise"

    def __init__(self) -> None:
        MetricUsage.__init__(self, Events.STARTED, Events.EPOCH_COMPLETED, Events.EPOCH_COMPLETED)


class BatchWise(MetricUsage):
    """Reset, updated and computed at each iteration."""

    usage_name = "batch_wise"

    def __init__(self) -> None:
        super().__init__(Events.ITERATION_STARTED, Events.ITERATION_COMPLETED, Events.ITERATION_COMPLETED)


class RunningBatchWise(BatchWise):
    """Never reset during the run; updated and computed at each iteration."""

    usage_name = "running_batch_wise"

    def __init__(self) -> None:
        MetricUsage.__init__(self, Events.STARTED, Events.ITERATION_COMPLETED, Events.ITERATION_COMPLETED)


class SingleEpochRunningBatchWise(BatchWise):
    """Reset each epoch; updated and computed at each iteration."""

    usage_name = "single_epoch_running_batch_wise"

    def __init__(self) -> None:
        MetricUsage.__init__(self, Events.EPOCH_STARTED, Events.ITERATION_COMPLETED, Events.ITERATION_COMPLETED)


class BatchFiltered(MetricUsage):
    """Like :class:`EpochWise`, but updated only on iterations that pass a filter (``every=n``, ...)."""

    usage_name = "batch_filtered"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(Events.EPOCH_STARTED, Events.EPOCH_COMPLETED, Events.ITERATION_COMPLETED(*args, **kwargs))


_USAGES: dict[str, type[EpochWise] | type[BatchWise]] = {
    u.usage_name: u for u in (EpochWise, RunningEpochWise, BatchWise, RunningBatchWise, SingleEpochRunningBatchWise)
}


def _usage(usage: str | MetricUsage) -> MetricUsage:
    if isinstance(usage, MetricUsage):
        return usage
    if isinstance(usage, str) and usage in _USAGES:
        return _USAGES[usage]()
    raise ValueError(f"usage must be a MetricUsage or one of {sorted(_USAGES)}, got {usage!r}")


class Metric(ABC):
    """Base of every metric: ``reset()``, ``update(output)``, ``compute()``, and :meth:`attach`.

    ``output_transform`` turns the engine's output into what ``update`` takes (e.g. ``(y_pred, y)``); a dict
    output is turned into a tuple by ``required_output_keys``. As in pytorch-ignite, items after ``(y_pred, y)``
    (an evaluator's ``(y_pred, y, x)``) and keys beyond ``required_output_keys`` are ignored.
    """

    required_output_keys: tuple[str, ...] | None = ("y_pred", "y")
    _optional_output_keys: tuple[str, ...] = ()
    # What reset() creates and update() accumulates: what state_dict() saves.
    _state_attrs: tuple[str, ...] = ()

    def __init__(
        self, output_transform: Callable[[Any], Any] = lambda x: x, device: str | torch.device = "cpu"
    ) -> None:
        if not callable(output_transform):
            raise TypeError(f"output_transform must be callable, got {output_transform!r}")
        self._output_transform = output_transform
        self._device = torch.device(device)
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Forget everything accumulated."""

    @abstractmethod
    def update(self, output: Any) -> None:
        """Accumulate one batch's ``output``."""

    @abstractmethod
    def compute(self) -> Any:
        """The metric's value from what was accumulated.

        :raises NotComputableError: before any update.
        """

    def state_dict(self) -> dict[str, Any]:
        """What was accumulated since the last reset, copied, for a checkpoint.

        >>> import torch
        >>> from ignite_async.metrics import MeanSquaredError
        >>> before = MeanSquaredError()
        >>> before.update((torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])))
        >>> after = MeanSquaredError()
        >>> after.load_state_dict(before.state_dict())
        >>> after.compute()
        5.0
        """
        return {name: _copy(getattr(self, name)) for name in self._state_attrs}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue from ``state_dict`` (from :meth:`state_dict`); tensors move to this metric's device.

        :raises ValueError: if an accumulator is missing from ``state_dict``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict takes a mapping, got {type(state_dict).__name__}")
        missing = [name for name in self._state_attrs if name not in state_dict]
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state lacks {missing}")
        for name in self._state_attrs:
            setattr(self, name, _copy(state_dict[name], self._device))

    # ------------------------------------------------------------------ attached to an engine

    def started(self, engine: Engine) -> None:
        self.reset()

    def iteration_completed(self, engine: Engine) -> None:
        global _update_scope
        output = self._output_transform(engine.state.output)
        if not isinstance(output, tuple) and isinstance(output, Mapping):
            output = self._from_mapping(output)
        # Metrics updating on one engine's output at one iteration of one run may share work (the argmax).
        _update_scope = (id(engine), engine._run_started_at, engine.state.iteration)
        # Updates build no autograd graph. Grad mode is switched only when an input could build one (a
        # switch costs as much as a small update), and set directly (a no_grad() context costs more).
        grad = torch.is_grad_enabled() and _may_require_grad(output)
        if grad:
            torch.set_grad_enabled(False)
        try:
            self.update(output)
        finally:
            _update_scope = None
            if grad:
                torch.set_grad_enabled(True)

    def _from_mapping(self, output: Mapping[str, Any]) -> tuple[Any, ...]:
        keys = self.required_output_keys
        if keys is None:
            raise TypeError(f"{type(self).__name__} cannot take a mapping output; give output_transform")
        missing = [k for k in keys if k not in output]
        if missing:
            raise ValueError(f"{type(self).__name__} needs the output keys {missing}; got {sorted(output)}")
        return tuple(output[k] for k in keys) + tuple(output[k] for k in self._optional_output_keys if k in output)

    def completed(self, engine: Engine, name: str) -> None:
        publish(engine, name, self.compute())

    def attach(self, engine: Engine, name: str, usage: str | MetricUsage = "epoch_wise") -> None:
        """Compute this metric on ``engine`` per ``usage``; the value lands in ``engine.state.metrics[name]``.

        >>> import asyncio, torch
        >>> from ignite_async import Engine
        >>> from ignite_async.metrics import Accuracy
        >>> evaluator = Engine(lambda e, batch: batch)
        >>> Accuracy().attach(evaluator, "accuracy")
        >>> batches = [(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]))]
        >>> asyncio.run(evaluator.run(batches)).metrics["accuracy"]
        0.5
        """
        u = _usage(usage)
        if not engine.has_event_handler(self.started, u.STARTED):
            engine.add_event_handler(u.STARTED, self.started)
        if not engine.has_event_handler(self.iteration_completed, u.ITERATION_COMPLETED):
            engine.add_event_handler(u.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(u.COMPLETED, self.completed, name)

    def detach(self, engine: Engine, usage: str | MetricUsage = "epoch_wise") -> None:
        u = _usage(usage)
        for handler, event in (
            (self.completed, u.COMPLETED),
            (self.started, u.STARTED),
            (self.iteration_completed, u.ITERATION_COMPLETED),
        ):
            if engine.has_event_handler(handler, event):
                engine.remove_event_handler(handler, event)

    def is_attached(self, engine: Engine, usage: str | MetricUsage = "epoch_wise") -> bool:
        return engine.has_event_handler(self.completed, _usage(usage).COMPLETED)

    # ------------------------------------------------------------------ arithmetic builds MetricsLambda

    def _lambda(self, f: Callable[..., Any], *args: Any) -> Any:
        from ignite_async.metrics.metrics_lambda import MetricsLambda

        return MetricsLambda(f, *args)

    def __add__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x + y, self, other)

    def __radd__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x + y, other, self)

    def __sub__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x - y, self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x - y, other, self)

    def __mul__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x * y, self, other)

    def __rmul__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x * y, other, self)

    def __truediv__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x / y, self, other)

    def __rtruediv__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x / y, other, self)

    def __floordiv__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x // y, self, other)

    def __mod__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x % y, self, other)

    def __pow__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x**y, self, other)

    def __rpow__(self, other: Any) -> Any:
        return self._lambda(lambda x, y: x**y, other, self)

    def __getitem__(self, index: Any) -> Any:
        return self._lambda(lambda x: x[index], self)

    def __getattr__(self, name: str) -> Any:
        """``metric.mean()``, ``metric.sum(dim=0)``...: a tensor method applied to the value, as a MetricsLambda."""
        if name.startswith("_") or not hasattr(torch.Tensor, name):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._lambda(lambda value: getattr(value, name)(*args, **kwargs), self)

        return method


def _may_require_grad(output: Any) -> bool:
    """False only for tensors (alone or in a flat tuple or list, with numbers) that do not require grad."""
    if type(output) is tuple and len(output) == 2:  # (y_pred, y), the usual case, without a generator
        a, b = output
        if type(a) is torch.Tensor and type(b) is torch.Tensor:
            return a.requires_grad or b.requires_grad
    if isinstance(output, torch.Tensor):
        return output.requires_grad
    if isinstance(output, (tuple, list)):
        return not all((type(v) is torch.Tensor and not v.requires_grad) or isinstance(v, (int, float)) for v in output)
    return not isinstance(output, (int, float))


def sync_all_reduce(*attrs: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make ``compute`` see ``attrs`` summed over all ranks of a distributed job (see ``ignite_async.distributed``).

    The sums are computed into copies that ``compute`` sees; the rank's own accumulators are put back after,
    so later updates and computes stay right. Without a process group, ``compute`` runs as it is.
    """

    def decorator(compute: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(compute)
        def synced(self: Metric, *args: Any, **kwargs: Any) -> Any:
            if get_world_size() == 1:
                return compute(self, *args, **kwargs)
            own = {name: getattr(self, name) for name in attrs}
            try:
                for name, value in own.items():
                    setattr(self, name, all_reduce(value))
                return compute(self, *args, **kwargs)
            finally:
                for name, value in own.items():
                    setattr(self, name, value)

        return synced

    return decorator


def publish(engine: Engine, name: str, result: Any) -> None:
    """Put a computed value into ``engine.state.metrics`` (a mapping's items too, a 0-d tensor as a number)."""
    if isinstance(result, Mapping):
        engine.state.metrics.update(result)
    if isinstance(result, torch.Tensor) and result.ndim == 0:
        result = result.item()
    engine.state.metrics[name] = result


def select_metrics(
    metrics: Mapping[str, Any], names: Sequence[str] | str | None, warned: set[str], owner: str
) -> dict[str, Any]:
    """The values of ``metrics`` (an engine's ``state.metrics``) named in ``names`` (``"all"``: every one).

    The one lookup of a ``metric_names`` argument (loggers, ProgressBar). A name that is missing is skipped
    with a ``UserWarning`` in pytorch-ignite's words, so the run goes on and the rest are shown, but only
    once per name for each handler (``warned`` is the handler's own set), not at every firing.
    """
    if names == "all":
        return dict(metrics)
    selected: dict[str, Any] = {}
    for name in names or ():
        if name in metrics:
            selected[name] = metrics[name]
        elif name not in warned:
            warned.add(name)
            warnings.warn(
                f"Provided metric name '{name}' is missing in engine's state metrics: {list(metrics)} "
                f"({owner} goes on without it, and warns about it only this once)",
                UserWarning,
                stacklevel=2,
            )
    return selected


def _copy(value: Any, device: torch.device | None = None) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to(device or value.device, copy=True)
    if isinstance(value, list):
        return [_copy(v, device) for v in value]
    return value


def check_pair(metric: Metric, output: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y_pred, y)`` as tensors, or a ValueError naming the metric.

    Items after the first two (``(y_pred, y, x)`` from a supervised evaluator's ``output_transform``) are
    ignored, as pytorch-ignite's ``update`` ignores them by reading only ``output[0]`` and ``output[1]``.
    """
    if not isinstance(output, (tuple, list)) or len(output) < 2:
        got = f"{len(output)} items" if isinstance(output, (tuple, list)) else type(output).__name__
        raise ValueError(f"{type(metric).__name__}.update takes (y_pred, y) or (y_pred, y, ...), got {got}")
    y_pred, y = output[0], output[1]
    if not isinstance(y_pred, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{type(metric).__name__}.update takes tensors, got {type(y_pred)} and {type(y)}")
    return y_pred.detach(), y.detach()
