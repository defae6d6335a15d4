"""Schedules for a field of ``engine.state`` (pytorch-ignite 0.5.5's ``StateParamScheduler`` family).

Each call advances ``event_index`` by one and then sets ``engine.state.<param_name>`` to the value for it,
so the first value set is the one for event 1. Attach with :meth:`StateParamScheduler.attach`, by default to
``Events.ITERATION_COMPLETED``.
"""

from __future__ import annotations

import itertools
import numbers
import warnings
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from ignite_async.engine import Engine, Events
from ignite_async.handlers.param_scheduler import BaseParamScheduler, _check_num_events, _Piecewise

__all__ = [
    "ExpStateScheduler",
    "LambdaStateScheduler",
    "MultiStepStateScheduler",
    "PiecewiseLinearStateScheduler",
    "StateParamScheduler",
    "StepStateScheduler",
]


class StateParamScheduler(BaseParamScheduler):
    """Base class: at each call, ``engine.state.<param_name> = get_param()`` for the next ``event_index``.

    :param param_name: the ``engine.state`` attribute to set.
    :param save_history: append each value to ``engine.state.param_history[param_name]``.
    :param create_new: the attribute is new: :meth:`attach` raises if the state already has it (another handler
        may own it), and does not warn when it creates it.

    A schedule of its own only needs :meth:`get_param`:

    >>> from ignite_async.handlers import StateParamScheduler
    >>> class Doubling(StateParamScheduler):
    ...     def get_param(self):
    ...         return 2**self.event_index
    >>> Doubling.simulate_values(3, param_name="alpha")
    [[0, 2], [1, 4], [2, 8]]
    """

    def __init__(self, param_name: str, save_history: bool = False, create_new: bool = False) -> None:
        if not isinstance(param_name, str) or not param_name.isidentifier():
            raise ValueError(f"param_name must be an attribute name, got {param_name!r}")
        super().__init__(param_name, save_history)
        self.create_new = create_new

    def attach(self, engine: Engine, event: Any = Events.ITERATION_COMPLETED) -> None:
        """Add the scheduler to ``engine`` at ``event``, creating ``engine.state.<param_name>`` (as ``None``)
        if it is missing.

        :raises ValueError: with ``create_new=True``, if ``engine.state`` already has ``param_name``.
        :warns UserWarning: with ``create_new=False``, if ``engine.state`` lacks ``param_name``.
        """
        state = engine.state
        if hasattr(state, self.param_name):
            if self.create_new:
                raise ValueError(
                    f"engine.state already has {self.param_name!r}, which another handler may own; "
                    "choose another param_name (or create_new=False to take it over)"
                )
        else:
            if not self.create_new:
                warnings.warn(
                    f"engine.state has no attribute {self.param_name!r}; {type(self).__name__} creates it "
                    "(pass create_new=True to say that is intended)",
                    UserWarning,
                    stacklevel=2,
                )
            setattr(state, self.param_name, None)
        if self.save_history:
            self._history(engine)
        engine.add_event_handler(event, self)

    def _history(self, engine: Engine) -> list[Any]:
        history = getattr(engine.state, "param_history", None)
        if history is None:
            history = {}
            engine.state.param_history = history  # type: ignore[attr-defined]
        values: list[Any] = history.setdefault(self.param_name, [])
        return values

    def __call__(self, engine: Engine) -> None:
        self.event_index += 1
        value = self.get_param()
        setattr(engine.state, self.param_name, value)
        if self.save_history:
            self._history(engine).append(value)

    @classmethod
    def simulate_values(cls, num_events: int, **scheduler_kwargs: Any) -> list[list[Any]]:
        """``[event_index, value]`` for ``num_events`` calls of ``cls(**scheduler_kwargs)`` on a throwaway
        engine (``save_history`` among the kwargs is ignored). The value at row ``i`` is the one for event
        ``i + 1``, as in pytorch-ignite.

        >>> from ignite_async.handlers import StepStateScheduler
        >>> StepStateScheduler.simulate_values(4, param_name="alpha", initial_value=1.0, gamma=0.5, step_size=2)
        [[0, 1.0], [1, 0.5], [2, 0.5], [3, 0.25]]
        """
        _check_num_events(num_events)
        kwargs = {k: v for k, v in scheduler_kwargs.items() if k != "save_history"}
        scheduler = cls(**kwargs)
        engine = Engine(lambda e, b: None)
        out: list[list[Any]] = []
        for i in range(num_events):
            scheduler(engine)
            out.append([i, getattr(engine.state, scheduler.param_name)])
        return out


class LambdaStateScheduler(StateParamScheduler):
    """``lambda_obj(event_index)``: any schedule as a function (or callable object) of the event index.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import LambdaStateScheduler
    >>> engine = Engine(lambda e, b: None)
    >>> LambdaStateScheduler(lambda i: 0.1 * i, "alpha", create_new=True).attach(engine, Events.EPOCH_COMPLETED)
    >>> round(asyncio.run(engine.run(range(2), max_epochs=3)).alpha, 6)
    0.3
    """

    def __init__(
        self,
        lambda_obj: Callable[[int], list[float] | float],
        param_name: str,
        save_history: bool = False,
        create_new: bool = False,
    ) -> None:
        super().__init__(param_name, save_history, create_new)
        if not callable(lambda_obj):
            raise ValueError(f"lambda_obj must be callable, got {type(lambda_obj).__name__}")
        self.lambda_obj = lambda_obj
        self._state_attrs += ["lambda_obj"]

    def get_param(self) -> list[float] | float:
        return self.lambda_obj(self.event_index)


class PiecewiseLinearStateScheduler(_Piecewise, StateParamScheduler):
    """Linear between ``(event, value)`` milestones, constant before the first and after the last.

    >>> from ignite_async.handlers import PiecewiseLinearStateScheduler
    >>> rows = PiecewiseLinearStateScheduler.simulate_values(
    ...     5, param_name="alpha", milestones_values=[(1, 0.0), (3, 1.0)])
    >>> [v for _, v in rows]
    [0.0, 0.5, 1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        milestones_values: Sequence[tuple[int, float]],
        param_name: str,
        save_history: bool = False,
        create_new: bool = False,
    ) -> None:
        super().__init__(param_name, save_history, create_new)
        self._set_milestones(milestones_values)

    def get_param(self) -> float:
        return self._piecewise_value()


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")


class ExpStateScheduler(StateParamScheduler):
    """``initial_value * gamma ** event_index``.

    >>> from ignite_async.handlers import ExpStateScheduler
    >>> ExpStateScheduler.simulate_values(3, param_name="alpha", initial_value=1.0, gamma=0.5)
    [[0, 0.5], [1, 0.25], [2, 0.125]]
    """

    def __init__(
        self, initial_value: float, gamma: float, param_name: str, save_history: bool = False, create_new: bool = False
    ) -> None:
        super().__init__(param_name, save_history, create_new)
        _check_number("initial_value", initial_value)
        _check_number("gamma", gamma)
        self.initial_value = initial_value
        self.gamma = gamma
        self._state_attrs += ["initial_value", "gamma"]

    def get_param(self) -> float:
        return self.initial_value * self.gamma**self.event_index


class StepStateScheduler(StateParamScheduler):
    """``initial_value * gamma ** (event_index // step_size)``: times ``gamma`` every ``step_size`` events.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import StepStateScheduler
    >>> engine = Engine(lambda e, b: None)
    >>> scheduler = StepStateScheduler(1.0, 0.5, 2, "alpha", save_history=True, create_new=True)
    >>> scheduler.attach(engine, Events.EPOCH_COMPLETED)
    >>> asyncio.run(engine.run(range(2), max_epochs=4)).param_history["alpha"]
    [1.0, 0.5, 0.5, 0.25]
    """

    def __init__(
        self,
        initial_value: float,
        gamma: float,
        step_size: int,
        param_name: str,
        save_history: bool = False,
        create_new: bool = False,
    ) -> None:
        super().__init__(param_name, save_history, create_new)
        _check_number("initial_value", initial_value)
        _check_number("gamma", gamma)
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        self.initial_value: float = initial_value
        self.gamma: float = gamma
        self.step_size: int = int(step_size)
        self._state_attrs += ["initial_value", "gamma", "step_size"]

    def get_param(self) -> float:
        return self.initial_value * self.gamma ** (self.event_index // self.step_size)


class MultiStepStateScheduler(StateParamScheduler):
    """``initial_value * gamma ** k``, ``k`` the number of ``milestones`` at or before ``event_index``.

    >>> from ignite_async.handlers import MultiStepStateScheduler
    >>> rows = MultiStepStateScheduler.simulate_values(
    ...     5, param_name="alpha", initial_value=1.0, gamma=0.1, milestones=[2, 4])
    >>> [round(v, 6) for _, v in rows]
    [1.0, 0.1, 0.1, 0.01, 0.01]
    """

    def __init__(
        self,
        initial_value: float,
        gamma: float,
        milestones: list[int],
        param_name: str,
        save_history: bool = False,
        create_new: bool = False,
    ) -> None:
        super().__init__(param_name, save_history, create_new)
        _check_number("initial_value", initial_value)
        _check_number("gamma", gamma)
        if not isinstance(milestones, Sequence) or any(
            isinstance(m, bool) or not isinstance(m, numbers.Integral) for m in milestones
        ):
            raise TypeError(f"milestones must be a list of integers, got {milestones!r}")
        if any(b < a for a, b in itertools.pairwise(milestones)):
            raise ValueError(f"milestones must not decrease, got {milestones!r}")
        self.initial_value = initial_value
        self.gamma = gamma
        self.milestones = milestones
        self._state_attrs += ["initial_value", "gamma", "milestones"]

    def get_param(self) -> float:
        return self.initial_value * self.gamma ** bisect_right(self.milestones, self.event_index)
