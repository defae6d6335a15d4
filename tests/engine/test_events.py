from __future__ import annotations

from typing import Any

import pytest

from ignite_async import Engine, EventEnum, Events, EventsList, throttle_filter


class Custom(EventEnum):
    FOO = "foo"
    BAR = "bar"


def iterations_fired(event: Any, n_iters: int = 30) -> list[int]:
    """Which iterations a handler on ``event`` runs at, over a run of ``n_iters`` iterations."""
    import asyncio

    seen: list[int] = []
    engine = Engine(lambda engine, batch: None)
    engine.add_event_handler(event, lambda e: seen.append(e.state.iteration))
    asyncio.run(engine.run(range(n_iters)))
    return seen


def test_events_compare_by_name_like_ignite() -> None:
    assert Events.ITERATION_COMPLETED(every=3) == Events.ITERATION_COMPLETED
    assert Events.ITERATION_COMPLETED == "ITERATION_COMPLETED"
    assert hash(Events.ITERATION_COMPLETED(every=3)) == hash(Events.ITERATION_COMPLETED)
    assert Events.ITERATION_COMPLETED != Events.ITERATION_STARTED


def test_filtered_events_describe_their_filter() -> None:
    assert repr(Events.ITERATION_COMPLETED(every=100)) == "Events.ITERATION_COMPLETED(every=100)"
    assert repr(Events.EPOCH_STARTED(once=[3, 1])) == "Events.EPOCH_STARTED(once=[1, 3])"
    assert repr(Events.COMPLETED) == "Events.COMPLETED"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"every": 7}, [7, 14, 21, 28]),
        ({"once": 5}, [5]),
        ({"once": [2, 29, 40]}, [2, 29]),
        ({"before": 4}, [1, 2, 3]),
        ({"after": 27}, [28, 29, 30]),
        ({"before": 9, "after": 5}, [6, 7, 8]),
        # `every` combined with a window counts from the first value after `after`.
        ({"every": 4, "after": 5}, [6, 10, 14, 18, 22, 26, 30]),
        ({"every": 3, "before": 10, "after": 1}, [2, 5, 8]),
        ({"event_filter": lambda engine, event: event in (3, 4)}, [3, 4]),
    ],
)
def test_filters_select_iterations(kwargs: dict[str, Any], expected: list[int]) -> None:
    assert iterations_fired(Events.ITERATION_COMPLETED(**kwargs)) == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of"),
        ({"every": 2, "once": 3}, ValueError, "exactly one of"),
        ({"event_filter": lambda e, v: True, "every": 2}, ValueError, "exactly one of"),
        ({"every": 0}, ValueError, "every must be a positive integer"),
        ({"every": 2.5}, ValueError, "every must be a positive integer"),
        ({"every": True}, ValueError, "every must be a positive integer"),
        ({"once": 0}, ValueError, "once must be"),
        ({"once": []}, ValueError, "once must be"),
        ({"once": [1, -2]}, ValueError, "once must be"),
        ({"once": "3"}, ValueError, "once must be"),
        ({"before": -1}, ValueError, "before must be"),
        ({"after": 1.5}, ValueError, "after must be"),
        ({"before": 3, "after": 2}, ValueError, "no value strictly between"),
        ({"event_filter": 3}, TypeError, "event_filter must be a callable"),
        ({"event_filter": lambda event: True}, TypeError, "cannot be called as"),
    ],
)
def test_bad_filter_arguments_fail_where_the_event_is_built(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Events.ITERATION_COMPLETED(**kwargs)


def test_or_builds_an_events_list() -> None:
    events = Events.STARTED | Events.COMPLETED | Events.ITERATION_STARTED(every=3)
    assert isinstance(events, EventsList)
    assert [e.name for e in events] == ["STARTED", "COMPLETED", "ITERATION_STARTED"]
    with pytest.raises(TypeError, match="only events can be combined"):
        _ = Events.STARTED | 3


def test_and_requires_both_filters() -> None:
    event = Events.ITERATION_COMPLETED(every=2) & Events.ITERATION_COMPLETED(every=3)
    assert iterations_fired(event) == [6, 12, 18, 24, 30]
    assert iterations_fired(Events.ITERATION_COMPLETED & Events.ITERATION_COMPLETED(once=4)) == [4]


def test_and_short_circuits_left_to_right() -> None:
    consulted: list[int] = []

    def right(engine: Engine, event: int) -> bool:
        consulted.append(event)
        return True

    event = Events.ITERATION_COMPLETED(every=5) & Events.ITERATION_COMPLETED(event_filter=right)
    assert iterations_fired(event, 20) == [5, 10, 15, 20]
    assert consulted == [5, 10, 15, 20]  # the right filter never saw the firings the left rejected


def test_and_with_a_stateful_throttle_counts_only_what_reached_it() -> None:
    # A throttle that passes once per hour lets through exactly the first firing that reaches it.
    event = Events.ITERATION_COMPLETED(once=[3, 8]) & Events.ITERATION_COMPLETED(event_filter=throttle_filter(3600))
    assert iterations_fired(event) == [3]


def test_and_of_different_events_is_refused() -> None:
    with pytest.raises(ValueError, match="same event"):
        _ = Events.EPOCH_COMPLETED & Events.ITERATION_COMPLETED(every=2)


def test_and_distributes_over_or() -> None:
    events = (Events.ITERATION_COMPLETED(every=2) | Events.ITERATION_COMPLETED(every=5)) & Events.ITERATION_COMPLETED(
        after=10
    )
    assert isinstance(events, EventsList)
    # One handler per member, as with `|`: iteration 20 and 30 pass both members.
    assert sorted(iterations_fired(events)) == sorted([*range(12, 31, 2), 15, 20, 25, 30])


def test_and_distributing_onto_a_different_event_is_refused() -> None:
    with pytest.raises(ValueError, match="same event"):
        _ = (Events.ITERATION_COMPLETED(every=2) | Events.ITERATION_STARTED) & Events.ITERATION_COMPLETED(every=3)


@pytest.mark.anyio
async def test_started_and_completed_filters_count_epochs(trace: list[tuple[str, int, int]]) -> None:
    engine = Engine(lambda engine, batch: None)
    seen: list[str] = []
    engine.add_event_handler(Events.COMPLETED(once=3), lambda: seen.append("completed@3"))
    engine.add_event_handler(Events.COMPLETED(once=2), lambda: seen.append("completed@2"))
    engine.add_event_handler(Events.STARTED(once=2), lambda: seen.append("started@2"))
    await engine.run([1, 2], max_epochs=2)
    assert seen == ["completed@2"]
    await engine.run([1, 2], max_epochs=3)  # continues: STARTED fires at epoch 2
    assert seen == ["completed@2", "started@2", "completed@3"]


@pytest.mark.anyio
async def test_custom_event_filters_need_a_counter() -> None:
    engine = Engine(lambda engine, batch: None)
    engine.register_events(*Custom)
    with pytest.raises(ValueError, match="counts nothing to filter on"):
        engine.add_event_handler(Custom.FOO(every=2), lambda: None)

    async def step(engine: Engine, batch: int) -> None:
        engine.state.foo_count += 1
        await engine.fire(Custom.FOO)

    other = Engine(step)
    other.register_events(*Custom, event_to_attr={Custom.FOO: "foo_count"})
    seen: list[int] = []
    other.add_event_handler(Custom.FOO(every=2), lambda e: seen.append(e.state.foo_count))
    await other.run(range(6))
    assert seen == [2, 4, 6]


@pytest.mark.parametrize("kwargs", [{"before": 0}, {"before": 1}, {"every": 2, "before": 1}])
def test_before_windows_that_can_never_pass_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="no value strictly between"):
        Events.ITERATION_COMPLETED(**kwargs)
