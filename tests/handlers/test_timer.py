from __future__ import annotations

import pytest

from ignite_async import Engine, Events
from ignite_async.handlers import Timer
from ignite_async.handlers import timer as timer_module
from tests.conftest import Clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(timer_module, "perf_counter", fake)
    return fake


@pytest.mark.anyio
async def test_average_time_per_iteration_excludes_what_happens_between(clock: Clock) -> None:
    def step(engine: Engine, batch: int) -> None:
        clock.now += 0.5  # inside the timed window

    engine = Engine(step)
    timer = Timer(average=True).attach(
        engine,
        start=Events.EPOCH_STARTED,
        resume=Events.ITERATION_STARTED,
        pause=Events.ITERATION_COMPLETED,
        step=Events.ITERATION_COMPLETED,
    )
    # Added after the timer's pause, so outside the timed window.
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda: setattr(clock, "now", clock.now + 10))
    await engine.run(range(4))
    assert timer.step_count == 4
    assert timer.value() == pytest.approx(0.5)


def test_total_time_pause_resume(clock: Clock) -> None:
    timer = Timer()
    clock.now = 2.0
    assert timer.value() == pytest.approx(2.0)
    timer.pause()
    clock.now = 5.0
    assert timer.value() == pytest.approx(2.0)
    timer.resume()
    clock.now = 6.0
    assert timer.value() == pytest.approx(3.0)
    timer.reset()
    assert timer.value() == 0.0
