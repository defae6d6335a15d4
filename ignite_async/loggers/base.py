"""The logger pattern of pytorch-ignite: handlers that turn engine state into records, shipped in the background.

Handlers run on the event loop and only collect :class:`Record` objects (tag, name, step, value, time);
a logger ships them without blocking the training step, and flushes what it holds when a run ends
(however it ends) and when it is closed, waiting at most ``flush_timeout`` seconds for it.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import threading
import time
import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import anyio
import torch

from ignite_async._threads import run_sync
from ignite_async.distributed.comm import get_rank
from ignite_async.engine import Engine, Events
from ignite_async.metrics.metric import select_metrics

__all__ = ["BaseLogger", "LoggerWarning", "Record", "ThreadedLogger", "ThreadedLoggerStatistics"]

_logger = logging.getLogger("ignite_async")

# An idle writer thread waits this long for more records before it exits (a new one starts when needed).
_WRITER_LINGER = 1.0


class LoggerWarning(UserWarning):
    """A logger lost records, or could not write or send them in time; the message says how many and why."""


@dataclass(frozen=True)
class Record:
    """One logged value."""

    tag: str
    name: str
    step: int
    value: float
    time: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _values(name: str, value: Any) -> list[tuple[str, float]]:
    """``(name, float)`` pairs for a number, a 0-d tensor, or a 1-d tensor (one per element, ``name/i``)."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            return [(name, float(value.item()))]
        if value.ndim == 1:
            return [(f"{name}/{i}", float(v)) for i, v in enumerate(value.tolist())]
        raise TypeError(f"cannot log {name!r}: a tensor of shape {tuple(value.shape)} (only 0-d and 1-d)")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"cannot log {name!r}: {value!r} is not a number")
    return [(name, float(value))]


def check_seconds(name: str, value: object, *, zero_ok: bool = False) -> float:
    """``value`` as a finite number of seconds (> 0, or >= 0 with ``zero_ok``), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'} seconds, got {value!r}")
    return float(value)


class BaseLogger(ABC):
    """Collects records from handlers attached to engines; subclasses ship them (:meth:`_ship`)."""

    def __init__(self) -> None:
        self._watched: weakref.WeakSet[Engine] = weakref.WeakSet()

    # ------------------------------------------------------------------ attaching

    def attach_output_handler(
        self,
        engine: Engine,
        event_name: Any,
        tag: str,
        metric_names: Sequence[str] | str | None = None,
        output_transform: Callable[[Any], Any] | None = None,
        global_step_transform: Callable[[Engine, Any], int] | None = None,
    ) -> None:
        """Log ``engine.state.metrics`` (``metric_names``, or ``"all"``) and/or ``output_transform(output)``.

        A name missing from ``engine.state.metrics`` when the handler fires is skipped with a ``UserWarning``
        (once per name), as in pytorch-ignite; the other values are logged.
        """
        if not isinstance(tag, str):
            raise TypeError(f"tag must be a string, got {tag!r}")
        if metric_names not in (None, "all") and (
            isinstance(metric_names, str) or not isinstance(metric_names, Sequence)
        ):
            raise TypeError(f"metric_names must be a list of names or 'all', got {metric_names!r}")
        if metric_names is None and output_transform is None:
            raise ValueError("give metric_names or output_transform: there is nothing to log otherwise")
        for fn, what in ((output_transform, "output_transform"), (global_step_transform, "global_step_transform")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what} must be callable, got {fn!r}")

        missing_warned: set[str] = set()  # this handler's metric names warned about as missing
        owner = f"{type(self).__name__}'s handler {tag!r}"

        def collect(engine: Engine) -> list[Record]:
            values: list[tuple[str, float]] = []
            for name, value in select_metrics(engine.state.metrics, metric_names, missing_warned, owner).items():
                values += _values(name, value)
            if output_transform is not None:
                out = output_transform(engine.state.output)
                for name, value in (out if isinstance(out, dict) else {"output": out}).items():
                    values += _values(str(name), value)
            return self._records(engine, tag, values, global_step_transform)

        self._attach(engine, event_name, collect)

    def attach_opt_params_handler(
        self,
        engine: Engine,
        event_name: Any,
        optimizer: torch.optim.Optimizer,
        param_name: str = "lr",
        tag: str | None = None,
    ) -> None:
        """Log ``param_name`` of each of ``optimizer``'s param groups (``name/group{i}``)."""
        if not isinstance(getattr(optimizer, "param_groups", None), Sequence):
            raise TypeError(f"optimizer must have param_groups, got {type(optimizer).__name__}")
        prefix = f"{tag}/" if tag else ""

        def collect(engine: Engine) -> list[Record]:
            values = [
                (f"{prefix}{param_name}/group{i}", float(group[param_name]))
                for i, group in enumerate(optimizer.param_groups)
            ]
            return self._records(engine, "optimizer", values, None)

        self._attach(engine, event_name, collect)

    def _attach(self, engine: Engine, event_name: Any, collect: Callable[[Engine], list[Record]]) -> None:
        async def log(engine: Engine) -> None:
            await self._ship(engine, collect(engine))

        log.__qualname__ = f"{type(self).__name__}.log"
        if get_rank() != 0:
            return  # in a distributed job only rank 0 logs: one copy of each record, written once
        engine.add_event_handler(event_name, log)
        if engine not in self._watched:
            self._watched.add(engine)
            self._watch(engine)

    def _watch(self, engine: Engine) -> None:
        """Called once per engine, at its first attach: hook the ends of its runs."""
        engine._run_end_callbacks.append(functools.partial(self._on_run_end, engine))  # however the run ends
        engine.add_event_handler(Events.INTERRUPT, self._on_interrupt)

    def _another_run_is_on(self, engine: Engine) -> bool:
        """Whether another engine this logger watches is running (e.g. the trainer around an evaluator)."""
        return any(other._running for other in list(self._watched) if other is not engine)

    @staticmethod
    def _records(
        engine: Engine,
        tag: str,
        values: list[tuple[str, float]],
        global_step_transform: Callable[[Engine, Any], int] | None,
    ) -> list[Record]:
        event = engine.last_event_name
        if global_step_transform is not None:
            step = int(global_step_transform(engine, event))
        else:
            attr = engine._event_to_attr.get(getattr(event, "name", str(event)), "iteration")
            step = int(getattr(engine.state, attr))
        now = time.time()
        return [Record(tag, name, step, value, now) for name, value in values]

    # ------------------------------------------------------------------ shipping

    @abstractmethod
    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        """Take ``records`` (on the event loop); send or write them without blocking the training step."""

    async def _on_run_end(self, engine: Engine | None = None, error: BaseException | None = None) -> None:
        """When a run ends, however it ends: send or write everything held."""
        await self.flush()

    async def _on_interrupt(self, engine: Engine) -> None:
        if engine._cancelling:
            return  # the run is being cancelled, not paused: its end-of-run flush follows
        await self.flush()  # paused: what was logged is out

    @abstractmethod
    async def flush(self) -> None:
        """Send or write everything held; return once it is done (or its time is up)."""

    async def close(self) -> None:
        await self.flush()

    async def __aenter__(self) -> BaseLogger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


@dataclass
class ThreadedLoggerStatistics:
    """Counts of a :class:`ThreadedLogger`'s records, with ``written + dropped + pending == logged`` always.

    ``logged``: records the handlers collected; ``written``: records the sink took; ``dropped``: records of
    writes that failed, or logged after :meth:`~ThreadedLogger.close`; ``pending``: not written yet
    (waiting, or in the write running now); ``writes``: writes that completed.
    """

    written: int = 0
    dropped: int = 0
    pending: int = 0
    logged: int = 0
    writes: int = 0


class ThreadedLogger(BaseLogger):
    """A logger whose sink is written by a writer thread of its own: one write at a time, in order, each
    taking every record collected so far.

    The event loop only appends records to a list (under a lock that no write holds), so a slow sink never
    holds the training step back. The end of a run and :meth:`close` wait at most ``flush_timeout`` seconds
    for the writes (a sink that hangs cannot hang the run); records still unwritten then stay pending, and
    are reported in a :class:`LoggerWarning`. When the last run that logs to it ends, the sink is released
    (:meth:`_release_sink`); the next write may reopen it. Subclasses implement :meth:`_write` and
    :meth:`_close_sink`, both called only from the writer thread.

    :param flush_timeout: seconds that the end of a run, :meth:`flush` and :meth:`close` wait for writes.
    :raises ValueError: for a ``flush_timeout`` that is not a finite number > 0.
    """

    def __init__(self, *, flush_timeout: float = 10.0) -> None:
        super().__init__()
        self.flush_timeout = check_seconds("flush_timeout", flush_timeout)
        # Guards everything below. The loop holds it only to append or read counters; writes happen outside it.
        self._cond = threading.Condition()
        self._pending: list[Record] = []
        self._in_write = 0  # records in the write running now
        self._write_started: float | None = None
        self._logged = self._written = self._dropped = self._writes = 0
        # Flush requests, by number: the writer serves every request made before it took its records.
        self._requested = 0
        self._served = 0
        self._sink_action: Literal["release", "close"] | None = None  # for the writer, after its next write
        self._error: BaseException | None = None  # a failed write, raised on the loop at the next chance
        self._closed = False
        self._thread: threading.Thread | None = None
        self._writer_waiting = False

    @abstractmethod
    def _write(self, records: list[Record], durable: bool) -> None:
        """Write ``records`` to the sink (in the writer thread); with ``durable``, make it survive a crash."""

    @abstractmethod
    def _close_sink(self) -> None:
        """Release the sink for good (in the writer thread)."""

    def _release_sink(self) -> None:
        """Let go of the sink's files when no run is logging (in the writer thread); :meth:`_write` reopens
        it if the logger is used again. By default the sink stays open until :meth:`close`."""

    def statistics(self) -> ThreadedLoggerStatistics:
        """Records logged, written, dropped and pending, and completed writes."""
        with self._cond:
            return ThreadedLoggerStatistics(
                written=self._written,
                dropped=self._dropped,
                pending=len(self._pending) + self._in_write,
                logged=self._logged,
                writes=self._writes,
            )

    # ------------------------------------------------------------------ on the event loop

    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        with self._cond:
            self._logged += len(records)
            if self._closed:
                self._dropped += len(records)
            else:
                self._pending += records
                if self._thread is None:
                    self._start_writer()
                elif self._writer_waiting:  # else it takes these when its write is done
                    self._cond.notify()
            error, self._error = self._error, None
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed: {len(records)} records not written")
        if error is not None:
            raise error

    async def flush(self) -> None:
        """Write (and make durable) every record held now; wait at most ``flush_timeout`` seconds for it."""
        await self._flush(None)

    async def _on_run_end(self, engine: Engine | None = None, error: BaseException | None = None) -> None:
        await self._flush(None if engine is not None and self._another_run_is_on(engine) else "release")

    async def close(self) -> None:
        """Write what is held and close the sink, waiting at most ``flush_timeout`` seconds; later records
        are refused (a RuntimeError)."""
        if self._closed:
            return
        await self._flush("close")

    async def _flush(self, action: Literal["release", "close"] | None) -> None:
        with self._cond:
            if self._closed:
                return
            if action == "close":
                self._closed = True
            self._requested += 1
            ticket = self._requested
            if action is not None and self._sink_action != "close":
                self._sink_action = action
            self._start_writer()
            self._cond.notify()
        # A waiter abandoned on cancellation only sleeps out its timeout; the writer goes on regardless.
        try:
            done = await run_sync(self._wait_served, ticket, self.flush_timeout, grace=0.0, name="ignite_async-flush")
        except anyio.get_cancelled_exc_class():
            # Not a warning: with warnings as errors, it would replace the cancellation.
            _logger.warning(
                "%s: flush cancelled with %d records not written yet", type(self).__name__, self._unwritten()
            )
            raise
        with self._cond:
            error, self._error = self._error, None
            unwritten = self._unwritten()
            busy_for = None if self._write_started is None else time.monotonic() - self._write_started
        if not done:
            stuck = f" (a write has been running for {busy_for:.1f} s)" if busy_for is not None else ""
            warnings.warn(
                f"{type(self).__name__}: {unwritten} records not written within flush_timeout="
                f"{self.flush_timeout:g} s{stuck}; they stay pending and are written if the sink recovers "
                "(lost if the process exits first)",
                LoggerWarning,
                stacklevel=3,
            )
        if error is not None:
            raise error

    def _unwritten(self) -> int:
        with self._cond:
            return len(self._pending) + self._in_write

    def _wait_served(self, ticket: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._served >= ticket, timeout)

    def _start_writer(self) -> None:
        # With self._cond held.
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run_writer, name=f"ignite_async-{type(self).__name__}-writer", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------------ in the writer thread

    def _run_writer(self) -> None:
        while True:
            with self._cond:
                while not self._pending and self._served == self._requested:
                    self._writer_waiting = True
                    woken = self._cond.wait(_WRITER_LINGER)
                    self._writer_waiting = False
                    if not woken and not self._pending and self._served == self._requested:
                        self._thread = None  # idle: the next record starts a new writer
                        return
                records, self._pending = self._pending, []
                ticket = self._requested
                durable = ticket != self._served
                action, self._sink_action = self._sink_action, None
                self._in_write = len(records)
                self._write_started = time.monotonic()
            write_error: BaseException | None = None
            sink_error: BaseException | None = None
            try:
                if records or durable:
                    self._write(records, durable)
            except BaseException as exc:  # handed to the loop, which raises it
                write_error = exc
            try:
                if action == "close":
                    self._close_sink()
                elif action == "release":
                    self._release_sink()
            except BaseException as exc:
                sink_error = exc
            with self._cond:
                self._in_write = 0
                self._write_started = None
                if write_error is None:
                    self._written += len(records)
                    self._writes += 1 if records else 0
                else:
                    self._dropped += len(records)
                error = write_error or sink_error
                if error is not None and self._error is None:
                    self._error = error
                self._served = ticket
                self._cond.notify_all()
