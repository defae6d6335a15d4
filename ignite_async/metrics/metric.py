"""The metric protocol: ``reset``/``update``/``compute``, attached to an engine by a usage.

Accumulators stay on the tensors' device as tensors and are read back only in ``compute()``: no
per-iteration device synchronisation (``.item()`` in ``update`` is what costs pytorch-ignite users ~20% on
GPUs).
"""

from __future__ import annotations

import functools
import numbers
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

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
    "reinit__is_reduced",
    "sync_all_reduce",
]

ResultMode = Literal["flatten", "named", "both"]
_RESULT_MODES = ("flatten", "named", "both")
_REDUCE_OPS = ("SUM", "MIN", "MAX", "PRODUCT")
F = TypeVar("F", bound=Callable[..., Any])


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

    :param output_transform: the engine's output to what ``update`` takes.
    :param device: where the accumulators live.
    :param skip_unrolling: as in pytorch-ignite, an attached metric whose output is a pair of equally long
        lists of tensors or numbers (``([p1, p2], [y1, y2])``) is updated once per pair, each item with a batch
        dimension added (``(p1[None], y1[None])``). ``True`` gives ``update`` the lists as they are: for a model
        with several outputs (``y_pred = (a, b)``).
    :param metrics_result_mode: where a ``compute()`` that returns a mapping lands in ``engine.state.metrics``:
        its items under their own keys (``"flatten"``), the mapping under the metric's name (``"named"``), or
        both (``"both"``, the default).
    :raises TypeError: if ``output_transform`` is not callable.
    :raises ValueError: for an unknown ``metrics_result_mode``, or an XLA device (as pytorch-ignite).

    A metric written for pytorch-ignite ports by changing its imports: its accumulators are named by
    ``_state_dict_all_req_keys`` (or ``_state_attrs``) for :meth:`state_dict`, and :func:`sync_all_reduce` and
    :func:`reinit__is_reduced` decorate its methods as there.

    >>> import torch
    >>> from ignite_async.metrics.metric import Metric, reinit__is_reduced, sync_all_reduce
    >>> class Largest(Metric):
    ...     _state_dict_all_req_keys = ("_largest",)
    ...
    ...     @reinit__is_reduced
    ...     def reset(self):
    ...         self._largest = torch.tensor(float("-inf"))
    ...
    ...     @reinit__is_reduced
    ...     def update(self, output):
    ...         self._largest = torch.maximum(self._largest, output[0].max())
    ...
    ...     @sync_all_reduce("_largest:MAX")
    ...     def compute(self):
    ...         return self._largest.item()
    >>> largest = Largest()
    >>> largest.update((torch.tensor([1.0, 5.0]), None))
    >>> largest.compute()
    5.0
    """

    required_output_keys: tuple[str, ...] | None = ("y_pred", "y")
    _optional_output_keys: tuple[str, ...] = ()
    # What reset() creates and update() accumulates: what state_dict() saves. pytorch-ignite's name for it,
    # _state_dict_all_req_keys, is read too, so that its users' metrics keep their checkpoints.
    _state_attrs: tuple[str, ...] = ()
    _state_dict_all_req_keys: tuple[str, ...] = ()
    # Class-level defaults: some metrics written for pytorch-ignite never call Metric.__init__.
    _skip_unrolling: bool = False
    _metrics_result_mode: ResultMode = "both"
    _double_dtype: torch.dtype = torch.float64

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
        metrics_result_mode: ResultMode = "both",
    ) -> None:
        if not callable(output_transform):
            raise TypeError(f"output_transform must be callable, got {output_transform!r}")
        if not isinstance(metrics_result_mode, str) or metrics_result_mode not in _RESULT_MODES:
            raise ValueError(f"metrics_result_mode must be one of {_RESULT_MODES}, got {metrics_result_mode!r}")
        self._output_transform = output_transform
        self._device = torch.device(device)
        if self._device.type == "xla":
            raise ValueError("metrics cannot live on an XLA device (their updates are slow there): use device='cpu'")
        self._skip_unrolling = bool(skip_unrolling)
        # A subclass may have chosen its mode before calling here without passing it on: the default keeps it.
        if metrics_result_mode != "both" or "_metrics_result_mode" not in self.__dict__:
            self._metrics_result_mode = metrics_result_mode
        # MPS has no float64: accumulators in double precision use float32 there, as in pytorch-ignite.
        self._double_dtype = torch.float32 if self._device.type == "mps" else torch.float64
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

    def _state_names(self) -> tuple[str, ...]:
        if not self._state_dict_all_req_keys:
            return self._state_attrs
        return tuple(dict.fromkeys((*self._state_attrs, *self._state_dict_all_req_keys)))

    def state_dict(self) -> dict[str, Any]:
        """What was accumulated since the last reset, copied, for a checkpoint.

        Accumulators may be tensors, numbers, strings, ``None``, metrics (saved as their own state) and
        lists, tuples and dicts of those.

        :raises ValueError: if an accumulator named in ``_state_attrs``/``_state_dict_all_req_keys`` is missing.
        :raises TypeError: if an accumulator is of another type.

        >>> import torch
        >>> from ignite_async.metrics import MeanSquaredError
        >>> before = MeanSquaredError()
        >>> before.update((torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])))
        >>> after = MeanSquaredError()
        >>> after.load_state_dict(before.state_dict())
        >>> after.compute()
        5.0
        """
        state: dict[str, Any] = {}
        for name in self._state_names():
            if not _has_state(self, name):
                raise ValueError(
                    f"{type(self).__name__}: the accumulator {name!r} named in its state keys is not an attribute "
                    "(set it in reset(), or drop it from _state_attrs/_state_dict_all_req_keys)"
                )
            state[name] = _saved(getattr(self, name), f"{type(self).__name__}.{name}")
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Continue from ``state_dict`` (from :meth:`state_dict`); tensors move to this metric's device, and
        metrics among the accumulators load their own part.

        :raises ValueError: if an accumulator is missing from ``state_dict``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict takes a mapping, got {type(state_dict).__name__}")
        names = self._state_names()
        missing = [name for name in names if name not in state_dict]
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state lacks {missing}")
        for name in names:
            current = self.__dict__.get(name)
            setattr(self, name, _loaded(current, state_dict[name], self._device))

    # ------------------------------------------------------------------ attached to an engine

    def started(self, engine: Engine) -> None:
        self.reset()

    def iteration_completed(self, engine: Engine) -> None:
        global _update_scope
        output = self._output_transform(engine.state.output)
        if not isinstance(output, tuple) and isinstance(output, Mapping):
            output = self._from_mapping(output)
        pairs = None if self._skip_unrolling else _unrolled(self, output)
        # Metrics updating on one engine's output at one iteration of one run may share work (the argmax).
        _update_scope = (id(engine), engine._run_started_at, engine.state.iteration)
        # Updates build no autograd graph. Grad mode is switched only when an input could build one (a
        # switch costs as much as a small update), and set directly (a no_grad() context costs more).
        grad = torch.is_grad_enabled() and _may_require_grad(output)
        if grad:
            torch.set_grad_enabled(False)
        try:
            if pairs is None:
                self.update(output)
            else:
                for pair in pairs:
                    self.update(pair)
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
        publish(engine, name, self.compute(), self._metrics_result_mode)

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


def sync_all_reduce(*attrs: str) -> Callable[[F], F]:
    """Make ``compute`` see ``attrs`` reduced over all ranks of a distributed job (through
    :func:`ignite_async.distributed.all_reduce`): summed, or ``"name:OP"`` with OP one of SUM, MIN, MAX,
    PRODUCT (pytorch-ignite's decorator of the same name and syntax).

    The reductions are made into copies that ``compute`` sees; the rank's own accumulators are put back
    after (even if ``compute`` raises), so later updates and computes stay right. Without a process group,
    ``compute`` runs as it is.

    :raises ValueError: at decoration, for an unknown OP; at the call, in a distributed job, for a name that is
        not an attribute of the metric.
    :raises TypeError: at the call, in a distributed job, for an attribute that is not a number or a tensor.

    >>> import torch
    >>> class Extremes(Metric):
    ...     def reset(self):
    ...         self.total, self.highest = 0.0, torch.tensor(float("-inf"))
    ...     def update(self, output):
    ...         self.total += float(output.sum())
    ...         self.highest = torch.maximum(self.highest, output.max())
    ...     @sync_all_reduce("total", "highest:MAX")
    ...     def compute(self):
    ...         return self.total, self.highest.item()
    >>> extremes = Extremes()
    >>> extremes.update(torch.tensor([1.0, 4.0]))
    >>> extremes.compute()
    (5.0, 4.0)
    """
    reductions: list[tuple[str, str]] = []
    for spec in attrs:
        if not isinstance(spec, str):
            raise TypeError(f"sync_all_reduce takes attribute names ('name' or 'name:OP'), got {spec!r}")
        name, _, op = spec.partition(":")
        op = op or "SUM"
        if op not in _REDUCE_OPS:
            raise ValueError(f"sync_all_reduce({spec!r}): the reduction must be one of {_REDUCE_OPS}, got {op!r}")
        reductions.append((name, op))

    def decorator(compute: F) -> F:
        @functools.wraps(compute)
        def synced(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(self, Metric):
                raise RuntimeError(
                    f"sync_all_reduce decorates methods of Metric subclasses, not of {type(self).__name__}"
                )
            if not reductions or get_world_size() == 1:
                return compute(self, *args, **kwargs)
            own: dict[str, Any] = {}
            try:
                for name, op in reductions:
                    if name not in self.__dict__:
                        raise ValueError(f"sync_all_reduce: {type(self).__name__} has no attribute {name!r} to reduce")
                    value = self.__dict__[name]
                    if isinstance(value, bool) or not isinstance(value, (numbers.Number, torch.Tensor)):
                        raise TypeError(
                            f"sync_all_reduce reduces numbers and tensors, but {type(self).__name__}.{name} is a "
                            f"{type(value).__name__}"
                        )
                    reduced = all_reduce(value, op)  # a copy: an int stays an int, a tensor on its device
                    own.setdefault(name, value)
                    setattr(self, name, reduced)
                return compute(self, *args, **kwargs)
            finally:
                for name, value in own.items():
                    setattr(self, name, value)

        synced._decorated = True  # type: ignore[attr-defined]  # pytorch-ignite's mark
        return synced  # type: ignore[return-value]

    decorator._decorated = True  # type: ignore[attr-defined]
    return decorator


def reinit__is_reduced(method: F) -> F:
    """Mark a metric's ``reset``/``update`` as changing its accumulators (pytorch-ignite's decorator of the
    same name): after the call, a result cached in ``self._result`` (as :class:`EpochMetric` keeps) is
    dropped, so the next ``compute`` works it out afresh.

    Our metrics need it nowhere (each keeps its cache right itself); it is here so that metrics written for
    pytorch-ignite port unchanged.

    >>> class Count(Metric):
    ...     @reinit__is_reduced
    ...     def reset(self):
    ...         self.n, self._result = 0, None
    ...     @reinit__is_reduced
    ...     def update(self, output):
    ...         self.n += 1
    ...     def compute(self):
    ...         if self._result is None:
    ...             self._result = self.n
    ...         return self._result
    >>> count = Count()
    >>> count.update(None)
    >>> count.compute()
    1
    >>> count.update(None)
    >>> count.compute()
    2
    """

    @functools.wraps(method)
    def reinit(self: Any, *args: Any, **kwargs: Any) -> None:
        method(self, *args, **kwargs)
        if "_result" in self.__dict__:
            self._result = None

    reinit._decorated = True  # type: ignore[attr-defined]  # pytorch-ignite's mark
    return reinit  # type: ignore[return-value]


def publish(engine: Engine, name: str, result: Any, mode: ResultMode = "both") -> None:
    """Put a computed value into ``engine.state.metrics`` under ``name``: a 0-d tensor as a number, another
    tensor moved to the CPU. A mapping is put per ``mode``: its items under their keys (``"flatten"``), the
    mapping under ``name`` (``"named"``), or both (``"both"``).

    :raises ValueError: if ``name`` is also a key of a mapping result that is put under ``name``.
    """
    if isinstance(result, Mapping):
        named = mode in ("named", "both")
        if named and name in result:
            raise ValueError(
                f"the metric name {name!r} is also a key of its result {list(result)}: attach it under another "
                "name, or with metrics_result_mode='flatten'"
            )
        if mode in ("flatten", "both"):
            engine.state.metrics.update(result)
        if named:
            engine.state.metrics[name] = result
        return
    engine.state.metrics[name] = published_value(result)


def published_value(value: Any) -> Any:
    """``value`` as :func:`publish` puts a result that is not a mapping: a 0-d tensor as a number, another
    tensor moved to the CPU, anything else as it is.

    >>> import torch
    >>> published_value(torch.tensor(0.5)), published_value("text")
    (0.5, 'text')
    """
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            return value.item()
        if value.device.type != "cpu":
            return value.cpu()  # read back here, where the value is computed, as pytorch-ignite
    return value


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
    if type(value) is tuple:
        return tuple(_copy(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v, device) for k, v in value.items()}
    return value


# Saved as they are: immutable values.
_PLAIN_STATE = (numbers.Number, str, bytes, torch.dtype, torch.device, torch.Size)


def _has_state(metric: Metric, name: str) -> bool:
    return name in metric.__dict__ or hasattr(type(metric), name)


def _saved(value: Any, where: str) -> Any:
    """A copy of one accumulator for a checkpoint: metrics inside it saved as their state."""
    if value is None or isinstance(value, _PLAIN_STATE):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Metric):
        return value.state_dict()
    if isinstance(value, list) or type(value) is tuple:
        items = [_saved(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _saved(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__}, which state_dict() cannot save: accumulators must be tensors, "
        "numbers, strings, None, metrics, or lists, tuples and dicts of those"
    )


def _loaded(current: Any, saved: Any, device: torch.device) -> Any:
    """The accumulator to set from its saved state: a metric (alone or in a list or dict) loads its own part."""
    if isinstance(current, Metric):
        current.load_state_dict(saved)
        return current
    if (
        isinstance(current, (list, tuple))
        and isinstance(saved, (list, tuple))
        and len(current) == len(saved)
        and any(isinstance(v, Metric) for v in current)
    ):
        items = [_loaded(c, v, device) for c, v in zip(current, saved, strict=True)]
        return items if isinstance(current, list) else tuple(items)
    if (
        isinstance(current, dict)
        and isinstance(saved, Mapping)
        and set(current) == set(saved)
        and any(isinstance(v, Metric) for v in current.values())
    ):
        return {k: _loaded(v, saved[k], device) for k, v in current.items()}
    return _copy(saved, device)


def _unrolled(metric: Metric, output: Any) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """``([p1, p2], [y1, y2])`` as ``[(p1[None], y1[None]), (p2[None], y2[None])]``, as pytorch-ignite unrolls
    lists of tensors or numbers; None for any other output (given to ``update`` as it is)."""
    # The usual cases decided at once: (y_pred, y, ...) (a tensor is not a list), a loss, a tensor.
    kind = type(output)
    if kind is tuple or kind is list:
        if output and isinstance(output[0], torch.Tensor):
            return None
    elif kind is float or kind is int or kind is torch.Tensor:
        return None
    if not isinstance(output, Sequence) or not all(_is_list_of_tensors_or_numbers(o) for o in output):
        return None
    if len(output) != 2 or len(output[0]) != len(output[1]):
        lengths = [len(o) for o in output]
        raise ValueError(
            f"{type(metric).__name__}: an output of lists of tensors or numbers is unrolled into (y_pred, y) "
            f"pairs, so it must be 2 lists of the same length; got {len(output)} of lengths {lengths}. "
            "Give skip_unrolling=True to get it as it is in update(), or an output_transform"
        )
    pairs = []
    for p, y in zip(output[0], output[1], strict=True):
        p_batch = p.unsqueeze(0) if isinstance(p, torch.Tensor) else torch.tensor([p])
        y_batch = y.unsqueeze(0) if isinstance(y, torch.Tensor) else torch.tensor([y], device=p_batch.device)
        pairs.append((p_batch, y_batch))
    return pairs


def _is_list_of_tensors_or_numbers(x: Any) -> bool:
    return isinstance(x, Sequence) and all(isinstance(t, (torch.Tensor, numbers.Number)) for t in x)


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
