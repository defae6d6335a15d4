"""Time per event (all its handlers together), in the process function and fetching data, per iteration."""

from __future__ import annotations

import csv
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from ignite_async.engine import Engine, Events

__all__ = ["BasicTimeProfiler"]

# The events timed as a whole, with when their time is kept: once a run, per epoch, per iteration.
_ONCE = ("STARTED", "COMPLETED")
_PER_EPOCH = ("EPOCH_STARTED", "EPOCH_COMPLETED")
_PER_ITERATION = ("ITERATION_STARTED", "ITERATION_COMPLETED", "GET_BATCH_STARTED", "GET_BATCH_COMPLETED")
_CSV_EVENTS = (
    "STARTED",
    "COMPLETED",
    "EPOCH_STARTED",
    "EPOCH_COMPLETED",
    "ITERATION_STARTED",
    "ITERATION_COMPLETED",
    "GET_BATCH_STARTED",
    "GET_BATCH_COMPLETED",
)

_REPORT = """
 ----------------------------------------------------
| Time profiling stats (in seconds):                 |
 ----------------------------------------------------
total  |  min/index  |  max/index  |  mean  |  std

Processing function:
{processing_stats}

Dataflow:
{dataflow_stats}

Event handlers:
{total_time}
"""


class BasicTimeProfiler:
    """Time the process function, data fetching and each event's handlers (all together) at every iteration,
    epoch and run, with pytorch-ignite 0.5.5's ``BasicTimeProfiler`` results: :meth:`get_results`,
    :meth:`print_results` and :meth:`write_results` are the same, so code reading them ports unchanged.

    Attach it before ``run()``; each run (from ``STARTED``) starts its results afresh. The data needs a
    length, or the run an ``epoch_length``.

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> from ignite_async.handlers import BasicTimeProfiler
    >>> engine = Engine(lambda e, b: None)
    >>> profiler = BasicTimeProfiler()
    >>> profiler.attach(engine)
    >>> _ = asyncio.run(engine.run(range(10), max_epochs=2))
    >>> results = profiler.get_results()
    >>> list(results)
    ['processing_stats', 'dataflow_stats', 'event_handlers_stats', 'event_handlers_names']
    >>> list(results["processing_stats"])
    ['total', 'min/index', 'max/index', 'mean', 'std']
    >>> _ = BasicTimeProfiler.print_results(results)  # doctest: +SKIP
    """

    #: The events it does not time, as in 0.5.5.
    events_to_ignore: ClassVar[list[Any]] = [
        Events.EXCEPTION_RAISED,
        Events.TERMINATE,
        Events.TERMINATE_SINGLE_EPOCH,
        Events.DATALOADER_STOP_ITERATION,
        Events.INTERRUPT,
    ]

    def __init__(self) -> None:
        self.dataflow_times = torch.zeros(1)
        self.processing_times = torch.zeros(1)
        self.event_handlers_times: dict[Any, torch.Tensor] = {}
        self.event_handlers_names: dict[Any, list[str]] = {}
        self.max_epochs = 0
        self.total_num_iters = 0
        self._event_started = 0.0
        self._processing_started = 0.0
        self._dataflow_started = 0.0
        self._added: list[tuple[Any, Callable[..., Any]]] = []

    def attach(self, engine: Engine) -> None:
        """Profile ``engine``'s runs from their next ``STARTED``.

        :raises TypeError: if ``engine`` is not an ignite_async :class:`~ignite_async.Engine`.
        """
        if not isinstance(engine, Engine):
            raise TypeError(f"attach() needs an ignite_async Engine, got {type(engine).__name__}")
        if not engine.has_event_handler(self._started, Events.STARTED):
            _add(engine, Events.STARTED, self._started, first=True)

    def _timed_events(self) -> list[Any]:
        return [e for e in Events if e not in self.events_to_ignore]

    def _started(self, engine: Engine) -> None:
        data = engine.state.dataloader
        if hasattr(data, "__len__"):
            per_epoch = len(data)
        elif engine.state.epoch_length is not None:
            per_epoch = engine.state.epoch_length
        else:
            raise ValueError(
                "BasicTimeProfiler needs the length of an epoch: the data has no len(), so run it with "
                "trainer.run(..., epoch_length=epoch_length)"
            )
        self.max_epochs = int(engine.state.max_epochs or 1)
        self.total_num_iters = self.max_epochs * per_epoch
        self.dataflow_times = torch.zeros(self.total_num_iters)
        self.processing_times = torch.zeros(self.total_num_iters)
        self.event_handlers_times = {
            Events[name]: torch.zeros(1 if name in _ONCE else self.max_epochs if name in _PER_EPOCH else n_iters)
            for name in (*_ONCE, *_PER_EPOCH, *_PER_ITERATION)
            for n_iters in (self.total_num_iters,)
        }
        self.event_handlers_names = {
            e: [
                str(getattr(entry[6].handler, "__qualname__", type(entry[6].handler).__name__))
                for entry in engine._event_handlers.get(e.name, [])
                if getattr(entry[6].handler, "__self__", None) is not self  # not its own
            ]
            for e in self._timed_events()
        }
        self._added = []
        self._add_timing(engine, Events.STARTED, first=False)  # this event's last handler, appended as it fires
        for name in (*_PER_EPOCH, *_PER_ITERATION, "COMPLETED"):
            self._add_timing(engine, Events[name], first=True)
            self._add_timing(engine, Events[name], first=False)
        self._event_started = time.perf_counter()

    def _add_timing(self, engine: Engine, event: Any, *, first: bool) -> None:
        handler = self._first if first else self._last
        _add(engine, event, handler, event.name, first=first)
        self._added.append((event, handler))

    def _index(self, engine: Engine, name: str) -> int:
        if name in _ONCE:
            return 0
        return (engine.state.epoch if name in _PER_EPOCH else engine.state.iteration) - 1

    def _first(self, engine: Engine, name: str) -> None:
        now = time.perf_counter()
        if name == "ITERATION_COMPLETED":
            self._store(self.processing_times, engine.state.iteration - 1, now - self._processing_started)
        elif name == "GET_BATCH_STARTED":
            self._dataflow_started = now
        self._event_started = time.perf_counter()

    def _last(self, engine: Engine, name: str) -> None:
        now = time.perf_counter()
        self._store(self.event_handlers_times[Events[name]], self._index(engine, name), now - self._event_started)
        if name == "ITERATION_STARTED":
            self._processing_started = time.perf_counter()
        elif name == "GET_BATCH_COMPLETED":
            self._store(self.dataflow_times, engine.state.iteration - 1, now - self._dataflow_started)
        elif name == "COMPLETED":
            for event, handler in dict.fromkeys(self._added):  # as 0.5.5: the next run attaches them afresh
                engine.remove_event_handler(handler, event)
            self._added = []

    @staticmethod
    def _store(times: torch.Tensor, index: int, value: float) -> None:
        # As in 0.5.5, where the first batch is fetched at iteration 0 and lands at index -1 (the last). A
        # resumed run can go past the iterations counted at its start: those are not kept.
        if -len(times) <= index < len(times):
            times[index] = value

    @staticmethod
    def _stats(times: torch.Tensor) -> OrderedDict[str, Any]:
        data = times[times > 0]
        stats: OrderedDict[str, Any] = OrderedDict(total=data.sum().item() if len(data) else "not yet triggered")
        if len(data) > 1:
            stats["min/index"] = (data.min().item(), int(data.argmin().item()))
            stats["max/index"] = (data.max().item(), int(data.argmax().item()))
            stats["mean"] = data.mean().item()
            stats["std"] = data.std().item()
        return stats

    def get_results(self) -> OrderedDict[str, Any]:
        """The aggregated results, as 0.5.5's: ``processing_stats`` and ``dataflow_stats`` (each an ordered dict
        of ``total``, ``min/index``, ``max/index``, ``mean``, ``std`` over the non-zero times, the last four
        only with two or more), ``event_handlers_stats`` (the same per event name, and ``total_time``, a 0-d
        tensor) and ``event_handlers_names`` (``"<EVENT>_names"``: the handlers on that event).
        """
        events = self._timed_events()
        stats: dict[str, Any] = {e.name: self._stats(self.event_handlers_times.get(e, torch.zeros(1))) for e in events}
        stats["total_time"] = sum(
            (self.event_handlers_times.get(e, torch.zeros(1)).sum() for e in events), torch.tensor(0.0)
        )
        names = {f"{e.name}_names": self.event_handlers_names.get(e, []) for e in events}
        return OrderedDict(
            processing_stats=self._stats(self.processing_times),
            dataflow_stats=self._stats(self.dataflow_times),
            event_handlers_stats=stats,
            event_handlers_names=names,
        )

    @staticmethod
    def print_results(results: Mapping[str, Any]) -> str:
        """Print the results of :meth:`get_results` as 0.5.5's report, and return it.

        :param results: what :meth:`get_results` returned.
        """

        def cell(v: Any) -> str:
            if isinstance(v, str):
                return v
            if isinstance(v, tuple):
                return f"{v[0]:.5f}/{v[1]}"
            return f"{float(v):.5f}"

        def line(stats: Mapping[str, Any]) -> str:
            return " | ".join(cell(v) for v in stats.values())

        handlers = results["event_handlers_stats"]
        report = _REPORT.format(
            processing_stats=line(results["processing_stats"]),
            dataflow_stats=line(results["dataflow_stats"]),
            total_time=cell(handlers["total_time"]),
        )
        for name in ("STARTED", "EPOCH_STARTED", "ITERATION_STARTED", "ITERATION_COMPLETED", "EPOCH_COMPLETED"):
            report += f"\n- Events.{name}: {results['event_handlers_names'][f'{name}_names']}\n{line(handlers[name])}\n"
        report += f"\n- Events.COMPLETED: {results['event_handlers_names']['COMPLETED_names']}\n"
        report += f"{line(handlers['COMPLETED'])}\n"
        print(report)
        return report

    def write_results(self, output_path: str | Path) -> None:
        """Write the times of every iteration as CSV, with 0.5.5's columns: ``epoch``, ``iteration``,
        ``processing_stats``, ``dataflow_stats``, then ``Event_<EVENT>`` for STARTED, COMPLETED, EPOCH_STARTED,
        EPOCH_COMPLETED, ITERATION_STARTED, ITERATION_COMPLETED, GET_BATCH_STARTED and GET_BATCH_COMPLETED
        (a run's or an epoch's time repeated on each of its iterations). Unlike 0.5.5 it needs no pandas.
        """
        per_epoch = self.total_num_iters // self.max_epochs if self.max_epochs else 0
        columns: list[list[float]] = [
            [float(i // per_epoch + 1) for i in range(self.total_num_iters)],
            [float(i + 1) for i in range(self.total_num_iters)],
            self.processing_times.tolist(),
            self.dataflow_times.tolist(),
        ]
        for name in _CSV_EVENTS:
            times = self.event_handlers_times[Events[name]].tolist()
            repeat = self.total_num_iters if name in _ONCE else per_epoch if name in _PER_EPOCH else 1
            columns.append([t for t in times for _ in range(repeat)])
        with open(output_path, "w", newline="") as f:
            writer = csv.writer(f)
            header = ["epoch", "iteration", "processing_stats", "dataflow_stats"]
            writer.writerow(header + [f"Event_{name}" for name in _CSV_EVENTS])
            writer.writerows(zip(*columns, strict=True))


def _add(engine: Engine, event: Any, handler: Callable[..., Any], *args: Any, first: bool) -> None:
    engine.add_event_handler(event, handler, *args)
    if first:
        entries = engine._event_handlers[event.name]
        entries.insert(0, entries.pop())
