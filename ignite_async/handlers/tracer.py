"""A timeline of a run: what ran when, and beside what, as a Chrome trace / Perfetto JSON file.

:class:`Tracer` records, per iteration, the data fetch, the process function, every event firing with the
handlers it called, and every task that ran beside the loop (background handlers, spawned tasks) with the
event that started it; a sync background handler's call also shows on the row of the worker thread that
ran it. Where a step runs on CUDA, the GPU time of each process function call shows on a row of its own.
The file is written when the run ends, however it ends; open it in ui.perfetto.dev or chrome://tracing.

How rows are laid out: the event loop's thread is one row, where spans nest (a handler inside its firing);
each task beside it gets a row ("tasks #n") for as long as it runs, reused once it is free, so that
overlapping tasks never share a row; worker threads and the GPU have rows of their own.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["Tracer"]

logger = logging.getLogger("ignite_async")

# Virtual thread ids of the task rows and the GPU row: above any real thread id (Linux's pid_max <= 2**22).
_TASK_TID_BASE = 1 << 30
_CUDA_TID = (1 << 30) - 1

_perf = time.perf_counter


# A span's args: a dict, or an int for the iteration (no dict to build per span on the hot path).
_Args = dict[str, Any] | int | None
# A recorded span: (name, category, tid, start, end, args), times from perf_counter.
_Span = tuple[str, str, int, float, float, _Args]


def _as_dict(args: _Args) -> dict[str, Any]:
    if args is None:
        return {}
    return {"iteration": args} if isinstance(args, int) else args


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "completed"
    if isinstance(error, (anyio.get_cancelled_exc_class(), KeyboardInterrupt)):
        return "cancelled"
    return f"failed: {error!r}"


class _Lane:
    """One row of the trace: its thread id and the spans open on it (innermost last)."""

    __slots__ = ("stack", "tid")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.stack: list[tuple[str, str, float, _Args]] = []


class Tracer:
    """Record a run's timeline and write it, at the run's end, as Chrome trace JSON (Trace Event Format).

    Spans are ``"X"`` events (``ts``/``dur`` in µs) with a category: ``data`` (the fetch of a batch),
    ``process`` (the process function), ``event`` (a firing that called at least one handler), ``handler``
    (one handler call, inside its firing), ``background`` and ``task`` (a background handler's invocation, a
    spawned task: ``args.fired_by`` names the event that started it, ``args.outcome`` how it ended),
    ``thread`` (a sync background handler's call on its worker thread), ``cuda`` (the GPU time of a process
    function call, measured with ``torch.cuda.Event``) and ``run`` (the whole run, with its outcome).
    Rows are named by ``"M"`` ``thread_name`` events.

    Attaching costs about a microsecond per span; an engine without a tracer pays nothing (one attribute
    check per handler firing). Past ``max_events`` spans, further spans are dropped and counted
    (``dropped``, also in the file's ``otherData``).

    :param path: the JSON file to write (replaced at each write).
    :param max_events: the most spans kept in memory.
    :param cuda: record GPU spans with ``torch.cuda.Event``; ``None``: if torch is imported and CUDA is available.
    :raises ValueError: if ``max_events < 1``, or ``cuda=True`` without an available CUDA device.

    >>> import asyncio, json, pathlib, tempfile
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers.tracer import Tracer
    >>> engine = Engine(lambda engine, batch: batch)
    >>> _ = engine.add_event_handler(Events.EPOCH_COMPLETED, lambda: None)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "trace.json"
    >>> Tracer(path).attach(engine)
    >>> _ = asyncio.run(engine.run(range(3), max_epochs=2))
    >>> spans = [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
    >>> sorted({e["cat"] for e in spans})
    ['data', 'event', 'handler', 'process', 'run']
    """

    def __init__(self, path: str | os.PathLike[str], *, max_events: int = 1_000_000, cuda: bool | None = None) -> None:
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ValueError(f"Tracer(max_events=...) must be an integer >= 1, got {max_events!r}")
        self.path = Path(path)
        self.max_events = max_events
        #: Spans not kept because ``max_events`` were already recorded.
        self.dropped = 0
        #: Seconds the last write took, from the run's end to the file in place.
        self.write_seconds = 0.0
        # (name, category, tid, start, end, args), times from perf_counter: turned into JSON only when written.
        self._events: list[_Span] = []
        self._thread_lanes: dict[int, _Lane] = {}
        self._thread_names: dict[int, str] = {}
        self._free_task_lanes: list[_Lane] = []
        self._task_lanes = 0
        self._run_first_event = 0  # index in _events of the first span of the current run
        self._names: dict[int, tuple[object, str]] = {}
        self._origin = _perf()
        # The row of the task running now (a task beside the loop); unset: the row of the current thread.
        self._lane_var: ContextVar[_Lane | None] = ContextVar(f"ignite_async_tracer_lane_{id(self)}", default=None)
        self._cuda = self._cuda_recorder(cuda)

    def __repr__(self) -> str:
        return f"Tracer({str(self.path)!r}, {len(self._events)} spans, {self.dropped} dropped)"

    # ------------------------------------------------------------------ attaching

    def attach(self, engine: Engine, *, write_at_end: bool = True) -> None:
        """Trace ``engine``'s runs from its next run on, writing the file each time one ends (``write_at_end``).

        Attach the same tracer to an evaluator with ``write_at_end=False`` to see its steps inside the
        trainer's trace, on the row of the task that runs it.

        :raises OSError: (the original kind, e.g. ``FileNotFoundError``) if the file cannot be written.
        :raises ValueError: if another tracer is attached to ``engine``.
        """
        if engine._tracer is not None and engine._tracer is not self:
            raise ValueError(f"{engine!r} already has a tracer, {engine._tracer!r}: attach one tracer per engine")
        self._check_writable()
        if engine._tracer is None:
            engine._tracer = self
            if write_at_end:
                engine._run_end_callbacks.append(functools.partial(self._on_run_end, engine))

    def _check_writable(self) -> None:
        path = self.path
        existed = path.exists()
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "is a directory", str(path))
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise type(exc)(
                exc.errno,
                f"Tracer cannot write its trace to {path}: {exc.strerror}; pass a file path in a writable directory",
                str(path),
            ) from exc
        if not existed:
            with contextlib.suppress(OSError):
                path.unlink()

    # ------------------------------------------------------------------ recording (called by the engine)

    def _lane(self) -> _Lane:
        lane = self._lane_var.get()
        if lane is not None:
            return lane
        lane = self._thread_lanes.get(threading.get_ident())
        return lane if lane is not None else self._new_thread_lane()

    def _new_thread_lane(self) -> _Lane:
        tid = threading.get_native_id()
        lane = self._thread_lanes[threading.get_ident()] = _Lane(tid)
        self._thread_names[tid] = f"{threading.current_thread().name} (event loop)"
        return lane

    # begin() and end() are the per-span cost: a pair must stay well under the 2 µs budget (see
    # benchmarks/engine_overhead.py), hence the inlined lookups and the iteration kept as a bare int.

    def begin(self, name: str, cat: str, args: _Args = None) -> int:
        """Open a span on the current row; return the mark that :meth:`end` takes.

        :param args: shown in the span's ``args``; an int is the iteration (``{"iteration": n}``).
        """
        lane = self._lane_var.get()
        if lane is None:
            lane = self._thread_lanes.get(threading.get_ident()) or self._new_thread_lane()
        stack = lane.stack
        stack.append((name, cat, _perf(), args))
        if self._cuda is not None and cat == "process":
            self._cuda.begin()
        return len(stack) - 1

    def end(self, mark: int, keep: bool = True) -> None:
        """Close the span ``mark`` of the current row (``keep=False``: drop it). Spans opened inside it and
        left open by an exception that was then handled are closed too, marked ``unfinished``."""
        now = _perf()
        lane = self._lane_var.get()
        if lane is None:
            lane = self._thread_lanes.get(threading.get_ident()) or self._new_thread_lane()
        stack = lane.stack
        if len(stack) != mark + 1:
            if len(stack) <= mark:  # already closed
                return
            while len(stack) > mark + 1:
                name, cat, start, args = stack.pop()
                self._record(name, cat, lane.tid, start, now, {**_as_dict(args), "unfinished": True})
        name, cat, start, args = stack.pop()
        if self._cuda is not None and cat == "process":
            self._cuda.end(args)
        if not keep:
            return
        if len(self._events) < self.max_events:
            self._events.append((name, cat, lane.tid, start, now, args))
        else:
            self.dropped += 1

    def _record(self, name: str, cat: str, tid: int, start: float, end: float, args: _Args) -> None:
        if len(self._events) < self.max_events:
            self._events.append((name, cat, tid, start, end, args))
        else:
            self.dropped += 1

    def name_of(self, handler: object) -> str:
        """A handler's name in the trace: its qualified name (its type's, for a callable object), less the
        functions it is defined in."""
        cached = self._names.get(id(handler))
        if cached is not None and cached[0] is handler:
            return cached[1]
        fn = handler
        while isinstance(fn, functools.partial):
            fn = fn.func
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        name = name.rpartition("<locals>.")[2]  # "train.<locals>.log" is shown as "log"
        self._names[id(handler)] = (handler, name)  # the handler is kept alive, so its id is not reused
        return name

    def wrap_task(
        self, async_fn: Callable[..., Awaitable[Any]], name: str, kind: str, fired_by: str | None
    ) -> Callable[..., Awaitable[None]]:
        """``async_fn`` recording, as it runs, its span on a free task row (``kind``: the category)."""
        submitted = _perf()
        name = name.rpartition("<locals>.")[2]

        async def traced(*args: Any) -> None:
            lane = self._free_task_lanes.pop() if self._free_task_lanes else self._new_task_lane()
            token = self._lane_var.set(lane)
            start = _perf()
            outcome = "cancelled"
            try:
                await async_fn(*args)
                outcome = "completed"
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:
                outcome = f"failed: {exc!r}"
                raise
            finally:
                now = _perf()
                self._close_open(lane, now, outcome)
                info = {"fired_by": fired_by, "outcome": outcome, "queued_us": round((start - submitted) * 1e6, 3)}
                self._record(name, kind, lane.tid, start, now, info)
                self._lane_var.reset(token)
                self._free_task_lanes.append(lane)

        return traced

    def _new_task_lane(self) -> _Lane:
        self._task_lanes += 1
        lane = _Lane(_TASK_TID_BASE + self._task_lanes)
        self._thread_names[lane.tid] = f"tasks #{self._task_lanes}"
        return lane

    def wrap_thread_call(self, fn: Callable[[], Any], name: str) -> Callable[[], Any]:
        """``fn``, for a worker thread, recording its span on that thread's row."""
        fired_from = self._lane().tid

        def traced() -> Any:
            tid = threading.get_native_id()
            self._thread_names.setdefault(tid, threading.current_thread().name)
            start = _perf()
            try:
                return fn()
            finally:
                self._record(name, "thread", tid, start, _perf(), {"task_row": fired_from})

        return traced

    def depth(self) -> int:
        """How many spans are open on the current row (what :meth:`unwind` goes back to)."""
        return len(self._lane().stack)

    def unwind(self, depth: int, error: BaseException) -> None:
        """Close the spans above ``depth`` on the current row, which ``error`` left open: marked ``unfinished``."""
        self._close_open(self._lane(), _perf(), _outcome(error), depth)

    def _close_open(self, lane: _Lane, now: float, outcome: str, depth: int = 0) -> None:
        while len(lane.stack) > depth:
            name, cat, start, args = lane.stack.pop()
            if self._cuda is not None and cat == "process":
                self._cuda.end(args)
            self._record(name, cat, lane.tid, start, now, {**_as_dict(args), "unfinished": True, "outcome": outcome})

    # ------------------------------------------------------------------ CUDA

    @staticmethod
    def _cuda_recorder(cuda: bool | None) -> _CudaRecorder | None:
        torch: Any = sys.modules.get("torch")
        if cuda is False or (cuda is None and torch is None):
            return None
        if torch is None:
            import torch
        if not torch.cuda.is_available():
            if cuda:
                raise ValueError("Tracer(cuda=True) needs a CUDA device, and torch.cuda.is_available() is False")
            return None
        return _CudaRecorder(torch)

    # ------------------------------------------------------------------ writing

    async def _on_run_end(self, engine: Engine, error: BaseException | None) -> None:
        now = _perf()
        outcome = _outcome(error)
        self._close_open(self._lane(), now, outcome)
        run = self._events[self._run_first_event :]
        start = min((e[3] for e in run), default=now)
        self._record("run", "run", self._lane().tid, start, now, {"outcome": outcome})
        self._run_first_event = len(self._events)
        # Copied here (tasks still running may record meanwhile), turned into JSON in a worker thread.
        snapshot = (list(self._events), dict(self._thread_names))
        await anyio.to_thread.run_sync(self._write, snapshot, now)
        if self.dropped:
            logger.warning("Tracer: %d spans dropped past max_events=%d", self.dropped, self.max_events)

    def trace_events(self) -> list[dict[str, Any]]:
        """The spans recorded so far as Trace Event Format dicts (``"X"`` spans, ``"M"`` row names)."""
        return self._trace_events(list(self._events), dict(self._thread_names))

    def _trace_events(self, spans: list[_Span], thread_names: dict[int, str]) -> list[dict[str, Any]]:
        pid = os.getpid()
        origin = self._origin
        out: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "ignite_async"}}
        ]
        if self._cuda is not None:
            gpu = self._cuda.spans()
            thread_names[_CUDA_TID] = f"CUDA ({self._cuda.device_name})"
        else:
            gpu = []
        for tid, name in thread_names.items():
            out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
            # Sorted: the loop first, then task rows, worker threads and the GPU.
            order = 0 if tid < _CUDA_TID and "event loop" in name else tid
            out.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": order}})
        for name, cat, tid, start, end, args in [*spans, *gpu]:
            # Rounded ends, not rounded durations: a child that ends before its parent still does once rounded.
            ts = round((start - origin) * 1e6, 3)
            event = {"name": name, "cat": cat, "ph": "X", "ts": ts, "dur": round((end - origin) * 1e6, 3) - ts}
            event["pid"], event["tid"] = pid, tid
            if args is not None:
                event["args"] = _as_dict(args)
            out.append(event)
        return out

    def write(self) -> None:
        """Write the spans recorded so far to :attr:`path` now (atomically: a reader never sees half a file)."""
        self._write((list(self._events), dict(self._thread_names)), _perf())

    def _write(self, snapshot: tuple[list[_Span], dict[int, str]], started: float) -> None:
        document = {
            "traceEvents": self._trace_events(*snapshot),
            "displayTimeUnit": "ms",
            "otherData": {"producer": "ignite_async.handlers.Tracer", "dropped": self.dropped},
        }
        partial = self.path.with_name(f".{self.path.name}.partial")
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(document, file, separators=(",", ":"), default=repr)
        os.replace(partial, self.path)
        self.write_seconds = _perf() - started


class _CudaRecorder:
    """GPU spans of process function calls: a pair of timing events around each, read when the trace is written."""

    def __init__(self, torch: Any) -> None:
        self._torch = torch
        self.device_name = torch.cuda.get_device_name()
        self._reference: tuple[Any, float] | None = None
        self._open: Any = None
        self._pairs: list[tuple[Any, Any, _Args]] = []

    def begin(self) -> None:
        torch = self._torch
        if self._reference is None:  # GPU time is placed on the CPU clock through one event recorded at both
            torch.cuda.synchronize()
            ref = torch.cuda.Event(enable_timing=True)
            ref.record()
            ref.synchronize()
            self._reference = (ref, _perf())
        self._open = torch.cuda.Event(enable_timing=True)
        self._open.record()

    def end(self, args: _Args) -> None:
        if self._open is None:
            return
        stop = self._torch.cuda.Event(enable_timing=True)
        stop.record()
        self._pairs.append((self._open, stop, args))
        self._open = None

    def spans(self) -> list[_Span]:
        if self._reference is None:
            return []
        ref, at = self._reference
        out = []
        for start, stop, args in self._pairs:
            stop.synchronize()
            out.append(
                (
                    "process (GPU)",
                    "cuda",
                    _CUDA_TID,
                    at + ref.elapsed_time(start) / 1e3,
                    at + ref.elapsed_time(stop) / 1e3,
                    args,
                )
            )
        return out
