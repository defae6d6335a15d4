"""Reading batches ahead of the training loop (``run(..., prefetch=N)``).

The prefetcher stands in for the data iterator: the loop awaits ``__anext__`` as it would on an async
iterator, and sees the same batches, the same end of data and the same loader errors at the same
iterations as without prefetching. Behind it a producer task keeps up to ``N`` *outcomes* (a batch, an
error, or the end) in order: a sync iterator's ``next`` runs in a worker thread, an async one's
``__anext__`` in the task. A fetch is never cancelled half-way (that would lose a batch): stopping the
producer waits for the fetch in flight, whose result stays in the buffer.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["Prefetcher"]

_ITEM, _ERROR, _END = 0, 1, 2


class Prefetcher:
    def __init__(self, engine: Engine, iterator: Any, is_async: bool, size: int) -> None:
        self._engine = engine  # its task group hosts the producer, for whichever run() is in progress
        self._iterator = iterator
        self._is_async = is_async
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
        if self._producer_done is not None:
            # Even with a sync step, let the producer hand over what its thread fetched meanwhile.
            await anyio.lowlevel.checkpoint()
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
        if self._is_async and hasattr(self._iterator, "aclose"):
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
            if self._is_async:
                return _ITEM, await self._iterator.__anext__()
            return await anyio.to_thread.run_sync(self._next_sync)
        except StopAsyncIteration:
            return _END, None
        except Exception as exc:
            return _ERROR, exc

    def _next_sync(self) -> tuple[int, Any]:
        try:
            return _ITEM, next(self._iterator)
        except StopIteration:
            return _END, None
