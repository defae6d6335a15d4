"""Parameter (learning-rate) schedules, event by event, with pytorch-ignite 0.5.5's values.

A scheduler sets ``param_name`` in the optimizer's param groups each time it is called, then advances
``event_index``; attach it to ``ITERATION_STARTED`` (the default) or any event. Every scheduler class has
``simulate_values(num_events, **kwargs)``, which runs the schedule without touching a real optimizer, and
``plot_values`` (needs matplotlib: ``pip install 'ignite-async[plot]'``).
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from copy import copy, deepcopy
from typing import Any

import torch
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts
from torch.optim.lr_scheduler import LRScheduler as PyTorchLRScheduler
from torch.utils.data import BatchSampler, DataLoader

from ignite_async.engine import Engine, Events

__all__ = [
    "BaseParamScheduler",
    "BatchSizeScheduler",
    "ConcatScheduler",
    "CosineAnnealingScheduler",
    "CyclicalScheduler",
    "LRScheduler",
    "LinearCyclicalScheduler",
    "ParamGroupScheduler",
    "ParamScheduler",
    "PiecewiseLinear",
    "create_lr_scheduler_with_warmup",
]

Value = float | list[float]


class _StateAttrs:
    """``state_dict``/``load_state_dict`` over the attributes named in ``_state_attrs``."""

    _state_attrs: list[str]

    def state_dict(self) -> OrderedDict[str, Any]:
        out: OrderedDict[str, Any] = OrderedDict()
        for name in self._state_attrs:
            if hasattr(self, name):
                value = getattr(self, name)
                out[name] = copy(value.state_dict() if hasattr(value, "state_dict") else value)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        missing = [name for name in self._state_attrs if name not in state_dict]
        if missing:
            raise ValueError(f"{type(self).__name__} state_dict lacks {missing}")
        for name in self._state_attrs:
            value, current = state_dict[name], getattr(self, name, None)
            if isinstance(value, Mapping) and current is not None and hasattr(current, "load_state_dict"):
                current.load_state_dict(value)
            else:
                setattr(self, name, value)


class BaseParamScheduler(_StateAttrs, ABC):
    """Base class of every scheduler: a value per event for ``param_name``, counted by ``event_index``.

    Subclasses give :meth:`get_param` (the value for the current ``event_index``) and the classmethod
    :meth:`simulate_values`; :meth:`plot_values` draws what :meth:`simulate_values` returns.
    """

    def __init__(self, param_name: str, save_history: bool = False) -> None:
        self.param_name = param_name
        self.event_index = 0
        self.save_history = save_history
        self._state_attrs = ["event_index", "param_name", "save_history"]

    @abstractmethod
    def get_param(self) -> Any:
        """The value for the current ``event_index``."""

    @classmethod
    @abstractmethod
    def simulate_values(cls, num_events: int, **scheduler_kwargs: Any) -> list[list[Any]]:
        """``[event_index, value, ...]`` for each of ``num_events`` events of a scheduler built from the kwargs."""

    @classmethod
    def plot_values(cls, num_events: int, **scheduler_kwargs: Any) -> Any:
        """Plot :meth:`simulate_values` with matplotlib (``pip install 'ignite-async[plot]'``) on the current
        figure, labelled ``param_name`` (default ``"learning rate"``); returns the list of ``Line2D``.

        :raises ModuleNotFoundError: if matplotlib is not installed.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ModuleNotFoundError(
                "plot_values needs matplotlib; install it with: pip install 'ignite-async[plot]'"
            ) from e
        rows = cls.simulate_values(num_events, **scheduler_kwargs)
        label = scheduler_kwargs.get("param_name", "learning rate")
        lines = plt.plot([r[0] for r in rows], [r[1] if len(r) == 2 else r[1:] for r in rows], label=label)
        plt.legend()
        plt.grid(which="both")
        return lines


class ParamScheduler(BaseParamScheduler):
    """Base class: sets ``optimizer.param_groups[...][param_name]`` to :meth:`get_param` at each call."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        param_name: str,
        save_history: bool = False,
        param_group_index: int | None = None,
    ) -> None:
        if not isinstance(getattr(optimizer, "param_groups", None), Sequence):
            raise TypeError(f"optimizer must have param_groups (a torch Optimizer), got {type(optimizer).__name__}")
        super().__init__(param_name, save_history)
        self.optimizer = optimizer
        self.param_group_index = param_group_index
        self._state_attrs += ["param_group_index"]

    @abstractmethod
    def get_param(self) -> Value:
        """The value for the current ``event_index``."""

    def _value(self) -> Value:
        return self.get_param()

    @property
    def optimizer_param_groups(self) -> list[dict[str, Any]]:
        groups = self.optimizer.param_groups
        return list(groups) if self.param_group_index is None else [groups[self.param_group_index]]

    def attach(self, engine: Engine, event: Any = Events.ITERATION_STARTED) -> None:
        engine.add_event_handler(event, self)

    def __call__(self, engine: Engine | None = None, name: str | None = None) -> None:
        value = self._value()
        groups = self.optimizer_param_groups
        if isinstance(value, list):
            if len(value) != len(groups):
                raise ValueError(f"{len(value)} values for {len(groups)} param groups")
            for group, v in zip(groups, value, strict=True):
                group[self.param_name] = v
        else:
            for group in groups:
                group[self.param_name] = value
        if self.save_history and engine is not None:
            history = getattr(engine.state, "param_history", None)
            if history is None:
                history = {}
                engine.state.param_history = history  # type: ignore[attr-defined]
            history.setdefault(name or self.param_name, []).append([g[self.param_name] for g in groups])
        self.event_index += 1

    @classmethod
    def simulate_values(cls, num_events: int, **scheduler_kwargs: Any) -> list[list[Any]]:
        """``[event_index, value]`` for ``num_events`` calls of ``cls(**scheduler_kwargs)`` on a throwaway
        optimizer (an ``optimizer`` or ``save_history`` among the kwargs is ignored)."""
        _check_num_events(num_events)
        kwargs = {k: v for k, v in scheduler_kwargs.items() if k not in ("optimizer", "save_history")}
        scheduler = cls(optimizer=_fake_optimizer(), **kwargs)
        out = []
        for i in range(num_events):
            scheduler()
            out.append([i, scheduler.optimizer_param_groups[0][scheduler.param_name]])
        return out


def _fake_optimizer(lr: float = 0.01) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def _check_num_events(num_events: int) -> None:
    if isinstance(num_events, bool) or not isinstance(num_events, numbers.Integral) or num_events < 0:
        raise ValueError(f"num_events must be a non-negative integer, got {num_events!r}")


def _restorer(schedulers: Sequence[Any], optimizers: Sequence[torch.optim.Optimizer]) -> Callable[[], None]:
    """Snapshot the schedulers' and optimizers' states; the returned function puts them back."""
    saved = [deepcopy(s.state_dict()) for s in schedulers]
    histories = [getattr(s, "save_history", None) for s in schedulers]
    unique = list({id(o): o for o in optimizers}.values())
    saved_optimizers = [deepcopy(o.state_dict()) for o in unique]

    def restore() -> None:
        for s, sd, history in zip(schedulers, saved, histories, strict=True):
            if history is not None:
                s.save_history = history
            s.load_state_dict(sd)
        for o, sd in zip(unique, saved_optimizers, strict=True):
            o.load_state_dict(sd)

    return restore


class CyclicalScheduler(ParamScheduler):
    """Cycles between ``start_value`` and ``end_value`` over ``cycle_size`` events; each cycle can grow
    (``cycle_mult``), rescale its ends (``*_value_mult``), and end with a linear warm-up back to the start."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        param_name: str,
        start_value: float,
        end_value: float,
        cycle_size: int,
        cycle_mult: float = 1.0,
        start_value_mult: float = 1.0,
        end_value_mult: float = 1.0,
        warmup_duration: int = 0,
        save_history: bool = False,
        param_group_index: int | None = None,
    ) -> None:
        super().__init__(optimizer, param_name, save_history, param_group_index)
        if isinstance(cycle_size, bool) or not isinstance(cycle_size, int) or cycle_size < 2:
            raise ValueError(f"cycle_size must be an integer >= 2, got {cycle_size!r}")
        self.start_value = start_value
        self.end_value = end_value
        self.cycle_size = cycle_size
        self.cycle_mult = cycle_mult
        self.cycle = 0
        self.start_value_mult = start_value_mult
        self.end_value_mult = end_value_mult
        self.warmup_duration = warmup_duration
        self.total_cycle_size = warmup_duration + cycle_size
        self._state_attrs += [
            "start_value",
            "end_value",
            "cycle_size",
            "cycle_mult",
            "cycle",
            "start_value_mult",
            "end_value_mult",
            "warmup_duration",
            "total_cycle_size",
        ]

    def __call__(self, engine: Engine | None = None, name: str | None = None) -> None:
        if self.event_index != 0 and self.event_index == self.cycle_size:
            self.start_value *= self.start_value_mult
        if self.event_index != 0 and self.event_index == self.total_cycle_size:
            self.event_index = 0
            self.cycle_size = int(self.cycle_size * self.cycle_mult)
            self.warmup_duration = int(self.warmup_duration * self.cycle_mult)
            self.total_cycle_size = self.warmup_duration + self.cycle_size
            self.cycle += 1
            self.end_value *= self.end_value_mult
        super().__call__(engine, name)

    def _value(self) -> Value:
        if self.event_index > self.cycle_size:  # the warm-up at the end of a cycle
            progress = (self.event_index - self.cycle_size) / self.warmup_duration
            return self.end_value + (self.start_value - self.end_value) * progress
        return self.get_param()


class LinearCyclicalScheduler(CyclicalScheduler):
    """Linear from ``start_value`` to ``end_value`` and back within each cycle (or one way with ``monotonic``).

    >>> from ignite_async.handlers import LinearCyclicalScheduler
    >>> values = LinearCyclicalScheduler.simulate_values(6, param_name="lr", start_value=1.0, end_value=0.0,
    ...                                                  cycle_size=4)
    >>> [v for _, v in values]
    [1.0, 0.5, 0.0, 0.5, 1.0, 0.5]
    """

    def __init__(self, *args: Any, monotonic: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.monotonic = monotonic
        if self.warmup_duration > 0 and not monotonic:
            raise ValueError("warmup_duration > 0 needs monotonic=True")

    def get_param(self) -> float:
        progress = self.event_index / self.cycle_size
        if self.monotonic:
            return self.start_value + (self.end_value - self.start_value) * progress
        return self.end_value + (self.start_value - self.end_value) * abs(progress - 0.5) * 2


class CosineAnnealingScheduler(CyclicalScheduler):
    """Half a cosine from ``start_value`` to ``end_value`` within each cycle (SGDR with restarts)."""

    def get_param(self) -> float:
        progress = self.event_index / self.cycle_size
        return self.start_value + ((self.end_value - self.start_value) / 2) * (1 - math.cos(math.pi * progress))


class _Piecewise:
    """Linear interpolation between ``(event, value)`` milestones, for the optimizer and the state schedulers."""

    event_index: int
    _state_attrs: list[str]

    def _set_milestones(self, milestones_values: Sequence[tuple[int, float]]) -> None:
        if not isinstance(milestones_values, Sequence):
            raise TypeError(f"milestones_values must be a list of (event, value), got {type(milestones_values)}")
        if not milestones_values:
            raise ValueError("milestones_values must hold at least one (event, value) pair, got none")
        self.milestones: list[int] = []
        self.values: list[float] = []
        for pair in milestones_values:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ValueError(f"milestones_values must hold (event, value) pairs, got {pair!r}")
            if isinstance(pair[0], bool) or not isinstance(pair[0], numbers.Integral):
                raise TypeError(f"a milestone must be an integer, got {pair[0]!r}")
            if self.milestones and pair[0] < self.milestones[-1]:
                raise ValueError(f"milestones must not decrease: {pair[0]} after {self.milestones[-1]}")
            self.milestones.append(int(pair[0]))
            self.values.append(pair[1])
        self._index = 0
        self._state_attrs += ["values", "milestones", "_index"]

    def _piecewise_value(self) -> float:
        i, milestones, values = self.event_index, self.milestones, self.values
        if i < milestones[0]:
            return values[0]
        if i >= milestones[-1]:
            return values[-1]
        while not milestones[self._index] <= i < milestones[self._index + 1]:
            self._index += 1
        k = self._index
        start, end = milestones[k], milestones[k + 1]
        return values[k] + (values[k + 1] - values[k]) * (i - start) / (end - start)


class PiecewiseLinear(_Piecewise, ParamScheduler):
    """Linear between ``(event, value)`` milestones, constant before the first and after the last.

    >>> from ignite_async.handlers import PiecewiseLinear
    >>> values = PiecewiseLinear.simulate_values(6, param_name="lr", milestones_values=[(1, 1.0), (3, 0.0)])
    >>> [v for _, v in values]
    [1.0, 1.0, 0.5, 0.0, 0.0, 0.0]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        param_name: str,
        milestones_values: Sequence[tuple[int, float]],
        save_history: bool = False,
        param_group_index: int | None = None,
    ) -> None:
        super().__init__(optimizer, param_name, save_history, param_group_index)
        self._set_milestones(milestones_values)

    def get_param(self) -> float:
        return self._piecewise_value()


class ParamGroupScheduler(_StateAttrs):
    """Several schedulers, one per param group, called together."""

    def __init__(
        self, schedulers: Sequence[ParamScheduler], names: Sequence[str] | None = None, save_history: bool = False
    ) -> None:
        if not schedulers or not all(isinstance(s, ParamScheduler) for s in schedulers):
            raise TypeError(f"schedulers must be a non-empty list of ParamScheduler, got {schedulers!r}")
        if names is not None and len(names) != len(schedulers):
            raise ValueError(f"{len(names)} names for {len(schedulers)} schedulers")
        self.schedulers = list(schedulers)
        self.names = list(names) if names is not None else [s.param_name for s in schedulers]
        self.optimizer = [s.optimizer for s in schedulers]
        self.param_name = [s.param_name for s in schedulers]
        self.save_history = save_history
        self._state_attrs = []

    @property
    def save_history(self) -> bool:
        return self._save_history

    @save_history.setter
    def save_history(self, value: bool) -> None:
        self._save_history = value
        for s in self.schedulers:
            s.save_history = value

    @property
    def optimizer_param_groups(self) -> list[dict[str, Any]]:
        return [group for s in self.schedulers for group in s.optimizer_param_groups]

    def __call__(self, engine: Engine | None = None, name: str | None = None) -> None:
        for scheduler, scheduler_name in zip(self.schedulers, self.names, strict=True):
            scheduler(engine, scheduler_name)

    def get_param(self) -> list[Value]:
        return [s.get_param() for s in self.schedulers]

    @classmethod
    def simulate_values(cls, num_events: int, schedulers: Sequence[ParamScheduler], **kwargs: Any) -> list[list[Any]]:
        """``[event_index, value of schedulers[0], value of schedulers[1], ...]`` for ``num_events`` events of
        ``ParamGroupScheduler(schedulers, **kwargs)``, each value read before the event's call, as
        pytorch-ignite does. ``schedulers`` and their optimizers are left as they were.

        >>> import torch
        >>> from ignite_async.handlers import ParamGroupScheduler, PiecewiseLinear
        >>> optimizer = torch.optim.SGD([{"params": [torch.zeros(1)]}, {"params": [torch.zeros(1)]}], lr=0.1)
        >>> a = PiecewiseLinear(optimizer, "lr", [(0, 1.0), (2, 0.0)], param_group_index=0)
        >>> b = PiecewiseLinear(optimizer, "lr", [(0, 0.0), (2, 1.0)], param_group_index=1)
        >>> ParamGroupScheduler.simulate_values(3, schedulers=[a, b])
        [[0, 1.0, 0.0], [1, 0.5, 0.5], [2, 0.0, 1.0]]
        """
        _check_num_events(num_events)
        restore = _restorer(schedulers, [s.optimizer for s in schedulers])
        try:
            group = cls(schedulers, **kwargs)
            out: list[list[Any]] = []
            for i in range(num_events):
                out.append([i, *(s.get_param() for s in schedulers)])
                group()
        finally:
            restore()
        return out

    def state_dict(self) -> OrderedDict[str, Any]:
        states = [(name, s.state_dict()) for name, s in zip(self.names, self.schedulers, strict=True)]
        return OrderedDict([("schedulers", states)])

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        saved = state_dict.get("schedulers")
        if not isinstance(saved, list) or len(saved) != len(self.schedulers):
            raise ValueError(f"ParamGroupScheduler state_dict needs {len(self.schedulers)} schedulers' states")
        for scheduler, (_, sd) in zip(self.schedulers, saved, strict=True):
            scheduler.load_state_dict(sd)


AnyScheduler = ParamScheduler | ParamGroupScheduler


class ConcatScheduler(ParamScheduler):
    """Run ``schedulers`` one after the other, the i-th for ``durations[i]`` events (the last until the end)."""

    def __init__(
        self, schedulers: Sequence[AnyScheduler], durations: Sequence[int], save_history: bool = False
    ) -> None:
        if not isinstance(schedulers, Sequence) or len(schedulers) < 2:
            raise ValueError(f"ConcatScheduler needs at least two schedulers, got {schedulers!r}")
        if not isinstance(durations, Sequence) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in durations
        ):
            raise ValueError(f"durations must be a list of integers, got {durations!r}")
        if len(schedulers) != len(durations) + 1:
            raise ValueError(f"{len(schedulers)} schedulers need {len(schedulers) - 1} durations, got {len(durations)}")
        for i, s in enumerate(schedulers):
            if not isinstance(s, (ParamScheduler, ParamGroupScheduler)):
                raise TypeError(f"schedulers[{i}] is not a parameter scheduler: {s!r}")
        optimizers = {
            id(o): o for s in schedulers for o in (s.optimizer if isinstance(s.optimizer, list) else [s.optimizer])
        }
        names = set(
            itertools.chain.from_iterable(
                s.param_name if isinstance(s.param_name, list) else [s.param_name] for s in schedulers
            )
        )
        if len(optimizers) != 1:
            raise ValueError("the schedulers must all drive the same optimizer")
        if len(names) != 1:
            raise ValueError("the schedulers must all drive the same parameter")
        self.schedulers = list(schedulers)
        self.durations = list(durations)
        super().__init__(next(iter(optimizers.values())), names.pop(), save_history)
        for s in self.schedulers:
            s.save_history = save_history
        self._scheduler_index = 0
        self._select()
        self._state_attrs += ["_current_duration", "durations", "_scheduler_index"]

    def _select(self) -> None:
        self._current = self.schedulers[self._scheduler_index]
        self._current_duration = (
            self.durations[self._scheduler_index] if self._scheduler_index < len(self.durations) else -1
        )

    def __call__(self, engine: Engine | None = None, name: str | None = None) -> None:
        if self._current_duration == 0:
            self._scheduler_index += 1
            self._select()
        self._current(engine, name)
        self._current_duration -= 1

    @property
    def optimizer_param_groups(self) -> list[dict[str, Any]]:
        return self._current.optimizer_param_groups

    def get_param(self) -> Any:
        return self._current.get_param()

    def state_dict(self) -> OrderedDict[str, Any]:
        out = super().state_dict()
        out["schedulers"] = [s.state_dict() for s in self.schedulers]
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        saved = state_dict.get("schedulers") if isinstance(state_dict, Mapping) else None
        if not isinstance(saved, list) or len(saved) != len(self.schedulers):
            raise ValueError(f"ConcatScheduler state_dict needs {len(self.schedulers)} schedulers' states")
        for s, sd in zip(self.schedulers, saved, strict=True):
            s.load_state_dict(sd)
        super().load_state_dict(state_dict)
        self._current = self.schedulers[self._scheduler_index]

    @classmethod
    def simulate_values(  # type: ignore[override]
        cls,
        num_events: int,
        schedulers: Sequence[AnyScheduler],
        durations: Sequence[int],
        param_names: Sequence[str] | None = None,
    ) -> list[list[Any]]:
        """``[event_index, value_0, value_1, ...]`` of the concatenation for ``num_events`` events: for each of
        ``param_names`` (default: the schedulers' parameter) the value in every param group the current
        scheduler drives. ``schedulers`` and their optimizer are left as they were.

        :raises TypeError: if ``param_names`` is not a list or tuple.
        :raises ValueError: if ``param_names`` holds something other than strings.

        >>> import torch
        >>> from ignite_async.handlers import ConcatScheduler, LinearCyclicalScheduler
        >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> up = LinearCyclicalScheduler(optimizer, "lr", 0.0, 1.0, cycle_size=4, monotonic=True)
        >>> down = LinearCyclicalScheduler(optimizer, "lr", 1.0, 0.0, cycle_size=4, monotonic=True)
        >>> ConcatScheduler.simulate_values(6, schedulers=[up, down], durations=[3])
        [[0, 0.0], [1, 0.25], [2, 0.5], [3, 1.0], [4, 0.75], [5, 0.5]]
        >>> optimizer.param_groups[0]["lr"]
        0.1
        """
        _check_num_events(num_events)
        if param_names is not None:
            if not isinstance(param_names, (list, tuple)):
                raise TypeError(f"param_names must be a list or tuple of names, got {type(param_names).__name__}")
            if not all(isinstance(name, str) for name in param_names):
                raise ValueError(f"param_names must hold strings, got {param_names!r}")
        optimizers = [o for s in schedulers for o in (s.optimizer if isinstance(s.optimizer, list) else [s.optimizer])]
        restore = _restorer(schedulers, optimizers)
        try:
            concat = cls(schedulers, durations)
            names = list(param_names) if param_names is not None else [concat.param_name]
            out: list[list[Any]] = []
            for i in range(num_events):
                concat()
                groups = concat.optimizer_param_groups
                out.append([i, *(g[name] for name in names for g in groups)])
        finally:
            restore()
        return out


class LRScheduler(ParamScheduler):
    """Drive a ``torch.optim.lr_scheduler`` from events, as pytorch-ignite's wrapper does (the value for
    event ``i`` is the scheduler's value at epoch ``i``; attach it to ``ITERATION_STARTED``).

    >>> import torch
    >>> from ignite_async.handlers import LRScheduler
    >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> scheduler = LRScheduler(torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5))
    >>> lrs = []
    >>> for _ in range(5):
    ...     scheduler()
    ...     lrs.append(optimizer.param_groups[0]["lr"])
    >>> lrs
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, lr_scheduler: PyTorchLRScheduler, save_history: bool = False, use_legacy: bool = False) -> None:
        if not isinstance(lr_scheduler, PyTorchLRScheduler):
            raise TypeError(f"lr_scheduler must be a torch.optim.lr_scheduler scheduler, got {type(lr_scheduler)}")
        self.lr_scheduler: Any = (
            _WarmRestarts(lr_scheduler) if isinstance(lr_scheduler, CosineAnnealingWarmRestarts) else lr_scheduler
        )
        super().__init__(lr_scheduler.optimizer, "lr", save_history)
        if use_legacy:
            warnings.warn(
                "With use_legacy=True, attach the scheduler to Events.ITERATION_COMPLETED, not "
                "Events.ITERATION_STARTED, or the optimizer's first lr value is skipped",
                UserWarning,
                stacklevel=2,
            )
            self.lr_scheduler.last_epoch += 1
        self._state_attrs += ["lr_scheduler"]

    def __call__(self, engine: Engine | None = None, name: str | None = None) -> None:
        super().__call__(engine, name)
        self.lr_scheduler.last_epoch += 1

    def get_param(self) -> Any:
        # get_lr() computes the value for last_epoch; torch warns unless called "within step()".
        self.lr_scheduler._get_lr_called_within_step = True
        try:
            lrs = self.lr_scheduler.get_lr()
        finally:
            self.lr_scheduler._get_lr_called_within_step = False
        return lrs[0] if len(lrs) == 1 else lrs

    @classmethod
    def simulate_values(  # type: ignore[override]
        cls, num_events: int, lr_scheduler: PyTorchLRScheduler, **kwargs: Any
    ) -> list[list[Any]]:
        """``[event_index, lr of group 0, lr of group 1, ...]`` for ``num_events`` events of
        ``LRScheduler(lr_scheduler, **kwargs)``; ``lr_scheduler`` and its optimizer are left as they were.

        :raises TypeError: if ``lr_scheduler`` is not a ``torch.optim.lr_scheduler`` scheduler.

        >>> import torch
        >>> from ignite_async.handlers import LRScheduler
        >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        >>> LRScheduler.simulate_values(4, lr_scheduler=step)
        [[0, 0.1], [1, 0.1], [2, 0.05], [3, 0.05]]
        """
        if not isinstance(lr_scheduler, PyTorchLRScheduler):
            raise TypeError(f"lr_scheduler must be a torch.optim.lr_scheduler scheduler, got {type(lr_scheduler)}")
        _check_num_events(num_events)
        kwargs.pop("save_history", None)
        restore = _restorer([lr_scheduler], [lr_scheduler.optimizer])
        try:
            scheduler = cls(lr_scheduler, **kwargs)
            out: list[list[Any]] = []
            for i in range(num_events):
                scheduler()
                out.append([i, *(g["lr"] for g in scheduler.optimizer_param_groups)])
        finally:
            restore()
        return out


class _WarmRestarts:
    """CosineAnnealingWarmRestarts driven by ``last_epoch`` like the other torch schedulers: its own
    ``get_lr`` reads ``T_cur``, which only its ``step()`` advances, so the cycle bookkeeping is done here."""

    def __init__(self, scheduler: CosineAnnealingWarmRestarts) -> None:
        self._scheduler = scheduler

    @property
    def last_epoch(self) -> int:
        return int(self._scheduler.last_epoch)

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        self._scheduler.last_epoch = value

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._scheduler.optimizer

    def state_dict(self) -> dict[str, Any]:
        return self._scheduler.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self._scheduler.load_state_dict(dict(state_dict))

    def get_lr(self) -> list[Any]:
        s = self._scheduler
        if self.last_epoch < 0:
            epoch = 0
        else:
            epoch = self.last_epoch + 1
            s.T_cur = s.T_cur + 1
            if s.T_cur >= s.T_i:
                s.T_cur = s.T_cur - s.T_i
                s.T_i = s.T_i * s.T_mult
        self.last_epoch = epoch
        return [s.eta_min + (base - s.eta_min) * (1 + math.cos(math.pi * s.T_cur / s.T_i)) / 2 for base in s.base_lrs]


def create_lr_scheduler_with_warmup(
    lr_scheduler: ParamScheduler | PyTorchLRScheduler,
    warmup_start_value: float,
    warmup_duration: int,
    warmup_end_value: float | None = None,
    save_history: bool = False,
    output_simulated_values: list[Any] | None = None,
) -> ConcatScheduler:
    """A linear warm-up from ``warmup_start_value`` over ``warmup_duration`` events, then ``lr_scheduler``.

    The warm-up ends at ``warmup_end_value`` (default: the optimizer's lr); values as pytorch-ignite's.
    Given ``output_simulated_values``, a list such as ``[None] * 100``, its items are replaced by the first
    ``len(output_simulated_values)`` simulated ``[event_index, lr, ...]`` rows (the scheduler is not moved).

    :raises TypeError: if ``output_simulated_values`` is given and is not a list.

    >>> import torch
    >>> from torch.optim.lr_scheduler import ExponentialLR
    >>> from ignite_async.handlers import create_lr_scheduler_with_warmup
    >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> scheduler = create_lr_scheduler_with_warmup(ExponentialLR(optimizer, gamma=0.5), 0.0, warmup_duration=3)
    >>> lrs = []
    >>> for _ in range(5):
    ...     scheduler()
    ...     lrs.append(round(optimizer.param_groups[0]["lr"], 4))
    >>> lrs
    [0.0, 0.05, 0.1, 0.05, 0.025]
    """
    if not isinstance(lr_scheduler, (ParamScheduler, PyTorchLRScheduler)):
        raise TypeError(f"lr_scheduler must be a ParamScheduler or a torch scheduler, got {type(lr_scheduler)}")
    if isinstance(warmup_duration, bool) or not isinstance(warmup_duration, int):
        raise TypeError(f"warmup_duration must be an integer, got {warmup_duration!r}")
    if warmup_duration < 2:
        raise ValueError(f"warmup_duration must be at least 2 events, got {warmup_duration}")
    if output_simulated_values is not None and not isinstance(output_simulated_values, list):
        raise TypeError(
            f"output_simulated_values must be a list, e.g. [None] * 100, got {type(output_simulated_values).__name__}"
        )
    warmups: list[ParamScheduler] = []
    milestones: list[tuple[int, float]] = []
    after: ParamScheduler | PyTorchLRScheduler = lr_scheduler
    for index, group in enumerate(lr_scheduler.optimizer.param_groups):
        end_value = group["lr"] if warmup_end_value is None else warmup_end_value
        milestones = [(0, warmup_start_value), (warmup_duration - 1, end_value)]
        if isinstance(after, PyTorchLRScheduler):
            initial = group["lr"]
            if initial != end_value:  # one more event to go from the warm-up's end to the scheduler's start
                milestones.append((warmup_duration, initial))
            after.last_epoch += 1
            after = LRScheduler(after, save_history=save_history)
        elif after.get_param() == end_value:  # the scheduler starts where the warm-up ends: do not repeat it
            if warmup_duration > 2:
                step = (end_value - warmup_start_value) / (warmup_duration - 1)
                milestones[-1] = (warmup_duration - 2, end_value - step)
            else:
                milestones.pop(-1)
        warmups.append(
            PiecewiseLinear(
                lr_scheduler.optimizer, "lr", milestones, param_group_index=index, save_history=save_history
            )
        )
    assert isinstance(after, ParamScheduler)
    schedulers: list[AnyScheduler] = [ParamGroupScheduler(warmups, save_history=save_history), after]
    durations = [milestones[-1][0] + 1]
    combined = ConcatScheduler(schedulers, durations=durations, save_history=save_history)
    if output_simulated_values is not None:
        rows = ConcatScheduler.simulate_values(len(output_simulated_values), schedulers=schedulers, durations=durations)
        output_simulated_values[:] = rows
    return combined


class BatchSizeScheduler(BaseParamScheduler):
    """Set the batch size of ``dataloader``'s ``BatchSampler`` to ``scheduler_fn(event_index)`` at each call.

    Attach it to ``Events.EPOCH_STARTED`` (the default of :meth:`attach`): the loader's next iterator, the
    epoch's, then yields batches of the new size. With ``save_history``, each size is appended to
    ``engine.state.param_history["batch_size"]``.

    :param dataloader: a ``DataLoader`` built with a batch size (so with a ``BatchSampler``).
    :param scheduler_fn: event index (0, 1, ...) -> batch size, a positive integer.
    :raises TypeError: if ``dataloader`` is not a ``DataLoader`` or ``scheduler_fn`` is not callable.
    :raises ValueError: if ``dataloader`` has no ``BatchSampler``; at a call, if ``scheduler_fn`` gives
        something other than a positive integer.

    >>> import torch
    >>> from torch.utils.data import DataLoader
    >>> from ignite_async.handlers import BatchSizeScheduler
    >>> loader = DataLoader(torch.arange(12), batch_size=1)
    >>> scheduler = BatchSizeScheduler(loader, scheduler_fn=lambda epoch: 3 * (epoch + 1))
    >>> scheduler()  # what attach(trainer) does at each EPOCH_STARTED
    >>> [len(batch) for batch in loader]
    [3, 3, 3, 3]
    >>> scheduler()
    >>> [len(batch) for batch in loader]
    [6, 6]

    Note that the engine keeps one iterator over the loader while it lasts (``len(loader)`` at the start of
    the run is the epoch length), so a new size shows from the next pass over the loader, as in pytorch-ignite.
    """

    def __init__(
        self, dataloader: DataLoader[Any], scheduler_fn: Callable[[int], int], save_history: bool = False
    ) -> None:
        super().__init__("batch_size", save_history)
        if not isinstance(dataloader, DataLoader):
            raise TypeError(f"dataloader must be a torch DataLoader, got {type(dataloader).__name__}")
        if not isinstance(getattr(dataloader, "batch_sampler", None), BatchSampler):
            raise ValueError(
                "dataloader must have a BatchSampler (dataloader.batch_sampler a "
                "torch.utils.data.BatchSampler): build it with batch_size=..."
            )
        if not callable(scheduler_fn):
            raise TypeError(f"scheduler_fn must be callable, got {type(scheduler_fn).__name__}")
        self.dataloader = dataloader
        self.scheduler_fn = scheduler_fn

    def get_param(self) -> int:
        return self.scheduler_fn(self.event_index)

    def __call__(self, engine: Engine | None = None) -> None:
        size = self.get_param()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"scheduler_fn must return a positive integer batch size, got {size!r}")
        sampler = self.dataloader.batch_sampler
        assert isinstance(sampler, BatchSampler)
        sampler.batch_size = size
        if self.save_history and engine is not None:
            history = getattr(engine.state, "param_history", None)
            if history is None:
                history = {}
                engine.state.param_history = history  # type: ignore[attr-defined]
            history.setdefault(self.param_name, []).append(size)
        self.event_index += 1

    def attach(self, engine: Engine, event: Any = Events.EPOCH_STARTED) -> None:
        engine.add_event_handler(event, self)

    @classmethod
    def simulate_values(cls, num_events: int, **scheduler_kwargs: Any) -> list[list[Any]]:
        """``[event_index, scheduler_fn(event_index)]`` for ``num_events`` events (needs ``scheduler_fn``).

        >>> from ignite_async.handlers import BatchSizeScheduler
        >>> BatchSizeScheduler.simulate_values(3, scheduler_fn=lambda e: 8 * 2**e)
        [[0, 8], [1, 16], [2, 32]]
        """
        if "scheduler_fn" not in scheduler_kwargs:
            raise ValueError("BatchSizeScheduler.simulate_values needs scheduler_fn=...")
        _check_num_events(num_events)
        fn = scheduler_kwargs["scheduler_fn"]
        return [[i, fn(i)] for i in range(num_events)]
