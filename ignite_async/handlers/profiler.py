"""Where the time goes: per handler and event, in the process function, and fetching data."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

from ignite_async.engine import Engine, Events
from ignite_async.engine._handlers import describe

__all__ = ["HandlersTimeProfiler"]

_UNBOUNDED = 10_000  # columns: as wide as a table of whole names could need


@dataclass
class _Times:
    values: list[float] = field(default_factory=list)

    def row(self) -> tuple[float, float, float, float, float, int]:
        v = self.values
        if not v:
            return 0.0, 0.0, 0.0, 0.0, 0.0, 0
        mean = sum(v) / len(v)
        std = math.sqrt(sum((x - mean) ** 2 for x in v) / len(v))
        return sum(v), min(v), max(v), mean, std, len(v)


class HandlersTimeProfiler:
    """Time every handler on every event, the process function and data fetching, as pytorch-ignite's
    ``HandlersTimeProfiler`` does; background handlers are reported with the time their invocations took
    in the background (and the time their firing took in the loop).

    Attach it before ``run()``: at ``STARTED`` it instruments the handlers attached by then. It adds
    nothing to engines it is not attached to.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import HandlersTimeProfiler
    >>> engine = Engine(lambda e, b: None)
    >>> _ = engine.add_event_handler(Events.EPOCH_COMPLETED, lambda: None)
    >>> profiler = HandlersTimeProfiler()
    >>> profiler.attach(engine)
    >>> _ = asyncio.run(engine.run(range(10), max_epochs=2))
    >>> [(row["handler"], row["event"], row["count"]) for row in profiler.get_results() if row["count"] == 2]
    [('<lambda>', 'EPOCH_COMPLETED', 2)]
    """

    COLUMNS = ("handler", "event", "total", "min", "max", "mean", "std", "count")

    def __init__(self) -> None:
        self._times: dict[tuple[str, str], _Times] = {}
        self._background: list[Any] = []
        self._fetch_started = 0.0

    def attach(self, engine: Engine) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(f"attach() needs an ignite_async Engine, got {type(engine).__name__}")
        engine.add_event_handler(Events.STARTED, self._instrument)
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._fetch_start)
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._fetch_end)

    def _times_for(self, handler: str, event: str) -> _Times:
        return self._times.setdefault((handler, event), _Times())

    def _fetch_start(self) -> None:
        self._fetch_started = time.perf_counter()

    def _fetch_end(self) -> None:
        self._times_for("[data fetching]", "GET_BATCH").values.append(time.perf_counter() - self._fetch_started)

    def _instrument(self, engine: Engine) -> None:
        own = {self._instrument, self._fetch_start, self._fetch_end}
        for event, entries in engine._event_handlers.items():
            for i, entry in enumerate(entries):
                fn, args, kwargs, is_async, event_filter, attr, info = entry
                if info.handler in own or getattr(fn, "_profiled", False):
                    continue
                if hasattr(info.handler, "stats"):  # a background handler
                    self._background.append(info.handler)
                wrapped = self._timed(fn, is_async, self._times_for(_name(info.handler), event))
                entries[i] = (wrapped, args, kwargs, is_async, event_filter, attr, info)
        if not getattr(engine._process_function, "_profiled", False):
            engine._process_function = self._timed(
                engine._process_function, engine._process_is_async, self._times_for("[process function]", "ITERATION")
            )

    @staticmethod
    def _timed(fn: Callable[..., Any], is_async: bool, times: _Times) -> Callable[..., Any]:
        if is_async:

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    times.values.append(time.perf_counter() - started)

            timed_async._profiled = True  # type: ignore[attr-defined]
            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times.values.append(time.perf_counter() - started)

        timed._profiled = True  # type: ignore[attr-defined]
        return timed

    def get_results(self) -> list[dict[str, Any]]:
        """One row per (handler, event): total, min, max, mean, std of seconds, and the count."""
        rows = []
        for (handler, event), times in sorted(self._times.items()):
            rows.append(dict(zip(self.COLUMNS, (handler, event, *times.row()), strict=True)))
        for bg in self._background:
            s = bg.stats
            mean = s.time_spent / s.started if s.started else 0.0
            rows.append(
                dict(
                    zip(
                        self.COLUMNS,
                        (f"{s.name} [background]", "-", s.time_spent, math.nan, math.nan, mean, math.nan, s.started),
                        strict=True,
                    )
                )
            )
        return rows

    def print_results(self, console: Console | None = None) -> None:
        """The results as a rich table, slowest handlers first.

        On a terminal the table fits its width: a long name folds onto the next line. Elsewhere (a pipe, a
        file, a CI log) it is as wide as its content, so that every name is whole, on one line.
        """
        console = console or Console()
        table = Table(title="Time per handler and event (s)")
        for column in self.COLUMNS:
            if column in ("handler", "event"):
                table.add_column(column, justify="left", overflow="fold")
            else:
                table.add_column(column, justify="right")
        for row in sorted(self.get_results(), key=lambda r: -r["total"]):
            table.add_row(
                Text(row["handler"]),  # Text, not markup: "[process function]" is a name, not a style
                Text(row["event"]),
                *(f"{row[c]:.6f}" if not math.isnan(row[c]) else "-" for c in ("total", "min", "max", "mean", "std")),
                str(row["count"]),
            )
        if console.is_terminal:
            console.print(table)
            return
        width = max(console.width, Measurement.get(console, console.options.update(width=_UNBOUNDED), table).maximum)
        lines = console.render_lines(table, console.options.update(width=width), new_lines=True)
        console.print(Segments(segment for line in lines for segment in line), crop=False, end="")

    def write_results(self, path: str | Path) -> None:
        """The results as CSV, one row per (handler, event)."""
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.COLUMNS)
            writer.writeheader()
            writer.writerows(self.get_results())


def _name(handler: Any) -> str:
    name = getattr(handler, "__qualname__", None) or describe(handler)
    return str(name).rsplit("<locals>.", 1)[-1]
