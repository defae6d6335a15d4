"""What each run reads: one-shot streams continue across cancellations, failures, pauses and restarts;
re-iterable data starts afresh; data with both ``__iter__`` and ``__aiter__`` is read with ``__iter__``."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from ignite_async import Engine, Events

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


async def stream(n: int, awaits: bool = True) -> AsyncIterator[int]:
    """An async generator of 0..n-1 that awaits inside, where a cancellation can land."""
    for i in range(n):
        if awaits:
            await anyio.lowlevel.checkpoint()
        yield i


def recording_engine(done: list[Any]) -> Engine:
    """An engine whose completed iterations append their batch to ``done``."""

    async def step(engine: Engine, batch: Any) -> Any:
        await anyio.lowlevel.checkpoint()  # a place for a cancellation to land mid-iteration
        return batch

    engine = Engine(step)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: done.append(e.state.batch))
    return engine


def make_data(kind: str, n: int) -> Any:
    if kind == "async generator":
        return stream(n)
    if kind == "sync generator":
        return iter(range(n))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["async generator", "sync generator"])
@pytest.mark.parametrize("how", ["cancel", "exception", "interrupt"])
async def test_a_one_shot_stream_continues_after_a_run_is_cut_short(kind: str, how: str) -> None:
    done: list[Any] = []
    engine = recording_engine(done)
    data = make_data(kind, 600)

    @engine.on(Events.ITERATION_STARTED(once=85))
    def cut_short(engine: Engine) -> None:
        engine.remove_event_handler(cut_short, Events.ITERATION_STARTED)  # not again when 85 is redone
        if how == "cancel":
            scope.cancel()
        elif how == "exception":
            raise Boom("at iteration 85")
        else:
            engine.interrupt()

    with anyio.fail_after(30):
        with anyio.CancelScope() as scope, contextlib.suppress(Boom):
            await engine.run(data, epoch_length=200, max_epochs=3)
        assert len(done) == 84
        state = await engine.run(data)  # continues the same stream
    assert state.iteration == 600
    assert done == list(range(600))  # every batch once: the one whose iteration was cut short is done again


@pytest.mark.parametrize("trials", [range(20)])
async def test_cancellations_at_random_moments_lose_no_batch_of_an_async_stream(trials: range) -> None:
    rng = random.Random(0)
    done: list[Any] = []
    engine = recording_engine(done)
    data = stream(300)
    with anyio.fail_after(60):
        for _ in trials:
            if engine.state.iteration == 300:
                break
            checkpoints = rng.randint(1, 40)

            async def cancel_after(scope: anyio.CancelScope, n: int = checkpoints) -> None:
                for _ in range(n):
                    await anyio.lowlevel.checkpoint()
                scope.cancel()

            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:
                    tg.start_soon(cancel_after, scope)
                    await engine.run(data, epoch_length=100, max_epochs=3)
        state = await engine.run(data)
    assert state.iteration == 300
    assert done == list(range(300))


async def test_a_cancellation_inside_the_streams_own_await_does_not_end_it() -> None:
    done: list[Any] = []
    engine = recording_engine(done)
    scope = anyio.CancelScope()

    async def cancelled_inside() -> AsyncIterator[int]:
        for i in range(10):
            if i == 4:
                scope.cancel()  # lands at the generator's next await: during the fetch of batch 4
            await anyio.lowlevel.checkpoint()
            yield i

    data = cancelled_inside()
    with anyio.fail_after(10):
        with scope:
            await engine.run(data, epoch_length=10)
        assert scope.cancelled_caught
        state = await engine.run(data)
    assert state.iteration == 10
    assert done == list(range(10))


async def test_a_stream_that_stalls_after_a_cancellation_is_given_up_after_the_grace_period() -> None:
    async def stalls() -> AsyncIterator[int]:
        yield 0
        await anyio.sleep_forever()
        yield 1  # pragma: no cover

    engine = Engine(lambda e, b: None)
    engine.cancel_grace_period = 0.2
    with anyio.fail_after(10), anyio.move_on_after(0.3), pytest.warns(RuntimeWarning, match="cannot continue it"):
        await engine.run(stalls(), epoch_length=5)
    assert engine.state.iteration == 1


async def test_a_slow_fetch_that_nobody_cancels_is_not_cut_off() -> None:
    async def slow() -> AsyncIterator[int]:
        for i in range(2):
            await anyio.sleep(0.3)  # longer than the grace period, with no cancellation
            yield i

    engine = Engine(lambda e, b: b)
    engine.cancel_grace_period = 0.05
    for prefetch in (0, 1):
        with anyio.fail_after(10):
            state = await engine.run(slow(), epoch_length=2, prefetch=prefetch)
        assert (state.iteration, state.output) == (2, 1)


@pytest.mark.parametrize("data_kind", ["list", "new data"])
async def test_a_restart_after_interrupt_reads_the_data_it_is_given_afresh(data_kind: str) -> None:
    seen: list[Any] = []
    engine = Engine(lambda e, b: seen.append(b))
    pause = engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda e: e.interrupt())
    first = list(range(10))
    await engine.run(first, max_epochs=2)
    assert seen == [0, 1, 2]
    pause.remove()
    engine.state.max_epochs = None  # pytorch-ignite's documented restart
    second = first if data_kind == "list" else [f"new {i}" for i in range(10)]
    seen.clear()
    state = await engine.run(second, max_epochs=1)
    assert seen == second  # from its first batch: not the paused run's iterator
    assert state.iteration == 10


class BothIterables:
    """Iterable and async iterable: read as pytorch-ignite reads it, with __iter__."""

    def __iter__(self) -> Iterator[str]:
        return iter(["sync 0", "sync 1"])

    def __aiter__(self) -> AsyncIterator[str]:
        async def batches() -> AsyncIterator[str]:
            for i in range(2):
                yield f"async {i}"

        return batches()


class OnlyAsync:
    def __aiter__(self) -> AsyncIterator[str]:
        return BothIterables().__aiter__()


@pytest.mark.parametrize("prefetch", [0, 1])
async def test_data_with_both_iter_and_aiter_is_read_with_iter(prefetch: int) -> None:
    seen: list[str] = []
    await Engine(lambda e, b: seen.append(b)).run(BothIterables(), epoch_length=2, prefetch=prefetch)
    assert seen == ["sync 0", "sync 1"]
    seen.clear()
    await Engine(lambda e, b: seen.append(b)).run(OnlyAsync(), epoch_length=2, prefetch=prefetch)
    assert seen == ["async 0", "async 1"]


async def test_load_state_dict_parks_a_one_shot_stream_instead_of_closing_it() -> None:
    done: list[Any] = []
    engine = recording_engine(done)
    data = stream(20)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=5), lambda e: e.interrupt())
    await engine.run(data, epoch_length=10, max_epochs=2)
    engine.load_state_dict(engine.state_dict())
    state = await engine.run(data)
    assert state.iteration == 20
    assert done == list(range(20))


@pytest.mark.parametrize(("first", "then"), [(2, 0), (0, 2), (1, 3)])
async def test_switching_prefetch_between_runs_continues_the_stream(first: int, then: int) -> None:
    seen: list[int] = []
    engine = Engine(lambda e, b: seen.append(b))
    data = stream(40)
    with anyio.fail_after(10):
        await engine.run(data, epoch_length=5, prefetch=first)
        assert seen == [0, 1, 2, 3, 4]
        state = await engine.run(data, epoch_length=5, prefetch=then)
    assert state.iteration == 5  # the stream was not closed under it
    assert seen[5:] == sorted(seen[5:])
    assert seen[5] >= 5  # at most what a prefetcher read ahead is skipped


# ---------------------------------------------------------------- set_data()


class Tracked:
    """A generator (sync or async) of labelled batches that records whether it was closed."""

    def __init__(self, label: str, n: int) -> None:
        self.label, self.n, self.closed = label, n, False

    def sync(self) -> Iterator[str]:
        try:
            for i in range(self.n):
                yield f"{self.label}{i}"
        finally:
            self.closed = True

    async def async_(self) -> AsyncIterator[str]:
        try:
            for i in range(self.n):
                await anyio.lowlevel.checkpoint()
                yield f"{self.label}{i}"
        finally:
            self.closed = True


def make_labelled(kind: str, label: str, n: int) -> tuple[Any, Tracked | None]:
    if kind == "list":
        return [f"{label}{i}" for i in range(n)], None
    tracked = Tracked(label, n)
    return (tracked.sync() if kind == "sync generator" else tracked.async_()), tracked


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("new_kind", ["list", "sync generator", "async generator"])
@pytest.mark.parametrize("old_kind", ["list", "sync generator", "async generator"])
async def test_set_data_mid_epoch_reads_the_new_data_next_and_keeps_the_epoch_length(
    old_kind: str, new_kind: str, prefetch: int
) -> None:
    seen: list[tuple[int, int, str]] = []
    engine = Engine(lambda e, b: seen.append((e.state.epoch, e.state.iteration, b)))
    old, old_tracked = make_labelled(old_kind, "a", 100)
    new, _ = make_labelled(new_kind, "b", 100)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda e: e.set_data(new))
    with anyio.fail_after(10):
        state = await engine.run(old, epoch_length=5, max_epochs=2, prefetch=prefetch)
    assert [b for _, _, b in seen] == ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "b4", "b5", "b6"]
    assert [(e, i) for e, i, _ in seen] == [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)] + [(2, i) for i in range(6, 11)]
    assert (state.epoch_length, state.iteration, state.dataloader) == (5, 10, new)
    if old_tracked is not None:
        # The old generator is no longer the engine's: an async one is closed (awaited) at the next event,
        # a sync one is dropped (and closed once collected).
        if old_kind == "async generator":
            assert old_tracked.closed
        del old
        import gc

        gc.collect()
        assert old_tracked.closed


async def test_set_data_closes_an_old_async_stream_before_the_next_iteration() -> None:
    tracked = Tracked("a", 100)
    closed_at: list[int] = []
    engine = Engine(lambda e, b: closed_at.append(e.state.iteration) if tracked.closed else None)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.set_data([0] * 10))
    await engine.run(tracked.async_(), epoch_length=5)
    assert closed_at[0] == 3  # already closed when the first batch of the new data is processed


async def test_set_data_shorter_than_the_epoch_restarts_it_within_the_epoch(trace: list[Any]) -> None:
    seen: list[Any] = []
    engine = Engine(lambda e, b: seen.append(b))
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), lambda e: e.set_data(["x", "y"]))
    stops: list[int] = []
    engine.add_event_handler(Events.DATALOADER_STOP_ITERATION, lambda e: stops.append(e.state.iteration))
    state = await engine.run([1, 2, 3, 4, 5], max_epochs=1)
    assert seen == [1, "x", "y", "x", "y"]
    assert stops == [3]
    assert state.epoch_length == 5


async def test_set_data_on_a_paused_run_resumes_on_the_new_data() -> None:
    seen: list[Any] = []
    engine = Engine(lambda e, b: seen.append(b))
    pause = engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.interrupt())
    await engine.run(stream(100), epoch_length=4, max_epochs=2)
    pause.remove()
    engine.set_data(["n0", "n1", "n2", "n3", "n4", "n5"])
    state = await engine.run()
    assert seen == [0, 1, "n0", "n1", "n2", "n3", "n4", "n5"]
    assert state.iteration == 8


async def test_set_data_from_a_process_function_and_on_an_epoch_boundary() -> None:
    seen: list[Any] = []

    async def step(engine: Engine, batch: Any) -> None:
        seen.append(batch)
        if batch == "a1":
            engine.set_data(["b0", "b1", "b2"])

    engine = Engine(step)
    engine.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.set_data(["c0", "c1", "c2"]))
    await engine.run(["a0", "a1", "a2"], max_epochs=3)
    assert seen == ["a0", "a1", "b0", "c0", "c1", "c2", "c0", "c1", "c2"]


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (None, TypeError, "must be an iterable"),
        (5, TypeError, "must be an iterable"),
        (list, TypeError, "got the class list itself: pass an instance"),
    ],
)
def test_set_data_refuses_what_is_not_data(data: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Engine(lambda e, b: None).set_data(data)


# ---------------------------------------------------------------- data that runs out, or never gives a batch


class EmptyAsync:
    def __aiter__(self) -> AsyncIterator[int]:
        return stream(0)

    def __repr__(self) -> str:
        return "<EmptyAsync loader>"


def empty_generator() -> Iterator[int]:
    yield from ()


async def empty_async_generator() -> AsyncIterator[int]:
    for i in ():
        yield i


@pytest.mark.parametrize("kind", ["empty __aiter__", "empty generator", "empty async generator", "empty len"])
async def test_data_that_gives_no_batch_in_the_first_epoch_is_an_error_naming_it(kind: str) -> None:
    class Sized:
        def __len__(self) -> int:
            return 3

        def __iter__(self) -> Iterator[int]:
            return iter(())

    data: Any = {
        "empty __aiter__": EmptyAsync(),
        "empty generator": empty_generator(),
        "empty async generator": empty_async_generator(),
        "empty len": Sized(),
    }[kind]
    engine = Engine(lambda e, b: None)
    with pytest.raises(ValueError, match="gave no batch in the first epoch") as caught:
        await engine.run(data, epoch_length=3, max_epochs=2)
    assert repr(data)[:40] in str(caught.value)
    assert engine.state.iteration == 0


async def test_an_iterator_that_ended_before_it_was_given_only_warns_as_in_ignite() -> None:
    used_up = iter(range(2))
    list(used_up)
    with pytest.warns(UserWarning, match="can provide no more data"):
        state = await Engine(lambda e, b: None).run(used_up, epoch_length=3, max_epochs=2)
    assert state.iteration == 0


async def test_a_generator_this_engine_used_up_only_warns_in_a_new_run_as_in_ignite() -> None:
    data = iter(range(3))
    engine = Engine(lambda e, b: None)
    await engine.run(data, epoch_length=3)
    engine.state.max_epochs = None  # a new run over the generator it used up
    with pytest.warns(UserWarning, match="can provide no more data"):
        state = await engine.run(data, epoch_length=3, max_epochs=2)
    assert state.iteration == 0


async def test_empty_data_given_by_set_data_after_the_first_epoch_began_only_warns() -> None:
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.set_data(EmptyAsync()))
    with pytest.warns(UserWarning, match="can provide no more data"):
        state = await engine.run([1, 2, 3, 4], max_epochs=2)
    assert state.iteration == 2


async def test_empty_data_given_by_set_data_before_any_batch_is_an_error_naming_it() -> None:
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_STARTED, lambda e: e.set_data(EmptyAsync()))
    with pytest.raises(ValueError, match="the data <EmptyAsync loader> gave no batch in the first epoch"):
        await engine.run([1, 2, 3, 4])


async def test_data_that_runs_out_later_only_warns_with_a_user_warning() -> None:
    engine = Engine(lambda e, b: None)
    with pytest.warns(UserWarning, match="can provide no more data") as caught:
        state = await engine.run(iter(range(4)), epoch_length=3, max_epochs=3)
    assert [w.category for w in caught] == [UserWarning]
    assert state.iteration == 4
