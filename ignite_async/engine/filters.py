"""Event filters: ``filter(engine, event_value) -> bool``.

``event_value`` is the counter that the event counts: ``state.iteration`` for iteration and batch
events, ``state.epoch`` for epoch events and for ``STARTED``/``COMPLETED`` (as in pytorch-ignite).
The ``every``/``once``/``before``/``after`` filters are built by calling an event; the two time-based
filters from Ignite.jl are public here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["EventFilter", "throttle_filter", "timeout_filter"]

EventFilter = Callable[[Any, int], bool]


class _Filter:
    """A filter that describes itself in ``repr`` so that ``repr(event)`` shows what it does."""

    __slots__ = ()

    def __call__(self, engine: Engine, event: int) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class every_filter(_Filter):
    __slots__ = ("every",)

    def __init__(self, every: int) -> None:
        self.every = every

    def __call__(self, engine: Engine, event: int) -> bool:
        return event % self.every == 0

    def __repr__(self) -> str:
        return f"every={self.every}"


class once_filter(_Filter):
    __slots__ = ("values",)

    def __init__(self, values: Iterable[int]) -> None:
        self.values = frozenset(values)

    def __call__(self, engine: Engine, event: int) -> bool:
        return event in self.values

    def __repr__(self) -> str:
        values = sorted(self.values)
        return f"once={values[0] if len(values) == 1 else values}"


class before_and_after_filter(_Filter):
    """Passes strictly between ``after`` and ``before``."""

    __slots__ = ("after", "before")

    def __init__(self, before: int | None, after: int | None) -> None:
        self.before: float = math.inf if before is None else before
        self.after = 0 if after is None else after

    def __call__(self, engine: Engine, event: int) -> bool:
        return self.after < event < self.before

    def __repr__(self) -> str:
        return f"before={self.before}, after={self.after}"


class every_before_and_after_filter(before_and_after_filter):
    """Every ``every``-th value inside the window, counted from the first value after ``after``."""

    __slots__ = ("every",)

    def __init__(self, every: int, before: int | None, after: int | None) -> None:
        super().__init__(before, after)
        self.every = every

    def __call__(self, engine: Engine, event: int) -> bool:
        return self.after < event < self.before and (event - self.after - 1) % self.every == 0

    def __repr__(self) -> str:
        return f"every={self.every}, {super().__repr__()}"


class _AllOf(_Filter):
    __slots__ = ("filters",)

    def __init__(self, filters: tuple[EventFilter, ...]) -> None:
        self.filters = filters

    def __call__(self, engine: Engine, event: int) -> bool:
        # Short-circuit: a stateful filter further right sees only the firings that passed the left.
        return all(f(engine, event) for f in self.filters)

    def __repr__(self) -> str:
        return " & ".join(f"({f!r})" for f in self.filters)


def all_of(left: EventFilter | None, right: EventFilter | None) -> EventFilter | None:
    """Combine two filters with short-circuit ``and``; ``None`` means "always passes"."""
    if left is None:
        return right
    if right is None:
        return left
    parts = (left.filters if isinstance(left, _AllOf) else (left,)) + (
        right.filters if isinstance(right, _AllOf) else (right,)
    )
    return _AllOf(parts)


def _check_seconds(seconds: float, name: str) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise TypeError(f"{name} needs a finite number of seconds, got {seconds!r}")
    if seconds < 0:
        raise ValueError(f"{name} needs seconds >= 0, got {seconds!r}")
    return float(seconds)


class throttle_filter(_Filter):
    """Pass at most once per ``seconds`` of wall time; the first call passes.

    The filter is stateful: use one instance per handler.

    >>> from ignite_async import Events, throttle_filter
    >>> event = Events.ITERATION_COMPLETED(event_filter=throttle_filter(5.0))  # at most every 5 s
    """

    __slots__ = ("_last", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = _check_seconds(seconds, "throttle_filter")
        self._last: float | None = None

    def __call__(self, engine: Engine, event: int) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True

    def __repr__(self) -> str:
        return f"throttle_filter({self.seconds})"


class timeout_filter(_Filter):
    """Pass on every call once ``seconds`` have passed since the engine's run started.

    "Started" is when ``STARTED`` fired; a run resumed after :meth:`~ignite_async.Engine.interrupt`
    keeps its start.

    >>> from ignite_async import Events, timeout_filter
    >>> event = Events.ITERATION_COMPLETED(event_filter=timeout_filter(3600.0))  # after an hour
    """

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = _check_seconds(seconds, "timeout_filter")

    def __call__(self, engine: Engine, event: int) -> bool:
        started = engine._run_started_at
        return started is not None and time.monotonic() - started >= self.seconds

    def __repr__(self) -> str:
        return f"timeout_filter({self.seconds})"
