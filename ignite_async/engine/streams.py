"""Event streams: ``async with engine.subscribe(event) as stream: async for state in stream: ...``."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine
    from ignite_async.engine.state import State

__all__ = ["EventStream"]


class EventStream:
    """Snapshots of ``engine.state`` at each matching firing, for consumers such as web pages or notebooks.

    A slow consumer never blocks training: when ``buffer`` snapshots are waiting, the oldest is dropped and
    counted in :attr:`dropped`. The stream ends when the engine's run ends (however it ends).
    Get one from :meth:`Engine.subscribe <ignite_async.Engine.subscribe>`.
    """

    def __init__(self, engine: Engine, event: Any, buffer: int) -> None:
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be an integer >= 1, got {buffer!r}")
        engine._registered_key(event, "subscribe")  # an unregistered event fails here, at the call
        self._engine = engine
        self._event = event
        self._buffer: collections.deque[State] = collections.deque()
        self._size = buffer
        self._ready: anyio.Event | None = None
        self._closed = False
        #: Snapshots dropped because the consumer was behind.
        self.dropped = 0
        #: Snapshots delivered to the consumer.
        self.delivered = 0

    def _push(self) -> None:
        if len(self._buffer) >= self._size:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(self._engine._snapshot_view().state)
        self._wake()

    async def _close(self, error: BaseException | None = None) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._ready is not None:
            self._ready.set()
            self._ready = None

    async def __aenter__(self) -> EventStream:
        self._engine.add_event_handler(self._event, self._push)
        self._engine._run_end_callbacks.append(self._close)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._engine.remove_event_handler(self._push, self._event)
        self._engine._run_end_callbacks.remove(self._close)
        self._closed = True

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> State:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._ready = anyio.Event()
            await self._ready.wait()
        self.delivered += 1
        return self._buffer.popleft()
