"""Where the time goes: per handler and event, in the process function, and fetching data."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

from ignite_async.engine import Engine, Events
from ignite_async.engine._handlers import Entry

__all__ = ["HandlersTimeProfiler"]

_UNBOUNDED = 10_000  # columns: as wide as a table of whole names could need

#: The columns of a row of :meth:`HandlersTimeProfiler.get_results`, as pytorch-ignite 0.5.5 prints them.
_HEADERS = ("Handler", "Event Name", "Total(s)", "Min(s)/IDX", "Max(s)/IDX", "Mean(s)", "Std(s)")

Row = list[Any]


def _stats(times: Sequence[float]) -> list[Any]:
    """``[total, (min, index), (max, index), mean, std]`` of the non-zero times, rounded to 5 digits.

    As pytorch-ignite 0.5.5: the indices count the non-zero times, ``std`` is the sample one and ``"None"``
    for fewer than two times, and a list with no non-zero time is ``"not triggered"``.
    """
    data = [t for t in times if t > 0]
    if not data:
        return ["not triggered", ("None", "None"), ("None", "None"), "None", "None"]
    lo = min(range(len(data)), key=data.__getitem__)
    hi = max(range(len(data)), key=data.__getitem__)
    mean = sum(data) / len(data)
    std: Any = "None"
    if len(data) > 1:
        std = round(math.sqrt(sum((x - mean) ** 2 for x in data) / (len(data) - 1)), 5)
    return [round(sum(data), 5), (round(data[lo], 5), lo), (round(data[hi], 5), hi), round(mean, 5), std]


def _handler_name(handler: Any) -> str:
    """The row name pytorch-ignite 0.5.5 gives a handler: its ``__qualname__``, else its class's name."""
    handler = getattr(handler, "handler", handler) if hasattr(handler, "stats") else handler  # background(...)
    return str(getattr(handler, "__qualname__", type(handler).__name__))


def _cell(value: Any) -> str:
    return "{}/{}".format(*value) if isinstance(value, tuple) else str(value)


class _PrintResults:
    """``print_results`` as pytorch-ignite 0.5.5's static method, that an instance can also call bare."""

    def __get__(self, obj: HandlersTimeProfiler | None, objtype: type | None = None) -> Callable[..., None]:
        def print_results(results: list[Row] | None = None, console: Console | None = None) -> None:
            if results is None:
                if obj is None:
                    raise TypeError("HandlersTimeProfiler.print_results(results) needs the rows of get_results()")
                results = obj.get_results()
            _print(results, console or Console())

        print_results.__doc__ = HandlersTimeProfiler._print_results_doc
        return print_results


class HandlersTimeProfiler:
    """Time every handler on every event, the process function and data fetching, with pytorch-ignite 0.5.5's
    ``HandlersTimeProfiler`` results: the rows of :meth:`get_results`, the CSV of :meth:`write_results` and
    the static :meth:`print_results` are the same, so code reading them ports unchanged.

    Attach it before ``run()``: at ``STARTED`` it instruments the handlers attached by then (and starts the
    results afresh, as 0.5.5 does). It adds nothing to engines it is not attached to. Beyond 0.5.5, a
    handler run in the background (:func:`~ignite_async.background`) has a second row, named
    ``"<name> [background]"``, with the time its invocations took in the background; its first row, under its
    own name, is the time its firing took in the loop.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import HandlersTimeProfiler
    >>> engine = Engine(lambda e, b: None)
    >>> def log(engine): ...
    >>> _ = engine.add_event_handler(Events.EPOCH_COMPLETED, log)
    >>> profiler = HandlersTimeProfiler()
    >>> profiler.attach(engine)
    >>> _ = asyncio.run(engine.run(range(10), max_epochs=2))
    >>> results = profiler.get_results()
    >>> [row[:2] for row in results]
    [['log', 'EPOCH_COMPLETED'], ['Total', ''], ['Processing', 'None'], ['Dataflow', 'None']]
    >>> HandlersTimeProfiler.print_results(results)  # doctest: +SKIP
    """

    #: In pytorch-ignite 0.5.5 (with its spelling), a filtered handler's firings faster than this are taken
    #: for firings its filter stopped and are not counted. Here the filter is consulted before the handler
    #: is called, so every call is timed and counted; the attribute is kept for code that reads or sets it.
    EVENT_FILTER_THESHOLD_TIME = 0.0001

    def __init__(self) -> None:
        self.dataflow_times: list[float] = []
        self.processing_times: list[float] = []
        self.event_handlers_times: dict[Any, dict[str, list[float]]] = {}
        self.event_handlers_names: dict[Any, list[str]] = {}
        self._background: list[tuple[Any, Any]] = []  # (event, background handler)
        self._fetch_started = 0.0
        self._processing_started = 0.0

    def attach(self, engine: Engine) -> None:
        """Profile ``engine``'s runs from their next ``STARTED``.

        :raises TypeError: if ``engine`` is not an ignite_async :class:`~ignite_async.Engine`.
        """
        if not isinstance(engine, Engine):
            raise TypeError(f"attach() needs an ignite_async Engine, got {type(engine).__name__}")
        if not engine.has_event_handler(self._instrument, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self._instrument)
            engine._event_handlers["STARTED"].insert(0, engine._event_handlers["STARTED"].pop())  # first, as 0.5.5
            engine.add_event_handler(Events.GET_BATCH_STARTED, self._fetch_start)
            engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._fetch_end)

    def _own(self, handler: Any) -> bool:
        return handler in (self._instrument, self._fetch_start, self._fetch_end)

    def _fetch_start(self) -> None:
        self._fetch_started = time.perf_counter()

    def _fetch_end(self) -> None:
        self.dataflow_times.append(time.perf_counter() - self._fetch_started)

    def _instrument(self, engine: Engine) -> None:
        handlers = engine._event_handlers
        self.event_handlers_names = {
            event: [
                _handler_name(entry[6].handler) for entry in handlers.get(key, []) if not self._own(entry[6].handler)
            ]
            for key, event in engine._allowed_events.items()
        }
        self.event_handlers_times = {e: {h: [] for h in names} for e, names in self.event_handlers_names.items()}
        self.dataflow_times = []
        self.processing_times = []
        self._background = []
        # Data fetching is timed from after GET_BATCH_STARTED's other handlers to before GET_BATCH_COMPLETED's.
        _move(handlers.get("GET_BATCH_STARTED", []), self._fetch_start, last=True)
        _move(handlers.get("GET_BATCH_COMPLETED", []), self._fetch_end, last=False)
        for key, event in engine._allowed_events.items():
            entries = handlers.get(key, [])
            for i, entry in enumerate(entries):
                fn, args, kwargs, is_async, event_filter, attr, info = entry
                if self._own(info.handler):
                    continue
                if hasattr(info.handler, "stats") and (event, info.handler) not in self._background:
                    self._background.append((event, info.handler))
                fn = getattr(fn, "_profiled_original", fn)  # wrapped at an earlier run: wrapped afresh
                wrapped = self._timed(fn, is_async, event, _handler_name(info.handler))
                entries[i] = (wrapped, args, kwargs, is_async, event_filter, attr, info)
        process = engine._process_function
        process = getattr(process, "_profiled_original", process)
        engine._process_function = self._timed(process, engine._process_is_async, None, "")

    def _record(self, event: Any, name: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        if event is None:
            self.processing_times.append(elapsed)
        else:
            self.event_handlers_times.setdefault(event, {}).setdefault(name, []).append(elapsed)

    def _timed(self, fn: Callable[..., Any], is_async: bool, event: Any, name: str) -> Callable[..., Any]:
        record = self._record
        if is_async:

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    record(event, name, started)

            timed: Callable[..., Any] = timed_async
        else:

            def timed_sync(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    record(event, name, started)

            timed = timed_sync
        timed._profiled_original = fn  # type: ignore[attr-defined]
        return timed

    def get_results(self) -> list[Row]:
        """The aggregated results, as pytorch-ignite 0.5.5's rows.

        A row per (event, handler), in the order of the engine's events and of the handlers on each:
        ``[handler, event name, total, (min, index), (max, index), mean, std]`` in seconds rounded to 5 digits
        (``"not triggered"`` and ``"None"`` where there is nothing to count). Then the background rows (see
        the class), then ``["Total", "", total, "", "", "", ""]`` (the handlers' time in the loop, the
        background rows left out), ``["Processing", "None", ...]`` (the process function) and
        ``["Dataflow", "None", ...]`` (fetching the batches).
        """
        rows: list[Row] = [
            [handler, _event_name(event), *_stats(times)]
            for event, by_handler in self.event_handlers_times.items()
            for handler, times in by_handler.items()
        ]
        total = round(float(sum(sum(t) for by in self.event_handlers_times.values() for t in by.values())), 5)
        for event, bg in self._background:
            s = bg.stats
            mean: Any = round(s.time_spent / s.started, 5) if s.started else "None"
            spent: Any = round(s.time_spent, 5) if s.started else "not triggered"
            none = ("None", "None")
            rows.append([f"{_handler_name(bg)} [background]", _event_name(event), spent, none, none, mean, "None"])
        rows.append(["Total", "", total, "", "", "", ""])
        rows.append(["Processing", "None", *_stats(self.processing_times)])
        rows.append(["Dataflow", "None", *_stats(self.dataflow_times)])
        return rows

    _print_results_doc = """Print the rows of :meth:`get_results` as a table, as pytorch-ignite 0.5.5's static
        ``print_results(results)``; ``profiler.print_results()`` prints this profiler's own results.

        The handler rows, the ``Total`` row, then a line each for processing and data fetching. On a terminal
        the table fits its width: a long name folds onto the next line. Elsewhere (a pipe, a file, a CI log)
        it is as wide as its content, so that every name is whole, on one line.

        :param results: rows as :meth:`get_results` returns them; the last three are Total, Processing and
            Dataflow. They are not changed.
        :param console: where to print; a new rich ``Console`` on stdout by default.
        """
    print_results = _PrintResults()

    def write_results(self, output_path: str | Path) -> None:
        """Write the unaggregated times as CSV, with pytorch-ignite 0.5.5's columns.

        ``#`` (1, 2, ...), ``processing_stats``, ``dataflow_stats``, then ``"<handler> (<EVENT>)"`` for each
        handler row; a column shorter than the longest is padded with zeros. Unlike 0.5.5 it needs no pandas.
        The background rows have no column: their single invocations are not timed one by one.
        """
        headers = ["#", "processing_stats", "dataflow_stats"]
        columns: list[list[float]] = [self.processing_times, self.dataflow_times]
        for event, by_handler in self.event_handlers_times.items():
            for handler, times in by_handler.items():
                headers.append(f"{handler} ({_event_name(event)})")
                columns.append(times)
        length = max(len(c) for c in columns)
        with open(output_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            for i in range(length):
                writer.writerow([float(i + 1), *(float(c[i]) if i < len(c) else 0.0 for c in columns)])


def _event_name(event: Any) -> str:
    return str(getattr(event, "name", event))


def _move(entries: list[Entry], handler: Any, *, last: bool) -> None:
    for i, entry in enumerate(entries):
        if entry[6].handler == handler:
            entries.insert(len(entries) if last else 0, entries.pop(i))
            return


def _print(results: list[Row], console: Console) -> None:
    if len(results) < 3:
        raise ValueError("print_results needs the rows of get_results(), which end with Total, Processing, Dataflow")
    table = Table(title="Time per handler and event (s)")
    for header in _HEADERS:
        if header in ("Handler", "Event Name"):
            table.add_column(header, justify="left", overflow="fold")
        else:
            table.add_column(header, justify="right")
    for row in results[:-3]:
        table.add_row(*(Text(_cell(v)) for v in row))  # Text, not markup: "[background]" is a name, not a style
    table.add_section()
    table.add_row(*(Text(_cell(v)) for v in results[-3]))
    summaries = [
        "{} took total {}s [min/index: {}s/{}, max/index: {}s/{}, mean: {}s, std: {}s]".format(
            row[0], row[2], *row[3], *row[4], row[5], row[6]
        )
        for row in results[-2:]
    ]
    if console.is_terminal:
        console.print(table)
    else:
        width = max(console.width, Measurement.get(console, console.options.update(width=_UNBOUNDED), table).maximum)
        lines = console.render_lines(table, console.options.update(width=width), new_lines=True)
        console.print(Segments(segment for line in lines for segment in line), crop=False, end="")
    for summary in summaries:
        console.print(Text(summary), soft_wrap=not console.is_terminal)
