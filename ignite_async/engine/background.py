"""Handlers that run concurrently with training: :func:`background` and the tasks behind it.

A background handler is started as a task in the engine's own task group each time its event fires, and
the engine goes on at once. ``limit`` bounds how many of its invocations run at a time; ``when_busy``
says what a firing that finds every slot taken does. The handler sees the engine's state *as it was at
the firing* (a shallow snapshot), whatever the training loop has done since.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio

from ignite_async._threads import run_sync
from ignite_async.engine._handlers import describe, is_async_callable

# True inside tasks the engine runs beside the loop (spawned, background handlers) and the threads they start:
# their order differs between ranks, so distributed collectives refuse to run there.
in_background: ContextVar[bool] = ContextVar("in_background", default=False)

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine
    from ignite_async.engine.state import State
    from ignite_async.handlers.tracer import Tracer

__all__ = ["WHEN_BUSY", "BackgroundHandler", "BackgroundStatistics", "EngineStatistics", "TaskHandle", "background"]

WhenBusy = Literal["wait", "skip", "latest"]
WHEN_BUSY: tuple[str, ...] = ("wait", "skip", "latest")


@dataclass
class BackgroundStatistics:
    """Counters of one background handler (see :meth:`Engine.statistics <ignite_async.Engine.statistics>`).

    ``fired`` = ``started`` + ``skipped`` + ``coalesced`` + (1 if a firing is ``pending`` else 0), once
    nothing is waiting for a slot; ``started`` = ``completed`` + ``failed`` + ``running``.
    """

    name: str
    limit: int
    when_busy: str
    fired: int = 0
    started: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    coalesced: int = 0
    running: int = 0
    pending: int = 0
    time_spent: float = 0.0


@dataclass
class EngineStatistics:
    """What :meth:`Engine.statistics` reports: tasks running now, and counters per background handler."""

    tasks_running: int
    background: dict[str, BackgroundStatistics] = field(default_factory=dict)


class TaskHandle:
    """A task started by :meth:`Engine.spawn`: wait for it, cancel it, read its outcome."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.result: Any = None
        self.exception: BaseException | None = None
        self.cancelled = False
        self._done = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False

    @property
    def done(self) -> bool:
        """Whether the task has finished (returned, failed or been cancelled)."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Cancel the task; it counts as finished, not failed."""
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def wait(self) -> None:
        """Wait until the task has finished."""
        await self._done.wait()

    async def _run(self, async_fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._cancel_requested:
                    scope.cancel()
                try:
                    self.result = await async_fn(*args)
                except anyio.get_cancelled_exc_class():
                    self.cancelled = True
                    raise
                except BaseException as exc:
                    self.exception = exc
                    raise
            self.cancelled = self.cancelled or scope.cancelled_caught
        finally:
            self._done.set()

    def __repr__(self) -> str:
        state = (
            "running" if not self.done else "cancelled" if self.cancelled else "failed" if self.exception else "done"
        )
        return f"<TaskHandle {self.name} {state}>"


class _EngineView:
    """What a background handler gets as its ``engine``: the real engine, with the state of the firing."""

    __slots__ = ("_engine", "state")

    def __init__(self, engine: Engine, state: State) -> None:
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "state", state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._engine, name, value)

    def __repr__(self) -> str:
        return f"<view of {self._engine!r} at iteration {self.state.iteration}>"


class BackgroundHandler:
    """A handler wrapped by :func:`background`. Attach it like any handler."""

    def __init__(self, handler: Callable[..., Any], *, limit: int, when_busy: WhenBusy) -> None:
        if not callable(handler):
            raise TypeError(f"background() needs a callable handler, got {handler!r}")
        if isinstance(handler, BackgroundHandler):
            raise TypeError(f"{handler!r} is already a background handler: wrap the handler once")
        # Signature checks and has_event_handler see the wrapped handler's signature and name.
        functools.update_wrapper(self, handler)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"background(limit=...) must be an integer >= 1, got {limit!r}")
        if when_busy not in WHEN_BUSY:
            raise ValueError(
                f"background(when_busy=...) must be one of {', '.join(map(repr, WHEN_BUSY))}, got {when_busy!r}"
            )
        self.handler = handler
        self.limit = limit
        self.when_busy = when_busy
        self._is_async = is_async_callable(handler)
        self._running = 0
        self._slot_freed: anyio.Event | None = None
        self._pending: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.stats = BackgroundStatistics(getattr(handler, "__name__", describe(handler)), limit, when_busy)

    def __repr__(self) -> str:
        return f"background({describe(self.handler)}, limit={self.limit}, when_busy={self.when_busy!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"{self!r} runs only when attached to an engine's event: engine.add_event_handler(event, handler)"
        )

    def bind(self, engine: Engine, passes_engine: bool) -> Callable[..., Any]:
        """The async function the engine fires: it snapshots the state and submits one invocation."""

        async def fire(*args: Any, **kwargs: Any) -> None:
            if passes_engine:
                args = (engine._snapshot_view(), *args[1:])
            await self.submit(engine, args, kwargs)

        return fire

    async def submit(self, engine: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Start one invocation as a task of ``engine``'s run, following ``when_busy`` if all slots are busy."""
        self.stats.fired += 1
        if self._running >= self.limit:
            if self.when_busy == "skip":
                self.stats.skipped += 1
                return
            if self.when_busy == "latest":
                if self._pending is not None:
                    self.stats.coalesced += 1
                self._pending = (args, kwargs)
                self.stats.pending = 1
                return
            if not await self.wait_for_slot(engine):  # "wait": backpressure on the training loop
                return  # the run is failing; the loop raises at its next event
        engine._start_task(
            self._work,
            args,
            kwargs,
            engine.cancel_grace_period,
            engine._tracer,
            name=self.stats.name,
            kind="background",
        )
        self._running += 1  # counted only once the task is really started
        self.stats.running = self._running

    async def wait_for_slot(self, engine: Engine) -> bool:
        """Wait until an invocation may start (False: ``engine``'s run is failing, so none should)."""
        while self._running >= self.limit:
            if engine._background_error is not None:
                return False
            if self._slot_freed is None:
                self._slot_freed = anyio.Event()
            await self._slot_freed.wait()
        return engine._background_error is None

    def wake_waiters(self) -> None:
        """Wake firings waiting for a slot (the run is failing and they must not wait on)."""
        if self._slot_freed is not None:
            self._slot_freed.set()
            self._slot_freed = None

    async def _work(self, args: tuple[Any, ...], kwargs: dict[str, Any], grace: float, tracer: Tracer | None) -> None:
        try:
            job: tuple[tuple[Any, ...], dict[str, Any]] | None = (args, kwargs)
            while job is not None:
                await self._invoke(*job, grace, tracer)
                # "latest": the newest firing that found us busy runs in the slot we hold.
                job, self._pending = self._pending, None
                self.stats.pending = 0
        finally:
            self._running -= 1
            self.stats.running = self._running
            if self._slot_freed is not None:
                self._slot_freed.set()
                self._slot_freed = None

    async def _invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any], grace: float, tracer: Tracer | None) -> None:
        self.stats.started += 1
        started = time.perf_counter()
        try:
            if self._is_async:
                await self.handler(*args, **kwargs)
            else:
                # Cancelled, the run waits for a sync handler only ``grace`` seconds: a thread cannot be
                # stopped, so one that blocks longer (a request without a timeout) is abandoned.
                call: Callable[[], Any] = functools.partial(self.handler, *args, **kwargs)
                if tracer is not None:  # the call's span on the worker thread's own row
                    call = tracer.wrap_thread_call(call, self.stats.name)
                await run_sync(call, grace=grace, name=self.stats.name)
        except BaseException:
            self.stats.failed += 1
            raise
        else:
            self.stats.completed += 1
        finally:
            self.stats.time_spent += time.perf_counter() - started


@overload
def background(handler: Callable[..., Any], *, limit: int = 1, when_busy: WhenBusy = "wait") -> BackgroundHandler: ...


@overload
def background(
    handler: None = None, *, limit: int = 1, when_busy: WhenBusy = "wait"
) -> Callable[[Callable[..., Any]], BackgroundHandler]: ...


def background(
    handler: Callable[..., Any] | None = None, *, limit: int = 1, when_busy: WhenBusy = "wait"
) -> BackgroundHandler | Callable[[Callable[..., Any]], BackgroundHandler]:
    """Run ``handler`` as a concurrent task at each firing, so the engine does not wait for it.

    Async handlers run as tasks, sync ones in a worker thread (a daemon thread of their own). The handler's
    ``engine`` argument shows the state as it was at the firing. At most ``limit`` invocations run at a time;
    a firing that finds them all busy, by ``when_busy``:

    - ``"wait"``: the engine waits for a free slot (backpressure);
    - ``"skip"``: the firing is dropped (and counted);
    - ``"latest"``: it is kept as the one pending firing, replacing an older pending one (counted as
      coalesced), and runs when a slot frees, so an evaluator always sees the latest weights.

    Every task finishes before ``COMPLETED`` fires; one that fails fails the run. When the run is cancelled,
    a sync handler still running gets ``engine.cancel_grace_period`` seconds to return; then it is abandoned:
    run() stops waiting for it, and its thread goes on until the call returns or the process exits.

    :raises ValueError: for ``limit < 1`` or an unknown ``when_busy``.

    >>> import asyncio
    >>> from ignite_async import Engine, Events, background
    >>> engine = Engine(lambda engine, batch: None)
    >>> @engine.on(Events.ITERATION_COMPLETED(every=2))
    ... @background(limit=2, when_busy="skip")
    ... async def log_remote(engine):
    ...     await asyncio.sleep(0.01)  # e.g. an HTTP request
    >>> _ = asyncio.run(engine.run(range(6)))
    >>> stats = engine.statistics().background["log_remote"]
    >>> stats.fired, stats.started + stats.skipped
    (3, 3)
    """
    if handler is None:
        return lambda fn: BackgroundHandler(fn, limit=limit, when_busy=when_busy)
    return BackgroundHandler(handler, limit=limit, when_busy=when_busy)
