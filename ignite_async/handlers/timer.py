"""Measure the time between events."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from ignite_async.engine import Engine, Events

__all__ = ["Timer"]


class Timer:
    """A wall-clock timer driven by events, as pytorch-ignite's.

    :meth:`attach` resets it on ``start``, pauses it on ``pause``, resumes it on ``resume`` and counts a
    step on ``step``; :meth:`value` is the time measured, divided by the steps if ``average``.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import Timer
    >>> engine = Engine(lambda e, b: None)
    >>> timer = Timer(average=True).attach(
    ...     engine,
    ...     start=Events.EPOCH_STARTED,
    ...     resume=Events.ITERATION_STARTED,
    ...     pause=Events.ITERATION_COMPLETED,
    ...     step=Events.ITERATION_COMPLETED,
    ... )
    >>> _ = asyncio.run(engine.run(range(5)))
    >>> timer.step_count, timer.value() >= 0
    (5.0, True)
    """

    def __init__(self, average: bool = False) -> None:
        self._average = average
        self.reset()

    def attach(
        self,
        engine: Engine,
        start: Any = Events.STARTED,
        pause: Any = Events.COMPLETED,
        resume: Any = None,
        step: Any = None,
    ) -> Timer:
        engine.add_event_handler(start, self.reset)
        engine.add_event_handler(pause, self.pause)
        if resume is not None:
            engine.add_event_handler(resume, self.resume)
        if step is not None:
            engine.add_event_handler(step, self.step)
        return self

    def reset(self, *args: Any) -> Timer:
        """Start from zero, running."""
        self._t0 = perf_counter()
        self.total = 0.0
        self.step_count = 0.0
        self.running = True
        return self

    def pause(self, *args: Any) -> None:
        if self.running:
            self.total += perf_counter() - self._t0
            self.running = False

    def resume(self, *args: Any) -> None:
        if not self.running:
            self.running = True
            self._t0 = perf_counter()

    def step(self, *args: Any) -> None:
        self.step_count += 1.0

    def value(self) -> float:
        """Seconds measured so far (per step if ``average``)."""
        total = self.total + (perf_counter() - self._t0 if self.running else 0.0)
        return total / max(self.step_count, 1.0) if self._average else total
