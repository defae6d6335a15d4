"""Reading batches ahead of the training loop (``run(..., prefetch=N)``).

A prefetcher stands in for the data iterator: the loop awaits ``__anext__`` as it would on an async
iterator, and sees the same batches, the same end of data and the same loader errors at the same
iterations as without prefetching. Behind it a producer keeps up to ``N`` *outcomes* (a batch, an error,
or the end) in order. Nothing read ahead is ever dropped while it could still be consumed:

- a fetch is never cancelled half-way;
- :meth:`suspend` stops the producer and keeps what it read, and the next fetch restarts it;
- a *one-shot* iterator (``iter(it) is it``, e.g. a generator) is one stream whatever the engine does:
  when the engine would rebuild the iterator (``terminate_epoch``, a restart, a new ``run()`` over the same
  generator) it gets the same object back, so it keeps the prefetcher, buffer included
  (see ``Engine._setup_dataloader_iter``).

A sync iterator gets a thread of its own feeding a bounded queue. ``anyio.to_thread`` is not used: handing
a job to a worker takes a few event-loop cycles, which a sync step (blocking the loop) does not give, so
fetch and step would not overlap. An async iterator gets a producer task in the engine's task group.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["AsyncPrefetcher", "ThreadPrefetcher", "first_anext", "make_prefetcher"]

_ITEM, _ERROR, _END = 0, 1, 2
Outcome = tuple[int, Any]


def first_anext(iterator: Any) -> Any:
    """``iterator.__anext__()``, called so that the running event loop does not adopt an async generator.

    The first ``__anext__`` of an async generator hands it to the loop's asyncgen hooks, and the loop
    closes it when it ends (``asyncio.run`` and trio both do): a run paused by ``interrupt()`` and resumed
    by a later ``asyncio.run`` would find its data closed. The engine closes every async iterator it drops
    itself, so it takes the generator over instead.
    """
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None, finalizer=None)
    try:
        return iterator.__anext__()
    finally:
        sys.set_asyncgen_hooks(*hooks)


def _unpack(outcome: Outcome) -> Any:
    kind, value = outcome
    if kind == _ITEM:
        return value
    if kind == _ERROR:
        raise value
    raise StopAsyncIteration


def make_prefetcher(
    engine: Engine, data: Any, iterator: Any, is_async: bool, size: int
) -> AsyncPrefetcher | ThreadPrefetcher:
    # One-shot data is its own iterator (a generator): rebuilding "its" iterator gives the same stream.
    one_shot = iterator is data
    if is_async:
        return AsyncPrefetcher(engine, iterator, size, one_shot)
    return ThreadPrefetcher(iterator, size, one_shot, engine.cancel_grace_period)


class ThreadPrefetcher:
    """Reads a sync iterator ahead in a thread of its own."""

    def __init__(self, iterator: Any, size: int, one_shot: bool, grace: float) -> None:
        self.iterator = iterator
        self.one_shot = one_shot
        self._grace = grace  # how long suspend() waits for a fetch in flight before giving the thread up
        self._queue: queue.Queue[Outcome] = queue.Queue(maxsize=size)
        # Outcomes taken off the queue, or left by a stopped thread, that come before anything queued later.
        self._held: collections.deque[Outcome] = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._end: Outcome | None = None

    def __aiter__(self) -> ThreadPrefetcher:
        return self

    async def __anext__(self) -> Any:
        if self._end is None and not self._held:
            if self._thread is None:
                self._thread = threading.Thread(target=self._produce, name="ignite_async-prefetch", daemon=True)
                self._thread.start()
            try:
                self._held.append(self._queue.get_nowait())
            except queue.Empty:
                # Short waits in a worker thread: each is a cancellation point, and an outcome taken lands
                # in _held even if we are cancelled right after.
                while not self._held and self._end is None:
                    await anyio.to_thread.run_sync(self._wait_for_outcome)
        outcome = self._end or self._held.popleft()
        if outcome[0] == _END:
            self._end = outcome  # the end stays the end
        return _unpack(outcome)

    async def suspend(self) -> None:
        """Stop the thread and wait for it; everything it read stays, in order."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join, self._grace)
        if thread.is_alive():
            # A fetch that does not return: give the (daemon) thread up rather than hang, and never
            # read from this prefetcher again, since what it holds may come out of order.
            self._end = (_ERROR, RuntimeError(f"the data loader did not return a batch within {self._grace} s"))
            return
        self._thread = None
        self._stop = threading.Event()
        # __anext__ consumes what it takes at once, so _held can only hold the outcome the thread had in
        # hand when it stopped; what it queued before comes first.
        in_hand = list(self._held)
        self._held.clear()
        while not self._queue.empty():
            self._held.append(self._queue.get_nowait())
        self._held.extend(in_hand)

    async def aclose(self) -> None:
        await self.suspend()
        self._held.clear()

    def _wait_for_outcome(self) -> None:
        with contextlib.suppress(queue.Empty):
            self._held.append(self._queue.get(timeout=0.05))

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                outcome: Outcome = (_ITEM, next(self.iterator))
            except StopIteration:
                outcome = (_END, None)
            except BaseException as exc:  # handed to the consumer, which raises it
                outcome = (_ERROR, exc)
            while True:
                try:
                    self._queue.put(outcome, timeout=0.05)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        self._held.append(outcome)  # suspend() joins the thread before reading _held
                        return
            if outcome[0] == _END:
                return


class AsyncPrefetcher:
    """Reads an async iterator ahead in a producer task of the engine's task group."""

    def __init__(self, engine: Engine, iterator: Any, size: int, one_shot: bool) -> None:
        self._engine = engine  # its task group hosts the producer, for whichever run() is in progress
        self.iterator = iterator
        self.one_shot = one_shot
        self._size = size
        self._buffer: collections.deque[Outcome] = collections.deque()
        self._ended = False  # the producer has queued the end of the data
        self._scope: anyio.CancelScope | None = None
        self._producer_done: anyio.Event | None = None
        self._ready: anyio.Event | None = None  # set when the buffer gains an outcome
        self._space: anyio.Event | None = None  # set when the buffer loses one
        self._adopted = False  # the first fetch goes through first_anext
        self._fetch_scope: anyio.CancelScope | None = None  # shields the fetch in flight

    def __aiter__(self) -> AsyncPrefetcher:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._producer_done is None:
                task_group = self._engine._task_group
                assert task_group is not None, "batches are only fetched while the engine runs"
                self._producer_done = anyio.Event()
                task_group.start_soon(self._produce)
            self._ready = anyio.Event()
            await self._ready.wait()
        outcome = self._buffer[0] if self._buffer[0][0] == _END else self._buffer.popleft()
        if self._space is not None:
            self._space.set()
        return _unpack(outcome)

    async def suspend(self) -> None:
        """Stop the producer and wait for it (it finishes the fetch in flight); what it read stays."""
        done = self._producer_done
        if done is None:
            return
        if self._scope is not None:
            self._scope.cancel()
        if self._fetch_scope is not None:  # a stream that waits for data must not hold a pause forever
            self._fetch_scope.deadline = min(
                self._fetch_scope.deadline, anyio.current_time() + self._engine.cancel_grace_period
            )
        with anyio.CancelScope(shield=True):
            await done.wait()

    async def aclose(self) -> None:
        await self.suspend()
        self._buffer.clear()
        if hasattr(self.iterator, "aclose"):
            await self.iterator.aclose()

    async def _produce(self) -> None:
        done = self._producer_done
        assert done is not None
        try:
            with anyio.CancelScope() as self._scope:
                while not self._ended:
                    while len(self._buffer) >= self._size:
                        self._space = anyio.Event()
                        await self._space.wait()
                    if self._scope.cancel_called:
                        break  # suspended or cancelled: start no new fetch
                    # Once cancelled (or suspended), the fetch in flight gets a grace period to finish, so its
                    # batch is not lost; a stream that is waiting for data is cut off after it.
                    with self._engine._grace.shielded() as fetch_scope:
                        self._fetch_scope = fetch_scope
                        outcome = await self._fetch()
                    self._fetch_scope = None
                    if fetch_scope.cancelled_caught:
                        break
                    self._buffer.append(outcome)
                    self._ended = outcome[0] == _END
                    if self._ready is not None:
                        self._ready.set()
        finally:
            self._scope = self._fetch_scope = None
            self._producer_done = None
            done.set()

    async def _fetch(self) -> Outcome:
        try:
            if not self._adopted:
                self._adopted = True
                return _ITEM, await first_anext(self.iterator)
            return _ITEM, await self.iterator.__anext__()
        except StopAsyncIteration:
            return _END, None
        except Exception as exc:
            return _ERROR, exc
