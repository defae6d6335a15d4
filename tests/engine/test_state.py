"""The state seen from outside the loop: ``last_completed_state()``, snapshots, and ``get_event_attrib_value``."""

from __future__ import annotations

from typing import Any

import anyio
import ignite.engine as ignite_engine
import pytest

from ignite_async import Engine, EventEnum, Events, State, background

pytestmark = pytest.mark.anyio


class Custom(EventEnum):
    TICK = "tick"


# ---------------------------------------------------------------- last_completed_state()


async def test_last_completed_state_seen_by_another_task_while_a_step_blocks() -> None:
    step_blocked = anyio.Event()
    release = anyio.Event()

    async def step(engine: Engine, batch: int) -> int:
        if batch == 2:
            step_blocked.set()
            await release.wait()
        return batch * 10

    engine = Engine(step)
    engine.state.tag = "before"

    @engine.on(Events.ITERATION_COMPLETED)
    def record(engine: Engine) -> None:
        engine.state.metrics["last"] = engine.state.output
        engine.state.tag = f"after {engine.state.iteration}"

    seen: list[Any] = []

    async def reader() -> None:
        await step_blocked.wait()
        live = engine.state
        seen.append((live.iteration, live.output))  # what a web request would see today
        seen.append(engine.last_completed_state())
        release.set()

    assert engine.last_completed_state() is None
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await engine.run([1, 2, 3], max_epochs=2)

    (live_iteration, live_output), snapshot = seen
    assert (live_iteration, live_output) == (2, None)
    assert isinstance(snapshot, State)
    assert (snapshot.iteration, snapshot.epoch, snapshot.output) == (1, 1, 10)
    assert (snapshot.epoch_length, snapshot.max_epochs, snapshot.max_iters) == (3, 2, None)
    assert snapshot.metrics == {"last": 10}
    assert snapshot.tag == "after 1"
    assert snapshot.batch is None  # no batch is kept alive for it
    # A copy: the engine went on without changing it.
    assert snapshot.metrics is not engine.state.metrics
    assert engine.state.metrics == {"last": 30}

    last = engine.last_completed_state()
    assert last is not None
    assert (last.iteration, last.epoch, last.output) == (6, 2, 30)


async def test_last_completed_state_survives_a_failed_run_and_keeps_the_last_completed_iteration() -> None:
    def step(engine: Engine, batch: int) -> int:
        if batch == 3:
            raise ZeroDivisionError
        return batch

    engine = Engine(step)
    with pytest.raises(ZeroDivisionError):
        await engine.run([1, 2, 3, 4])
    last = engine.last_completed_state()
    assert last is not None
    assert (last.iteration, last.output) == (2, 2)
    assert engine.state.iteration == 2  # rewound to the same iteration


async def test_last_completed_state_gives_each_runs_own_bounds() -> None:
    engine = Engine(lambda engine, batch: batch)
    await engine.run([1, 2], max_epochs=1)
    engine.state.max_epochs = None  # a restart: the recorded iteration belongs to the first run
    seen: list[State | None] = []
    engine.add_event_handler(Events.STARTED, lambda e: seen.append(e.last_completed_state()))
    await engine.run([1, 2, 3], max_epochs=4)
    first = seen[0]
    assert first is not None
    assert (first.iteration, first.epoch_length, first.max_epochs) == (2, 2, 1)
    last = engine.last_completed_state()
    assert last is not None
    assert (last.iteration, last.epoch_length, last.max_epochs) == (12, 3, 4)


async def test_a_background_handler_and_last_completed_state_share_one_snapshot_mechanism() -> None:
    got: list[State] = []

    @background
    async def keep(engine: Engine) -> None:
        got.append(engine.state)

    engine = Engine(lambda engine, batch: batch)
    engine.state.user = "u"
    engine.add_event_handler(Events.ITERATION_COMPLETED, keep)
    await engine.run([5])
    last = engine.last_completed_state()
    assert last is not None
    for snapshot in (got[0], last):
        assert (snapshot.iteration, snapshot.output, snapshot.user) == (1, 5, "u")
        assert snapshot.metrics is not engine.state.metrics


# ---------------------------------------------------------------- get_event_attrib_value


@pytest.mark.parametrize(
    "event",
    [
        "ITERATION_COMPLETED",
        "GET_BATCH_STARTED",
        "EPOCH_STARTED",
        "COMPLETED",
        "STARTED",
    ],
)
def test_get_event_attrib_value_matches_ignite(event: str) -> None:
    ours = State(iteration=7, epoch=2)
    theirs = ignite_engine.State(iteration=7, epoch=2)
    assert ours.get_event_attrib_value(getattr(Events, event)) == theirs.get_event_attrib_value(
        getattr(ignite_engine.Events, event)
    )
    assert ours.get_event_attrib_value(getattr(Events, event)(every=3)) == ours.get_event_attrib_value(event)


def test_get_event_attrib_value_refuses_events_without_a_counter_as_ignite_does() -> None:
    for state, events in ((State(), Events), (ignite_engine.State(), ignite_engine.Events)):
        with pytest.raises(RuntimeError, match="Unknown event name"):
            state.get_event_attrib_value(events.TERMINATE)


def test_get_event_attrib_value_knows_the_engines_custom_counters() -> None:
    engine = Engine(lambda engine, batch: None)
    engine.register_events(*Custom, event_to_attr={Custom.TICK: "ticks"})
    engine.state.ticks = 4
    assert engine.state.get_event_attrib_value(Custom.TICK) == 4
    # Per engine, not global as in pytorch-ignite: another engine's state does not count it.
    with pytest.raises(RuntimeError, match="Unknown event name"):
        Engine(lambda engine, batch: None).state.get_event_attrib_value(Custom.TICK)


def test_state_repr_hides_the_engines_event_map() -> None:
    assert "_event_to_attr" not in repr(Engine(lambda engine, batch: None).state)
