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

A pass over a map-style ``torch.utils.data.DataLoader`` is *positionable*: when it starts, the state of the
generators its iterator draws from (the loader's ``generator`` or torch's default one, and a sampler's own
``generator``) is recorded with the pass's sampler epoch and first iteration (:attr:`DataFeed.pass_record`,
saved by ``Engine.state_dict`` as ``"data_pass"``). A state loaded in the middle of that pass resumes it
exactly: the generators are set to the recorded state for as long as the pass's iterator takes to draw from
them, over a copy of the loader whose batch sampler skips the batches already consumed without loading them,
and torch's default generator is then put back as it was (so that, e.g., dropout continues from the
checkpointed RNG state).
"""

from __future__ import annotations

import itertools
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator, Mapping
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


def _positionable(data: Any) -> bool:
    """Whether ``data`` is a map-style DataLoader whose passes can be recorded and resumed mid-way."""
    torch = sys.modules.get("torch")  # data cannot be a DataLoader if torch was never imported
    if torch is None:
        return False
    loader_type = torch.utils.data.DataLoader
    if not isinstance(data, loader_type) or type(data).__iter__ is not loader_type.__iter__:
        return False
    if isinstance(data.dataset, torch.utils.data.IterableDataset):
        return False
    return hasattr(_index_sampler(data), "__len__")


def _index_sampler(loader: Any) -> Any:
    # What the loader's iterator draws indices from (DataLoader._index_sampler, without the private name).
    return loader.batch_sampler if loader.batch_sampler is not None else loader.sampler


def _generators(loader: Any) -> dict[str, Any]:
    """The generators a pass over ``loader`` draws from, by role ("default" for torch's default generator)."""
    torch = sys.modules["torch"]
    default = torch.default_generator
    found = [("loader", loader.generator)]
    for role, sampler in (
        ("sampler", loader.sampler),
        ("batch_sampler.sampler", getattr(loader.batch_sampler, "sampler", None)),
    ):
        if sampler is not None and hasattr(sampler, "generator"):
            found.append((role, sampler.generator))
    generators: dict[str, Any] = {}
    for role, generator in found:
        generator = default if generator is None else generator
        if not isinstance(generator, torch.Generator):
            continue
        if all(g is not generator for g in generators.values()):
            generators["default" if generator is default else role] = generator
    return generators


def _record_pass(loader: Any, sampler_epoch: int, iteration: int) -> dict[str, Any]:
    """What a pass over ``loader`` that starts now needs to be resumed: called just before ``iter(loader)``."""
    return {
        "epoch": sampler_epoch,
        "start_iteration": iteration,
        "rng": {role: g.get_state() for role, g in _generators(loader).items()},
        # A persistent workers' iterator is reset, not rebuilt: it draws no new worker seed.
        "reused_workers": bool(
            loader.persistent_workers and loader.num_workers > 0 and getattr(loader, "_iterator", None) is not None
        ),
    }


def check_pass_record(record: Any, iteration: int) -> dict[str, Any]:
    """``record`` (a state dict's ``"data_pass"``) validated against the state's ``iteration``."""
    torch = sys.modules.get("torch")
    if not isinstance(record, Mapping) or not {"epoch", "start_iteration", "rng"} <= record.keys():
        raise ValueError(
            f"state_dict's 'data_pass' must be a mapping with 'epoch', 'start_iteration' and 'rng', got {record!r:.200}"
        )
    for key in ("epoch", "start_iteration"):
        if not isinstance(record[key], int) or isinstance(record[key], bool) or record[key] < 0:
            raise ValueError(f"state_dict's data_pass[{key!r}] must be an int >= 0, got {record[key]!r}")
    if record["start_iteration"] > iteration:
        raise ValueError(
            f"state_dict's data_pass['start_iteration']={record['start_iteration']} is after its iteration {iteration}"
        )
    rng = record["rng"]
    if (
        not isinstance(rng, Mapping)
        or torch is None
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in rng.items())
    ):
        raise ValueError(f"state_dict's data_pass['rng'] must map names to generator state tensors, got {rng!r:.200}")
    return dict(record)


class _SkipBatches:
    """The user's (batch) sampler without its first ``skip`` items, which are drawn but never fetched.

    Lazy, as a sampler's iteration is, until :meth:`prime` (or a first ``next``) draws: a DataLoader iterator may
    call ``iter()`` on it more than once, and every iterator it gives reads the one primed stream.
    """

    def __init__(self, sampler: Any, skip: int) -> None:
        self.sampler = sampler
        self.skip = skip
        self._primed: Iterator[Any] | None = None

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)

    def prime(self) -> Iterator[Any]:
        if self._primed is None:
            primed = iter(self.sampler)
            for _ in itertools.islice(primed, self.skip):
                pass
            self._primed = primed
        return self._primed

    def __iter__(self) -> Iterator[Any]:
        return _Primed(self)


class _Primed:
    def __init__(self, owner: _SkipBatches) -> None:
        self._owner = owner

    def __iter__(self) -> _Primed:
        return self

    def __next__(self) -> Any:
        return next(self._owner.prime())


def _positioned_iter(loader: Any, record: Mapping[str, Any], skip: int) -> Any:
    """An iterator over ``loader``'s pass recorded in ``record``, from its batch ``skip`` on.

    It is drawn from a copy of ``loader`` (same settings, no persistent workers) whose batch sampler skips the
    first ``skip`` batches, with the generators set to their recorded states; torch's default generator is then
    put back, the loader's and the samplers' own ones go on from where the pass leaves them.
    """
    torch = sys.modules["torch"]
    skipping = _SkipBatches(_index_sampler(loader), skip)
    settings: dict[str, Any] = {
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "prefetch_factor": loader.prefetch_factor,
        "persistent_workers": False,
    }
    if skip >= len(skipping.sampler):  # an ended pass, replayed for its generators' sake: no workers to start
        settings.update(num_workers=0, prefetch_factor=None, multiprocessing_context=None, timeout=0)
    if getattr(loader, "pin_memory_device", ""):
        settings["pin_memory_device"] = loader.pin_memory_device
    if hasattr(loader, "in_order"):
        settings["in_order"] = loader.in_order
    if loader.batch_sampler is not None:
        copy = torch.utils.data.DataLoader(loader.dataset, batch_sampler=skipping, **settings)
    else:
        copy = torch.utils.data.DataLoader(loader.dataset, batch_size=None, sampler=skipping, **settings)
    states = record["rng"]
    default = torch.default_generator
    saved = default.get_state()
    try:
        for role, generator in _generators(loader).items():
            if role in states:
                generator.set_state(states[role])
        if record.get("reused_workers"):  # the pass drew only its sampler's seed, no worker seed: undo that draw
            skipping.prime()
            after = {role: g.get_state() for role, g in _generators(loader).items()}
            iterator = iter(copy)
            for role, generator in _generators(loader).items():
                generator.set_state(after[role])
        else:  # the worker seed first, then the sampler's (as DataLoader's iterator draws them)
            iterator = iter(copy)
            skipping.prime()
    finally:
        default.set_state(saved)
    return iterator


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
        #: How to resume the current (or last) pass over a positionable DataLoader (see the module's docstring).
        self.pass_record: dict[str, Any] | None = None
        self._resume: tuple[dict[str, Any], int] | None = None  # (record, iteration) from a loaded state

    def resume_at(self, record: dict[str, Any] | None, iteration: int) -> None:
        """A loaded state: its pass, if recorded, resumes at ``iteration`` (if the next pass starts there)."""
        self.pass_record = record
        self._resume = None if record is None else (record, iteration)

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
            self.pass_record = self._resume = None
            stream, is_async, one_shot = itertools.repeat(None, epoch_length), False, False
            iterator = stream
        else:
            positionable = _positionable(data)
            record, skip = self._resume_point(data, positionable)
            if record is not None:
                sampler_epoch = record["epoch"]
            _set_sampler_epoch(data, sampler_epoch)
            is_async = is_async_data(data)
            if record is not None:
                self.pass_record = record
                stream = _positioned_iter(data, record, skip)
            else:
                self.pass_record = (
                    _record_pass(data, sampler_epoch, self._engine.state.iteration) if positionable else None
                )
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

    def _resume_point(self, data: Any, positionable: bool) -> tuple[dict[str, Any] | None, int]:
        """The loaded pass this new pass resumes and how many of its batches to skip, or (None, 0)."""
        resume, self._resume = self._resume, None  # only the first pass after load_state_dict
        if resume is None or not positionable:
            return None, 0
        record, iteration = resume
        skip = iteration - record["start_iteration"]
        if self._engine.state.iteration != iteration or not 0 < skip <= len(_index_sampler(data)):
            return None, 0  # not the loaded state's run (a new one started), or another pass
        return record, skip

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
