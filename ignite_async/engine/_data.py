"""Where an engine's batches come from, across epochs, restarts, pauses, failures and runs.

Data is *one-shot* when it is its own iterator (``iter(data) is data``): a generator, sync or async. It is
one stream for as long as the engine is given that data. Whatever ends a pass over it (the end of a run, a
pause, an exception, a cancellation, Ctrl-C, ``load_state_dict``, a restart), the stream is *parked*, never
closed, with what a prefetcher read ahead and the batch of an iteration that did not complete; the next pass
over the same data continues it, that batch first. It is closed only once the engine is given other data.

Any other data (a list, a ``DataLoader``, an object whose ``__aiter__`` returns a new iterator) gets a fresh
iterator for each pass, and an iterator that is dropped is closed (``aclose`` for async ones).

Data with both ``__iter__`` and ``__aiter__`` is read with ``__iter__``, as pytorch-ignite would.

Switching ``prefetch`` between runs over one stream keeps the stream but loses what a prefetcher had read ahead.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ignite_async.engine._prefetch import AsyncPrefetcher, ThreadPrefetcher, first_anext, make_prefetcher

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["DataFeed", "is_async_data"]

_PREFETCHERS = (AsyncPrefetcher, ThreadPrefetcher)


def is_async_data(data: object) -> bool:
    """Only-async-iterable data is read with ``__aiter__``; anything iterable with ``__iter__``."""
    return not hasattr(data, "__iter__") and hasattr(data, "__aiter__")


def _set_sampler_epoch(data: Any, epoch: int) -> None:
    """Tell the loader's sampler which epoch (from 0) its next pass is for, as DistributedSampler needs.

    Its shuffle then differs per epoch and is the same on every rank, and a resumed run gets the same
    order as an uninterrupted one.
    """
    samplers = (getattr(data, "sampler", None), getattr(getattr(data, "batch_sampler", None), "sampler", None))
    for sampler in dict.fromkeys(s for s in samplers if s is not None):
        set_epoch = getattr(sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(max(epoch, 0))


class DataFeed:
    """The iterator of the current pass over an engine's data, and what passes leave to the next one."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        #: The current pass's iterator (a prefetcher when prefetching), or None between passes.
        self.iterator: Any = None
        self.is_async = False
        self.prefetch = 0
        self._fresh = False  # an async iterator not fetched from yet (see first_anext)
        self._one_shot = False  # the current iterator is the data itself
        self._parked: Any = None  # a one-shot stream (or its prefetcher) kept for the next pass
        #: The batch of an iteration that did not complete, to give again first (in a 1-tuple: it may be None).
        self.replay: tuple[Any] | None = None
        self._abandoned: list[Callable[[], Awaitable[Any]]] = []  # closing to await at the next chance

    # ------------------------------------------------------------------ fetching (the loop's hot path)

    def take_replay(self) -> Any:
        assert self.replay is not None
        (batch,), self.replay = self.replay, None
        return batch

    async def anext(self) -> Any:
        """The next batch of an async iterator (raises StopAsyncIteration at its end)."""
        if not self._one_shot:
            if self._fresh:  # a new async iterator of a pass: ours to close, not the event loop's
                self._fresh = False
                return await first_anext(self.iterator)
            return await self.iterator.__anext__()
        # A cancellation raised inside the stream would end it: let the fetch finish, for a grace period.
        with self._engine._grace.shielded() as scope:
            if self._fresh:
                self._fresh = False
                return await first_anext(self.iterator)
            return await self.iterator.__anext__()
        if scope.cancelled_caught:
            warnings.warn(
                f"the data stream {self.iterator!r} gave no batch within cancel_grace_period="
                f"{self._engine.cancel_grace_period} s of the cancellation: it was cancelled, and a later "
                "run() cannot continue it",
                RuntimeWarning,
                stacklevel=2,
            )
        await anyio.lowlevel.checkpoint()  # raises the cancellation that cut the fetch off
        raise RuntimeError("a shielded fetch was cut off without a cancellation")  # pragma: no cover

    # ------------------------------------------------------------------ passes

    def start_pass(self, data: Any, epoch_length: int | None, sampler_epoch: int) -> None:
        """Set up the iterator of a new pass over ``data`` (None: ``epoch_length`` batches of None)."""
        old, parked = self.iterator, self._parked
        self._parked = None
        iterator: Any
        if data is None:
            assert epoch_length is not None
            stream, is_async, one_shot = itertools.repeat(None, epoch_length), False, False
            iterator = stream
        else:
            _set_sampler_epoch(data, sampler_epoch)
            is_async = is_async_data(data)
            stream = data.__aiter__() if is_async else iter(data)
            one_shot = stream is data
            iterator = stream
            if self.prefetch:
                # A one-shot stream comes back as itself: keep its prefetcher and what it read ahead.
                same = [p for p in (old, parked) if isinstance(p, _PREFETCHERS) and p.iterator is stream]
                iterator = same[0] if same else make_prefetcher(self._engine, data, stream, is_async, self.prefetch)
                is_async = True

        def reads(previous: Any) -> bool:  # whether ``previous`` reads the stream this pass continues
            return one_shot and (
                previous is stream or (isinstance(previous, _PREFETCHERS) and previous.iterator is stream)
            )

        continued = any(reads(previous) for previous in (old, parked))
        for previous in (old, parked):
            if previous is None or previous is iterator:
                continue
            if reads(previous):
                # A prefetcher no longer wanted (prefetch changed): stopped, without closing the stream it reads;
                # what it read ahead is lost.
                if isinstance(previous, _PREFETCHERS):
                    self._abandoned.append(previous.suspend)
            else:
                self._abandon(previous)
        if not continued:
            self.replay = None  # it belonged to a stream that is not continued
        self.iterator = iterator
        self.is_async = is_async
        self._one_shot = one_shot and not isinstance(iterator, _PREFETCHERS)  # prefetchers shield their own
        self._fresh = is_async and not isinstance(iterator, _PREFETCHERS)

    def end_pass(self) -> None:
        """Drop the current pass's iterator: park a one-shot stream, close anything else (at the next chance)."""
        iterator, self.iterator = self.iterator, None
        if iterator is None:
            return
        if self._is_one_shot(iterator):
            if self._parked is not iterator:
                self._abandon(self._parked)
            self._parked = iterator
        else:
            self._abandon(iterator)

    async def release(self) -> None:
        """End the pass when a run ends: a prefetcher over a one-shot stream stops, keeping what it read."""
        if isinstance(self.iterator, _PREFETCHERS) and self.iterator.one_shot:
            await self.iterator.suspend()
        self.end_pass()
        await self.close_abandoned()

    async def suspend(self) -> None:
        """A paused run: no reading ahead until it resumes."""
        if isinstance(self.iterator, _PREFETCHERS):
            await self.iterator.suspend()

    def hold_for_replay(self, batch: Any) -> None:
        """``batch`` was taken for an iteration that did not complete: a one-shot stream gives it again first."""
        stream = self.iterator if self.iterator is not None else self._parked
        if stream is not None and self._is_one_shot(stream):
            self.replay = (batch,)

    def _is_one_shot(self, iterator: Any) -> bool:
        if isinstance(iterator, _PREFETCHERS):
            return iterator.one_shot
        return iterator is self._engine.state.dataloader and iterator is not None

    # ------------------------------------------------------------------ closing

    def _abandon(self, iterator: Any) -> None:
        # Async iterators must be closed by awaiting aclose() (trio insists); sync ones close when collected.
        if iterator is not None and hasattr(iterator, "aclose"):
            self._abandoned.append(iterator.aclose)

    async def close_abandoned(self) -> None:
        """Close (or stop) what was dropped; before a new pass reads, so nothing reads one stream twice at once."""
        while self._abandoned:
            close = self._abandoned.pop()
            with anyio.CancelScope(shield=True):
                await close()
