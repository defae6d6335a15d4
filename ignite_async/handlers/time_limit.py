"""Stop training once it has run for a given time."""

from __future__ import annotations

import logging
from time import monotonic

from ignite_async.engine import Engine

__all__ = ["TimeLimit"]


class TimeLimit:
    """Terminate the engine once more than ``limit_sec`` seconds have passed since the handler was created.

    Attach it to ``Events.ITERATION_COMPLETED`` (or any event): at each firing it compares the time since its
    creation (not since the run started, as in pytorch-ignite) with the limit, and past it logs
    ``"Reached the time limit: {limit_sec} sec. Stop training"`` and calls :meth:`Engine.terminate`, so that
    the run ends gracefully after the current event (``TERMINATE``, then ``COMPLETED``). Useful where a job's
    session time is bounded. The clock is :func:`time.monotonic`, which a change of the system clock does
    not move (pytorch-ignite reads :func:`time.time`).

    :param limit_sec: the time allowed, in whole seconds (8 hours by default).
    :raises TypeError: if ``limit_sec`` is not an integer.
    :raises ValueError: if ``limit_sec`` is not positive.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import TimeLimit
    >>> engine = Engine(lambda e, b: None)
    >>> _ = engine.add_event_handler(Events.ITERATION_COMPLETED, TimeLimit(limit_sec=3600))
    >>> asyncio.run(engine.run(range(4), max_epochs=2)).iteration  # well within the hour
    8
    """

    def __init__(self, limit_sec: int | None = 28800) -> None:
        if not isinstance(limit_sec, int):
            raise TypeError(f"limit_sec must be an integer number of seconds, got {limit_sec!r}")
        if limit_sec <= 0:
            raise ValueError(f"limit_sec must be a positive number of seconds, got {limit_sec}")
        self.limit_sec = limit_sec
        self.start_time = monotonic()
        self.logger = logging.getLogger(f"{__name__}.{type(self).__name__}")

    def __call__(self, engine: Engine) -> None:
        if monotonic() - self.start_time > self.limit_sec:
            self.logger.info("Reached the time limit: %s sec. Stop training", self.limit_sec)
            engine.terminate()
