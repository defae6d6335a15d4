"""Time-based filters from Ignite.jl. The clock is driven by the test so results do not depend on load."""

from __future__ import annotations

import math

import pytest

from ignite_async import Engine, Events, throttle_filter, timeout_filter
from ignite_async.engine import filters
from tests.conftest import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(1000.0)
    monkeypatch.setattr(filters.time, "monotonic", fake)
    return fake


@pytest.mark.anyio
async def test_throttle_passes_first_then_at_most_once_per_interval(clock: Clock) -> None:
    seen: list[int] = []

    def step(engine: Engine, batch: None) -> None:
        clock.now += 0.4  # each iteration takes 0.4 s of (driven) wall time

    engine = Engine(step)
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=throttle_filter(1.0)), lambda e: seen.append(e.state.iteration)
    )
    await engine.run(epoch_length=10)
    # t = 0.4 (first passes), 1.6 (>= 1.0 after 0.4), 2.8, 4.0
    assert seen == [1, 4, 7, 10]


@pytest.mark.anyio
async def test_timeout_passes_every_call_once_the_run_is_old_enough(clock: Clock) -> None:
    seen: list[int] = []

    def step(engine: Engine, batch: None) -> None:
        clock.now += 1.0

    engine = Engine(step)
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=timeout_filter(5.5)), lambda e: seen.append(e.state.iteration)
    )
    await engine.run(epoch_length=8)
    assert seen == [6, 7, 8]


@pytest.mark.anyio
async def test_timeout_counts_from_the_start_of_the_run_across_an_interrupt(clock: Clock) -> None:
    seen: list[int] = []

    def step(engine: Engine, batch: None) -> None:
        clock.now += 1.0
        if engine.state.iteration == 2:
            engine.interrupt()

    engine = Engine(step)
    engine.add_event_handler(
        Events.ITERATION_COMPLETED(event_filter=timeout_filter(3.5)), lambda e: seen.append(e.state.iteration)
    )
    await engine.run(epoch_length=6)
    clock.now += 100.0  # a long pause while interrupted still counts: the run started before it
    await engine.run()
    assert seen == [3, 4, 5, 6]


@pytest.mark.anyio
async def test_timeout_filter_never_passes_before_a_run_starts() -> None:
    engine = Engine(lambda engine, batch: None)
    assert timeout_filter(0)(engine, 0) is False


def test_real_clock_extremes() -> None:
    # Robust on any machine load: a zero interval always passes, an hour never passes twice here.
    zero, hour = throttle_filter(0), throttle_filter(3600)
    engine = Engine(lambda engine, batch: None)
    assert all(zero(engine, i) for i in range(5))
    assert [hour(engine, i) for i in range(5)] == [True, False, False, False, False]


@pytest.mark.parametrize("factory", [throttle_filter, timeout_filter])
def test_bad_seconds(factory: type) -> None:
    with pytest.raises(ValueError, match="seconds >= 0"):
        factory(-1)
    with pytest.raises(TypeError, match="finite number of seconds"):
        factory("5")
    with pytest.raises(TypeError, match="finite number of seconds"):
        factory(math.nan)
