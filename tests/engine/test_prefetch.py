"""run(..., prefetch=N): same events, counters, batches and errors as without it, with fetching overlapped."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from ignite_async import Engine, Events
from tests.conftest import record_events

pytestmark = pytest.mark.anyio


class Flaky:
    """A re-iterable loader whose fifth batch fails, to see where the error surfaces."""

    def __init__(self, n: int, fail_at: int | None = 4, is_async: bool = False) -> None:
        self.n, self.fail_at, self.is_async = n, fail_at, is_async

    def _items(self) -> Iterator[int]:
        for i in range(self.n):
            if i == self.fail_at:
                raise KeyError(f"bad batch {i}")
            yield i

    def __iter__(self) -> Iterator[int]:
        return self._items()

    def __aiter__(self) -> AsyncIterator[int]:
        async def agen() -> AsyncIterator[int]:
            for item in self._items():
                yield item

        return agen()


async def traced_run(data: Any, prefetch: int, **kwargs: Any) -> list[Any]:
    trace: list[Any] = []

    def step(engine: Engine, batch: int) -> int:
        trace.append(("PROCESS", engine.state.iteration, batch))
        if engine.state.iteration == 5:
            engine.terminate_epoch()
        if engine.state.iteration == 9:
            engine.interrupt()
        return batch

    engine = Engine(step)
    record_events(engine, trace)
    engine.add_event_handler(Events.EXCEPTION_RAISED, lambda e, exc: trace.append(("EXC", repr(exc))))
    await engine.run(data, prefetch=prefetch, **kwargs)
    trace.append("RESUME")
    await engine.run(data, prefetch=prefetch)
    return trace


@pytest.mark.parametrize("prefetch", [1, 3])
@pytest.mark.parametrize(
    ("make_data", "kwargs"),
    [
        (lambda: list(range(5)), {"max_epochs": 4}),
        (lambda: Flaky(7), {"epoch_length": 6, "max_epochs": 4}),
        (lambda: Flaky(7, is_async=True), {"epoch_length": 6, "max_epochs": 4}),
        (lambda: Flaky(3, fail_at=None), {"epoch_length": 5, "max_epochs": 4}),
        (lambda: Flaky(9, fail_at=None, is_async=True), {"epoch_length": 2, "max_epochs": 6}),
    ],
    ids=["list", "flaky-sync", "flaky-async", "short-data", "long-data-async"],
)
async def test_prefetch_changes_nothing_observable(make_data: Any, kwargs: dict[str, Any], prefetch: int) -> None:
    expected = await traced_run(make_data(), 0, **kwargs)
    assert await traced_run(make_data(), prefetch, **kwargs) == expected


async def test_the_next_batch_is_fetched_while_the_step_runs() -> None:
    # Deadlocks (and fails by timeout) unless batch 1 is fetched while step 0 is still running.
    fetching_next = threading.Event()

    def loader() -> Iterator[int]:
        yield 0
        fetching_next.set()
        yield 1

    async def step(engine: Engine, batch: int) -> None:
        if batch == 0:
            with anyio.fail_after(10):
                await anyio.to_thread.run_sync(fetching_next.wait)

    state = await Engine(step).run(loader(), epoch_length=2, prefetch=1)
    assert state.iteration == 2


@pytest.mark.parametrize(("prefetch", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
async def test_bad_prefetch(prefetch: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="prefetch must be an integer >= 0"):
        await Engine(lambda e, b: None).run([1], prefetch=prefetch)


async def test_cancelling_a_run_that_prefetches_a_stalled_stream_does_not_hang() -> None:
    class Stalls:
        def __aiter__(self) -> AsyncIterator[int]:
            async def batches() -> AsyncIterator[int]:
                for i in range(3):
                    yield i
                await anyio.sleep_forever()  # a stream waiting for data that never comes
                yield 3

            return batches()

    engine = Engine(lambda e, b: None)
    engine.cancel_grace_period = 0.2
    with anyio.fail_after(10), anyio.move_on_after(0.3):
        await engine.run(Stalls(), epoch_length=100, prefetch=2)
    assert engine.state.iteration == 3


async def test_a_reiterable_loader_is_not_kept_after_the_run() -> None:
    engine = Engine(lambda e, b: None)
    await engine.run(list(range(10)), prefetch=2)
    assert engine._feed._parked is None  # only one-shot iterators are kept for a later run
    assert engine._feed.iterator is None
