"""Reading batches ahead of the training loop (``run(..., prefetch=N)``).

A prefetcher stands in for the data iterator: the loop awaits ``__anext__`` as it would on an async
iterator, and sees the same batches, the same end of data and the same loader errors at the same
iterations as without prefetching. Behind it a producer keeps up to ``N`` *outcomes* (a batch, an error,
or the end) in order. A fetch is never cancelled half-way (that would lose a batch).

- A sync iterator gets a thread of its own feeding a bounded queue. (``anyio.to_thread`` is not used
  here: handing a job to a worker takes a few event-loop cycles, which a sync step, blocking the loop,
  does not give, so fetch and step would not overlap.) The consumer awaits only when the queue is empty.
- An async iterator gets a producer task in the engine's task group.
"""

from __future__ import annotations

import collections
import queue
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["Prefetcher", "ThreadPrefetcher", "make_prefetcher"]

_ITEM, _ERROR, _END = 0, 1, 2


def make_prefetcher(engine: Engine, iterator: Any, is_async: bool, size: int) -> Prefetcher | ThreadPrefetcher:
    return Prefetcher(engine, iterator, size) if is_async else ThreadPrefetcher(iterator, size)


class ThreadPrefetcher:
    """Reads a sync iterator ahead in a dedicated thread."""

    def __init__(self, iterator: Any, size: int) -> None:
        self._iterator = iterator
        self._queue: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=size)
        self._held: collections.deque[tuple[int, Any]] = collections.deque()  # taken, not yet consumed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._end: tuple[int, Any] | None = None

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
                # Not cancellable half-way: the outcome lands in _held even if we are cancelled meanwhile.
                await anyio.to_thread.run_sync(self._wait_for_outcome)
        kind, value = self._end or self._held.popleft()
        if kind == _ITEM:
            return value
        if kind == _ERROR:
            raise value
        self._end = (kind, value)  # the end stays the end
        raise StopAsyncIteration

    def pause(self) -> None:
        """Nothing to do: the thread stops by itself once the queue is full."""

    async def aclose(self) -> None:
        """Stop the thread and wait for it (it may be finishing one fetch)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(thread.join)

    def _wait_for_outcome(self) -> None:
        self._held.append(self._queue.get())

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                outcome: tuple[int, Any] = (_ITEM, next(self._iterator))
            except StopIteration:
                outcome = (_END, None)
            except BaseException as exc:  # handed to the consumer, which raises it
                outcome = (_ERROR, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(outcome, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if outcome[0] == _END:
                return


class Prefetcher:
    """Reads an async iterator ahead in a producer task."""

    def __init__(self, engine: Engine, iterator: Any, size: int) -> None:
        self._engine = engine  # its task group hosts the producer, for whichever run() is in progress
        self._iterator = iterator
        self._size = size
        self._buffer: collections.deque[tuple[int, Any]] = collections.deque()
        self._ended = False  # the producer has queued the end of the data
        self._scope: anyio.CancelScope | None = None
        self._producer_done: anyio.Event | None = None
        self._ready: anyio.Event | None = None  # set when the buffer gains an outcome
        self._space: anyio.Event | None = None  # set when the buffer loses one

    def __aiter__(self) -> Prefetcher:
        return self

    async def __anext__(self) -> Any:
        """The next batch; raises the loader's error, or ``StopAsyncIteration`` at the end."""
        while not self._buffer:
            if self._producer_done is None:
                task_group = self._engine._task_group
                assert task_group is not None, "batches are only fetched while the engine runs"
                self._producer_done = anyio.Event()
                task_group.start_soon(self._produce)
            self._ready = anyio.Event()
            await self._ready.wait()
        kind, value = self._buffer.popleft()
        if self._space is not None:
            self._space.set()
        if kind == _ITEM:
            return value
        if kind == _ERROR:
            raise value
        self._buffer.appendleft((kind, value))  # the end stays the end
        raise StopAsyncIteration

    def pause(self) -> None:
        """Stop reading ahead (the run paused); what was read stays, and the next fetch restarts it."""
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        """Stop the producer, wait for it, and close the underlying async iterator."""
        self.pause()
        if self._producer_done is not None:
            await self._producer_done.wait()
        self._buffer.clear()
        if hasattr(self._iterator, "aclose"):
            await self._iterator.aclose()

    async def _produce(self) -> None:
        done = self._producer_done
        assert done is not None
        try:
            with anyio.CancelScope() as self._scope:
                while not self._ended:
                    while len(self._buffer) >= self._size:
                        self._space = anyio.Event()
                        await self._space.wait()
                    with anyio.CancelScope(shield=True):
                        outcome = await self._fetch()
                    self._buffer.append(outcome)
                    self._ended = outcome[0] == _END
                    if self._ready is not None:
                        self._ready.set()
        finally:
            self._scope = None
            self._producer_done = None
            done.set()

    async def _fetch(self) -> tuple[int, Any]:
        try:
            return _ITEM, await self._iterator.__anext__()
        except StopAsyncIteration:
            return _END, None
        except Exception as exc:
            return _ERROR, exc
