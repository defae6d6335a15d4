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

    def key(self, sep: str = "/") -> str:
        """pytorch-ignite 0.5.5's name for this value in a tracker: the tag and the name's parts joined by
        ``sep`` (``"training/loss"``; MLflow's handlers join with spaces), and an optimizer parameter as
        ``"[tag/]lr/group_0"``."""
        parts = self.name.split("/")
        if self.tag == "optimizer":  # attach_opt_params_handler's records: "[tag/]lr/group0"
            if parts[-1].startswith("group"):
                parts[-1] = f"group_{parts[-1][5:]}"
            return sep.join(parts)
        return sep.join([self.tag, *parts] if self.tag else parts)


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

    ``logged``: records the handlers collected; ``written`` (also ``sent``): records the sink took;
    ``dropped``: records given up (a failed write, more than ``max_pending`` waiting, logged after
    :meth:`~ThreadedLogger.close`); ``pending``: not written yet (waiting, or in the write running now);
    ``retried``: writes attempted again after a failure; ``writes``: writes that completed.
    """

    written: int = 0
    dropped: int = 0
    pending: int = 0
    logged: int = 0
    writes: int = 0
    retried: int = 0

    @property
    def sent(self) -> int:
        """The records the sink took (``written``), under the name :class:`HTTPLoggerStatistics` uses."""
        return self.written


class ThreadedLogger(BaseLogger):
    """A logger whose sink is written by a writer thread of its own: one write at a time, in order, each
    taking the records collected so far (at most ``_write_batch_size`` of them).

    The event loop only appends records to a list (under a lock that no write holds), so a slow sink never
    holds the training step back. The end of a run and :meth:`close` wait at most ``flush_timeout`` seconds
    for the writes (a sink that hangs cannot hang the run); records still unwritten then stay pending, and
    are reported in a :class:`LoggerWarning`. With ``max_pending``, at most that many records wait: beyond
    it the oldest are dropped, counted and reported. A failed write goes to :meth:`_on_write_error`, which
    retries it, drops its records, or (the default) raises the error on the event loop at the next record or
    flush. When the last run that logs to it ends, the sink is released (:meth:`_release_sink`); the next
    write may reopen it. Subclasses implement :meth:`_write` and :meth:`_close_sink`, both called only from
    the writer thread.

    :param flush_timeout: seconds that the end of a run, :meth:`flush` and :meth:`close` wait for writes.
    :param max_pending: the most records that may wait for the sink (None: no bound).
    :raises ValueError: for a ``flush_timeout`` that is not a finite number > 0, or a ``max_pending`` < 1.
    """

    #: The most records one :meth:`_write` gets (None: all that are pending), e.g. a tracker's batch limit.
    _write_batch_size: int | None = None
    #: Seconds from the start of a write to the start of the next one, unless a flush asks sooner (0: at once).
    _write_interval: float = 0.0

    def __init__(self, *, flush_timeout: float = 10.0, max_pending: int | None = None) -> None:
        super().__init__()
        self.flush_timeout = check_seconds("flush_timeout", flush_timeout)
        if max_pending is not None and (isinstance(max_pending, bool) or not isinstance(max_pending, int)):
            raise ValueError(f"max_pending must be an integer >= 1 or None, got {max_pending!r}")
        if max_pending is not None and max_pending < 1:
            raise ValueError(f"max_pending must be >= 1 (or None for no bound), got {max_pending!r}")
        self.max_pending = max_pending
        # Guards everything below. The loop holds it only to append or read counters; writes happen outside it.
        self._cond = threading.Condition()
        self._pending: list[Record] = []
        self._in_write = 0  # records in the write running now
        self._write_started: float | None = None
        self._logged = self._written = self._dropped = self._writes = self._retried = 0
        # Records ever queued, and of those ever taken (written, or dropped for max_pending): a flush is
        # served once every record queued before it was taken and its write is done.
        self._queued = self._taken = 0
        self._requested = 0
        self._served = 0
        self._requests: list[tuple[int, int, Literal["release", "close"] | None]] = []  # (ticket, queued, action)
        self._error: BaseException | None = None  # a failed write, raised on the loop at the next chance
        self._reports: list[str] = []  # dropped records, for a LoggerWarning on the loop
        self._overflowed = 0  # dropped for max_pending since the last warning about it
        self._closed = False
        self._abandoned = False  # closed with writes unfinished: a retrying write gives up
        self._thread: threading.Thread | None = None
        self._writer_waiting = False  # for records: notify it of new ones
        self._next_write_at = 0.0  # monotonic: no write starts before it, but for a flush

    @abstractmethod
    def _write(self, records: list[Record], durable: bool) -> None:
        """Write ``records`` to the sink (in the writer thread); with ``durable``, make it survive a crash."""

    @abstractmethod
    def _close_sink(self) -> None:
        """Release the sink for good (in the writer thread)."""

    def _release_sink(self) -> None:
        """Let go of the sink's files when no run is logging (in the writer thread); :meth:`_write` reopens
        it if the logger is used again. By default the sink stays open until :meth:`close`."""

    def _on_write_error(self, error: BaseException, attempt: int) -> float | Literal["drop", "raise"]:
        """Decide what becomes of the records of a failed :meth:`_write` (in the writer thread).

        ``attempt`` is 0 at the first failure of these records. Return a delay in seconds to write the same
        records again after it (counted in ``statistics().retried``), ``"drop"`` to drop them (counted, and
        reported in a :class:`LoggerWarning` on the event loop), or ``"raise"`` (the default) to drop them and
        raise ``error`` on the event loop at the next record or flush, failing the run.
        """
        return "raise"

    def _report(self, text: str) -> None:
        """Have ``text`` said in a :class:`LoggerWarning` on the event loop, at the next record or flush
        (for the writer thread, which must not warn where nobody sees it)."""
        with self._cond:
            self._reports.append(text)

    def statistics(self) -> ThreadedLoggerStatistics:
        """Records logged, written, dropped and pending, retried and completed writes."""
        with self._cond:
            return ThreadedLoggerStatistics(
                written=self._written,
                dropped=self._dropped,
                pending=len(self._pending) + self._in_write,
                logged=self._logged,
                writes=self._writes,
                retried=self._retried,
            )

    # ------------------------------------------------------------------ on the event loop

    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        overflow_warning = None
        with self._cond:
            self._logged += len(records)
            if self._closed:
                self._dropped += len(records)
            else:
                self._pending += records
                self._queued += len(records)
                overflow_warning = self._drop_overflow()
                if self._thread is None:
                    self._start_writer()
                elif self._writer_waiting:  # else it takes these when its write (or write slot) is done
                    self._cond.notify_all()
            error, self._error = self._error, None
            reports, self._reports = self._reports, []
        if overflow_warning is not None:
            warnings.warn(overflow_warning, LoggerWarning, stacklevel=3)
        self._warn(reports)
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed: {len(records)} records not written")
        if error is not None:
            raise error

    def _drop_overflow(self) -> str | None:
        # With self._cond held. The oldest go: the newest say most about where training is now.
        if self.max_pending is None or len(self._pending) <= self.max_pending:
            return None
        over = len(self._pending) - self.max_pending
        del self._pending[:over]
        self._taken += over
        self._dropped += over
        first = self._overflowed == 0
        self._overflowed += over
        if not first:
            return None  # one warning per episode; the flush reports the total
        return (
            f"{type(self).__name__}: more than max_pending={self.max_pending} records wait for a sink slower "
            "than the logging: dropping the oldest (counted in statistics().dropped)"
        )

    def _warn(self, reports: list[str]) -> None:
        for report in reports:
            warnings.warn(f"{type(self).__name__}: {report}", LoggerWarning, stacklevel=4)

    async def flush(self) -> None:
        """Write (and make durable) every record held now; wait at most ``flush_timeout`` seconds for it."""
        await self._flush(None)

    async def _on_run_end(self, engine: Engine | None = None, error: BaseException | None = None) -> None:
        await self._flush(None if engine is not None and self._another_run_is_on(engine) else "release")

    async def close(self) -> None:
        """Write what is held and close the sink, waiting at most ``flush_timeout`` seconds; later records
        are refused (a RuntimeError), and records still unwritten then are dropped."""
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
            self._requests.append((ticket, self._queued, action))
            self._start_writer()
            self._cond.notify_all()
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
            if not done and action == "close":
                self._abandoned = True  # a write being retried gives up: nothing will wait for it
                self._cond.notify_all()
            error, self._error = self._error, None
            reports, self._reports = self._reports, []
            overflowed, self._overflowed = self._overflowed, 0
            unwritten = self._unwritten()
            busy_for = None if self._write_started is None else time.monotonic() - self._write_started
        if overflowed:
            reports.append(
                f"{overflowed} records dropped since the last flush: more than max_pending={self.max_pending}"
            )
        self._warn(reports)
        if not done and unwritten == 0:
            warnings.warn(
                f"{type(self).__name__}: every record is written, but letting go of the sink (e.g. a tracker's "
                f"final status) did not finish within flush_timeout={self.flush_timeout:g} s; it goes on in the "
                "writer thread",
                LoggerWarning,
                stacklevel=3,
            )
        elif not done:
            stuck = f" (a write has been running for {busy_for:.1f} s)" if busy_for is not None else ""
            fate = (
                "the logger is closed: they are lost"
                if action == "close"
                else "they stay pending and are written if the sink recovers (lost if the process exits first)"
            )
            warnings.warn(
                f"{type(self).__name__}: {unwritten} records not written within flush_timeout="
                f"{self.flush_timeout:g} s{stuck}; {fate}",
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

    def _take(self) -> tuple[list[Record], int, Literal["release", "close"] | None] | None:
        """The next records to write, the flush ticket their write serves, and the sink action after it;
        None once idle for a while (with self._cond held)."""
        while not self._requests:
            if self._pending:
                # Records wait for the next write slot, so a remote sink gets fewer, larger requests; a
                # flush request (notified) does not wait for it.
                early = self._next_write_at - time.monotonic()
                if early <= 0:
                    break
                self._cond.wait(early)
                continue
            self._writer_waiting = True
            woken = self._cond.wait(_WRITER_LINGER)
            self._writer_waiting = False
            if not woken and not self._pending and not self._requests:
                self._thread = None  # idle: the next record starts a new writer
                return None
        size = self._write_batch_size
        if size is None or len(self._pending) <= size:
            records, self._pending = self._pending, []  # a swap: the loop's lock is held for no copy
        else:
            records, self._pending = self._pending[:size], self._pending[size:]
        self._taken += len(records)
        ticket = self._served
        action: Literal["release", "close"] | None = None
        while self._requests and self._requests[0][1] <= self._taken:
            ticket, _, requested_action = self._requests.pop(0)
            if requested_action == "close" or (requested_action == "release" and action is None):
                action = requested_action
        self._in_write = len(records)
        self._write_started = time.monotonic()
        self._next_write_at = self._write_started + self._write_interval
        return records, ticket, action

    def _run_writer(self) -> None:
        while True:
            with self._cond:
                taken = self._take()
                if taken is None:
                    return
                records, ticket, action = taken
                durable = ticket != self._served
            write_error = self._write_retrying(records, durable)
            with self._cond:  # counted before the sink action, which may take a while (a tracker's status)
                self._in_write = 0
                self._write_started = None
                if write_error is None:
                    self._written += len(records)
                    self._writes += 1 if records else 0
                else:
                    self._dropped += len(records)
            sink_error: BaseException | None = None
            try:
                if action == "close":
                    self._close_sink()
                elif action == "release":
                    self._release_sink()
            except BaseException as exc:
                sink_error = exc
            with self._cond:
                if sink_error is not None and self._error is None:
                    self._error = sink_error
                self._served = ticket
                self._cond.notify_all()

    def _write_retrying(self, records: list[Record], durable: bool) -> BaseException | None:
        """Write ``records``, as :meth:`_on_write_error` decides on failures; the error if they are dropped."""
        attempt = 0
        while True:
            try:
                if records or durable:
                    self._write(records, durable)
                return None
            except BaseException as exc:
                try:
                    decision = self._on_write_error(exc, attempt)
                except BaseException as hook_error:  # a broken hook must not kill the writer
                    hook_error.__context__ = exc
                    exc, decision = hook_error, "raise"
                if not isinstance(decision, str):
                    with self._cond:
                        # A closed logger whose flush timed out waits for nobody: give up rather than retry.
                        if not self._cond.wait_for(lambda: self._abandoned, max(0.0, float(decision))):
                            self._retried += 1
                            attempt += 1
                            continue
                        decision = "drop"
                if decision == "drop":
                    self._report(f"{len(records)} records dropped: {type(exc).__name__}: {exc}")
                else:
                    with self._cond:
                        if self._error is None:
                            self._error = exc
                return exc
