from __future__ import annotations

import logging
import types
from typing import Any

import ignite.handlers.time_limit as ref_time_limit
import pytest
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

import ignite_async.handlers.time_limit as time_limit_module
from ignite_async import Engine, Events
from ignite_async.handlers import TimeLimit
from tests.conftest import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One fake clock for both libraries: ours reads time.monotonic, pytorch-ignite's time.time."""
    fake = Clock(1000.0)
    monkeypatch.setattr(time_limit_module, "monotonic", fake)
    monkeypatch.setattr(ref_time_limit, "time", types.SimpleNamespace(time=fake))
    return fake


def record_names(engine: Any, events: Any, trace: list[tuple[str, int, int]]) -> None:
    for event in events:

        def record(e: Any, name: str = event.name) -> None:
            trace.append((name, e.state.epoch, e.state.iteration))

        engine.add_event_handler(event, record)


NAMES = ["STARTED", "EPOCH_COMPLETED", "TERMINATE", "COMPLETED"]


@pytest.mark.anyio
@pytest.mark.parametrize(("limit", "seconds_per_batch", "head_start"), [(5, 1.0, 0.0), (3, 0.7, 0.0), (10, 1.5, 4.0)])
async def test_stops_where_ignite_stops(clock: Clock, limit: int, seconds_per_batch: float, head_start: float) -> None:
    def step(engine: Any, batch: int) -> None:
        clock.now += seconds_per_batch

    start = clock.now
    ref_trace: list[tuple[str, int, int]] = []
    ref = IgniteEngine(step)
    ref.add_event_handler(IgniteEvents.ITERATION_COMPLETED, ref_time_limit.TimeLimit(limit_sec=limit))
    record_names(ref, [getattr(IgniteEvents, n) for n in NAMES], ref_trace)
    clock.now += head_start  # time that passes between creating the handler and running
    ref.run(range(4), max_epochs=5)

    clock.now = start
    ours_trace: list[tuple[str, int, int]] = []

    async def async_step(engine: Any, batch: int) -> None:
        step(engine, batch)

    ours = Engine(async_step)
    ours.add_event_handler(Events.ITERATION_COMPLETED, TimeLimit(limit_sec=limit))
    record_names(ours, [getattr(Events, n) for n in NAMES], ours_trace)
    clock.now += head_start
    await ours.run(range(4), max_epochs=5)

    assert ours_trace == ref_trace
    assert ("TERMINATE", ours.state.epoch, ours.state.iteration) in ours_trace
    assert ours.state.iteration < 20


@pytest.mark.anyio
async def test_a_run_within_the_limit_completes(clock: Clock) -> None:
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED, TimeLimit())
    clock.now += 28800  # exactly the limit is not past it
    state = await engine.run(range(3), max_epochs=2)
    assert (state.iteration, state.epoch) == (6, 2)


@pytest.mark.anyio
async def test_logs_as_ignite(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED, TimeLimit(limit_sec=2))
    clock.now += 3
    with caplog.at_level(logging.INFO, logger="ignite_async.handlers.time_limit.TimeLimit"):
        state = await engine.run(range(5))
    assert state.iteration == 1
    records = [r for r in caplog.records if r.name == "ignite_async.handlers.time_limit.TimeLimit"]
    assert [r.getMessage() for r in records] == ["Reached the time limit: 2 sec. Stop training"]


@pytest.mark.parametrize(
    ("limit", "error"), [(None, TypeError), (1.5, TypeError), ("60", TypeError), (0, ValueError), (-1, ValueError)]
)
def test_bad_limits_raise_as_ignite(limit: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        ref_time_limit.TimeLimit(limit_sec=limit)
    with pytest.raises(error, match="limit_sec"):
        TimeLimit(limit_sec=limit)


def test_defaults_as_ignite() -> None:
    assert TimeLimit().limit_sec == ref_time_limit.TimeLimit().limit_sec == 28800
