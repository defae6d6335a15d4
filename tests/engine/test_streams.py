"""engine.subscribe(): snapshots per firing, a bounded buffer that drops the oldest, the end of the run."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from ignite_async import Engine, EventEnum, Events, State

pytestmark = pytest.mark.anyio


async def async_step(engine: Engine, batch: int) -> int:
    await anyio.lowlevel.checkpoint()
    return batch


async def test_a_consumer_sees_each_firing_in_order_and_the_stream_ends_with_the_run() -> None:
    engine = Engine(async_step)
    seen: list[tuple[int, int]] = []
    async with anyio.create_task_group() as tg, engine.subscribe(Events.ITERATION_COMPLETED(every=2)) as stream:
        tg.start_soon(engine.run, range(5), 2)
        async for state in stream:
            assert isinstance(state, State)
            seen.append((state.epoch, state.iteration))
    assert seen == [(1, 2), (1, 4), (2, 6), (2, 8), (2, 10)]
    assert stream.dropped == 0
    assert stream.delivered == 5


async def test_a_slow_consumer_never_blocks_training_and_drops_the_oldest() -> None:
    engine = Engine(async_step)
    async with engine.subscribe(Events.ITERATION_COMPLETED, buffer=3) as stream:
        await engine.run(range(50))  # nobody reads meanwhile: training still completes
        remaining = [state.iteration async for state in stream]
    assert remaining == [48, 49, 50]
    assert stream.dropped == 47


async def test_the_stream_ends_when_the_run_fails() -> None:
    def step(engine: Engine, batch: int) -> None:
        if batch == 3:
            raise KeyError("bad batch")

    engine = Engine(step)
    async with engine.subscribe(Events.ITERATION_COMPLETED) as stream:
        with pytest.raises(KeyError):
            await engine.run(range(10))
        assert [state.iteration async for state in stream] == [1, 2, 3]


async def test_subscribing_to_an_unregistered_event_or_with_no_buffer_is_refused() -> None:
    class Custom(EventEnum):
        FOO = "foo"

    engine = Engine(async_step)
    with pytest.raises(ValueError, match="not registered"):
        engine.subscribe(Custom.FOO)
    with pytest.raises(ValueError, match="buffer must be an integer >= 1"):
        engine.subscribe(Events.EPOCH_COMPLETED, buffer=0)
