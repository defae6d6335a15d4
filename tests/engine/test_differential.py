"""Differential tests: ignite_async against pytorch-ignite 0.5.5, the oracle.

Each scenario (data, run arguments, handlers with filters, actions such as terminate/interrupt/raise, reruns
and state-dict round trips) is played on both libraries by ``tests/engine/_scenarios.py``; the traces of
fired events with ``(epoch, iteration)``, process-function batches, handler calls and run outcomes must be
equal. Random configurations cover the combinations; the targeted tests below pin one behaviour each.
Deliberate differences (pytorch-ignite quirks not copied, listed in the README) are tested at the end.
"""

from __future__ import annotations

import collections
import warnings
from typing import Any

import anyio
import anyio.lowlevel
import ignite.engine as ignite_engine
import pytest

import ignite_async
from tests.engine._scenarios import (
    IGNITE,
    Flavour,
    HandlerSpec,
    IgniteCustomEvents,
    OursCustomEvents,
    Player,
    Scenario,
    ScenarioError,
    Trace,
    Trigger,
    explain,
    ours,
    play,
    play_both,
    random_scenarios,
)

pytestmark = pytest.mark.anyio

SEEDS = range(32)
PER_SEED = 25  # 800 random configurations, each played on ignite and on ignite_async (asyncio and trio)


async def agree(scenario: Scenario) -> Trace:
    """Play ``scenario`` on both libraries, assert the traces are equal, and return it."""
    ref, got = await play_both(scenario)
    assert got == ref, explain(ref, got, scenario)
    return ref


def only(trace: Trace, *names: str) -> list[tuple[Any, ...]]:
    return [entry for entry in trace if entry[0] in names]


def batches(trace: Trace) -> list[Any]:
    return [entry[3] for entry in trace if entry[0] == "PROCESS"]


def after(trace: Trace, entry: tuple[Any, ...], count: int) -> Trace:
    """The ``count`` entries that follow the first occurrence of ``entry``."""
    start = trace.index(entry) + 1
    return trace[start : start + count]


def on(label: str, *events: tuple[str, Any], triggers: tuple[Trigger, ...] = ()) -> HandlerSpec:
    return HandlerSpec(label, events, triggers)


def at_call(k: int, action: str) -> tuple[Trigger, ...]:
    return (Trigger(("call", k), action),)


# ---------------------------------------------------------------- random configurations


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_configurations_match_ignite(seed: int) -> None:
    for index, scenario in enumerate(random_scenarios(seed, PER_SEED)):
        ref, got = await play_both(scenario)
        assert got == ref, f"seed={seed} index={index}\n{explain(ref, got, scenario)}"


@pytest.mark.parametrize("seed", SEEDS[::4])
async def test_random_configurations_match_ignite_with_prefetch(seed: int) -> None:
    """Reading ahead (issue 3) changes nothing observable: same events, counters, batches, errors."""
    for index, scenario in enumerate(random_scenarios(seed, PER_SEED)):
        ref = await play(scenario, IGNITE)
        got = await play(scenario, ours(scenario, prefetch=2))
        assert got == ref, f"seed={seed} index={index} prefetch=2\n{explain(ref, got, scenario)}"


def test_random_configurations_cover_every_feature() -> None:
    """The generator reaches every path the comparison is meant to cover (counted on ignite's traces)."""
    scenarios = [s for seed in SEEDS for s in random_scenarios(seed, PER_SEED)]

    async def traces() -> list[Trace]:
        return [await play(s, IGNITE) for s in scenarios]

    seen: collections.Counter[str] = collections.Counter()
    for scenario, trace in zip(scenarios, anyio.run(traces), strict=True):
        features = {entry[0] for entry in trace}
        features |= {f"ACT {e[2]}" for e in trace if e[0] == "ACT"}
        features |= {f"EXC {e[4]}" for e in trace if e[0] == "EXC"}
        features |= {f"data {scenario.data_kind}", "max_iters" if scenario.max_iters else "max_epochs"}
        features |= {f"rerun {r}" for r in scenario.reruns}
        features |= {f"filter {f[0]}" for h in scenario.handlers for _, f in h.events if f is not None}
        features |= {"joined events" for h in scenario.handlers if len(h.events) > 1}
        features |= {"epoch_length < n"} if (scenario.epoch_length or scenario.n) < scenario.n else set()
        features |= {"epoch_length > n"} if (scenario.epoch_length or scenario.n) > scenario.n else set()
        features |= {"async process"} if ours(scenario).async_process else {"sync process"}
        features |= {"async handlers"} if scenario.ours_async_handlers else {"sync handlers"}
        if any(e[0] == "RETURNED" for e in trace[:-1]) and trace[-1][0] in ("RETURNED", "RAISED"):
            features.add("resumed or restarted")
        seen.update(features)
    wanted = [
        "INTERRUPT", "TERMINATE", "TERMINATE_SINGLE_EPOCH", "DATALOADER_STOP_ITERATION", "CUSTOM_A", "WARN",
        "EXC", "RAISED", "STATE_DICT", "LOADED", "resumed or restarted", "joined events",
        "epoch_length < n", "epoch_length > n", "max_iters", "max_epochs", "async process", "sync process",
        "async handlers", "sync handlers",
        *(f"ACT {a}" for a in ("terminate", "terminate_skip", "terminate_epoch", "terminate_epoch_skip")),
        *(f"ACT {a}" for a in ("interrupt", "raise")),
        *(f"EXC {m}" for m in ("swallow", "reraise", "terminate", "interrupt")),
        *(f"data {k}" for k in ("list", "gen", "iterable", "none")),
        *(f"rerun {r}" for r in ("noargs", "data", "more", "set", "length")),
        *(f"filter {f}" for f in ("every", "once", "before", "after", "between", "custom")),
        *(f"filter {f}" for f in ("every_before", "every_after", "every_between")),
    ]  # fmt: skip
    rare = {feature: seen[feature] for feature in wanted if seen[feature] < 5}
    assert not rare, f"features reached by fewer than 5 of {len(scenarios)} configurations: {rare}"


async def test_async_process_and_handlers_give_the_same_trace_as_sync() -> None:
    scenarios = [s for s in random_scenarios(1000, 40) if not s.custom_event]
    for scenario in scenarios:
        ref = await play(scenario, IGNITE)
        for async_process in (False, True):
            for async_handlers in (False, True):
                got = await play(scenario, Flavour("ours", async_process, async_handlers))
                assert got == ref, f"async_process={async_process} async_handlers={async_handlers}\n" + explain(
                    ref, got, scenario
                )


# ---------------------------------------------------------------- event order and counters


async def test_get_batch_events_fire_before_the_iteration_counter_moves() -> None:
    trace = await agree(Scenario(n=2, max_epochs=1))
    assert trace[1:-1] == [
        ("STARTED", 0, 0),
        ("EPOCH_STARTED", 1, 0),
        ("GET_BATCH_STARTED", 1, 0),
        ("GET_BATCH_COMPLETED", 1, 0),
        ("ITERATION_STARTED", 1, 1),
        ("PROCESS", 1, 1, 0),
        ("ITERATION_COMPLETED", 1, 1),
        ("GET_BATCH_STARTED", 1, 1),
        ("GET_BATCH_COMPLETED", 1, 1),
        ("ITERATION_STARTED", 1, 2),
        ("PROCESS", 1, 2, 1),
        ("ITERATION_COMPLETED", 1, 2),
        ("EPOCH_COMPLETED", 1, 2),
        ("COMPLETED", 1, 2),
    ]


async def test_get_batch_filters_count_the_iterations_done_so_far() -> None:
    # GET_BATCH_STARTED(once=1) is the fetch of the second batch; terminating there skips that batch.
    handler = on("h", ("GET_BATCH_STARTED", ("once", 1)), triggers=at_call(1, "terminate"))
    trace = await agree(Scenario(n=3, max_epochs=2, handlers=(handler,)))
    assert batches(trace) == [0]
    assert after(trace, ("H", "h", "GET_BATCH_STARTED", 1, 1), 4) == [
        ("ACT", "h", "terminate"),
        ("TERMINATE", 1, 1),
        ("COMPLETED", 1, 1),
        ("RETURNED", 1, 1, True),
    ]


@pytest.mark.parametrize("data_kind", ["list", "iterable"])
async def test_iterator_is_rebuilt_lazily_when_the_next_epochs_first_fetch_fails(data_kind: str) -> None:
    # The first epoch stops at epoch_length without touching the end of the data; the second epoch's first
    # fetch hits it, fires DATALOADER_STOP_ITERATION and retries on a new iterator without a second
    # GET_BATCH_STARTED.
    trace = await agree(Scenario(data_kind=data_kind, n=2, epoch_length=2, max_epochs=2))
    assert after(trace, ("EPOCH_COMPLETED", 1, 2), 6) == [
        ("EPOCH_STARTED", 2, 2),
        ("GET_BATCH_STARTED", 2, 2),
        ("DATALOADER_STOP_ITERATION", 2, 2),
        ("GET_BATCH_COMPLETED", 2, 2),
        ("ITERATION_STARTED", 2, 3),
        ("PROCESS", 2, 3, 0),
    ]


async def test_interrupt_on_dataloader_stop_iteration_refires_get_batch_started_on_resume() -> None:
    handler = on("h", ("DATALOADER_STOP_ITERATION", None), triggers=at_call(1, "interrupt"))
    trace = await agree(Scenario(n=2, max_epochs=2, handlers=(handler,), reruns=("noargs",)))
    assert after(trace, ("INTERRUPT", 2, 2), 4) == [
        ("RETURNED", 2, 2, True),
        ("RUN", ()),
        ("GET_BATCH_STARTED", 2, 2),  # INTERRUPT was the last event, so the retry fires it again
        ("GET_BATCH_COMPLETED", 2, 2),
    ]
    assert batches(trace) == [0, 1, 0, 1]


# ---------------------------------------------------------------- filters


async def test_every_with_before_and_after_has_its_own_phase() -> None:
    handlers = (
        on("every3", ("ITERATION_COMPLETED", ("every", 3))),
        on("every3_after1", ("ITERATION_COMPLETED", ("every_between", 3, 1, 12))),
        on("every3_after2", ("ITERATION_COMPLETED", ("every_after", 3, 2))),
        on("every4_before9", ("ITERATION_COMPLETED", ("every_before", 4, 9))),
        on("between", ("ITERATION_COMPLETED", ("between", 9, 12))),
    )
    trace = await agree(Scenario(n=12, max_epochs=1, handlers=handlers))
    fired = collections.defaultdict(list)
    for entry in only(trace, "H"):
        fired[entry[1]].append(entry[4])
    assert fired == {
        "every3": [3, 6, 9, 12],
        "every3_after1": [2, 5, 8, 11],
        "every3_after2": [3, 6, 9, 12],
        "every4_before9": [1, 5],
        "between": [10, 11],
    }


async def test_filters_on_started_and_completed_count_epochs() -> None:
    handlers = (
        on("started_even", ("STARTED", ("custom", 2, 0))),
        on("started_before3", ("STARTED", ("before", 3))),  # `after` defaults to 0: epoch 0 never passes
        on("started_after1", ("STARTED", ("after", 1))),
        on("completed_every2", ("COMPLETED", ("every", 2))),
        on("completed_once3", ("COMPLETED", ("once", 3))),
    )
    # The second run continues to max_epochs=3: its STARTED fires at epoch 2.
    trace = await agree(Scenario(n=2, max_epochs=2, handlers=handlers, reruns=("more",), extra=1))
    assert only(trace, "H") == [
        ("H", "started_even", "STARTED", 0, 0),
        ("H", "completed_every2", "COMPLETED", 2, 4),
        ("H", "started_even", "STARTED", 2, 4),
        ("H", "started_before3", "STARTED", 2, 4),
        ("H", "started_after1", "STARTED", 2, 4),
        ("H", "completed_once3", "COMPLETED", 3, 6),
    ]


async def test_custom_event_filter_and_joined_events() -> None:
    handler = on(
        "h",
        ("EPOCH_STARTED", ("custom", 2, 0)),
        ("ITERATION_COMPLETED", ("once", (2, 5))),
        ("COMPLETED", None),
    )
    trace = await agree(Scenario(n=3, max_epochs=3, handlers=(handler,)))
    assert only(trace, "H") == [
        ("H", "h", "ITERATION_COMPLETED", 1, 2),
        ("H", "h", "EPOCH_STARTED", 2, 3),
        ("H", "h", "ITERATION_COMPLETED", 2, 5),
        ("H", "h", "COMPLETED", 3, 9),
    ]


# ---------------------------------------------------------------- data and epoch_length


@pytest.mark.parametrize(
    ("data_kind", "n", "epoch_length", "max_epochs", "expected", "warnings"),
    [
        pytest.param("list", 5, 2, 3, [0, 1, 2, 3, 4, 0], 0, id="list-epoch_length-shorter-continues"),
        pytest.param("list", 3, 5, 2, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 0, id="list-epoch_length-longer-restarts"),
        pytest.param("iterable", 2, 3, 2, [0, 1, 0, 1, 0, 1], 0, id="iterable-epoch_length-longer-restarts"),
        # An exhausted generator ends each epoch early; both warn, except in the last epoch (the run is "done").
        pytest.param("gen", 5, 2, 4, [0, 1, 2, 3, 4], 1, id="generator-epoch_length-shorter-then-exhausted"),
        pytest.param("gen", 3, 3, 2, [0, 1, 2], 0, id="generator-epoch_length-equal-then-exhausted"),
        pytest.param("gen", 3, 3, 3, [0, 1, 2], 1, id="generator-exhausted-before-the-last-epoch"),
        pytest.param("gen", 2, 4, 1, [0, 1], 0, id="generator-epoch_length-longer"),
        pytest.param("none", 0, 3, 2, [None] * 6, 0, id="no-data"),
    ],
)
async def test_epoch_length_against_the_data(
    data_kind: str, n: int, epoch_length: int, max_epochs: int, expected: list[Any], warnings: int
) -> None:
    trace = await agree(Scenario(data_kind=data_kind, n=n, epoch_length=epoch_length, max_epochs=max_epochs))
    assert batches(trace) == expected
    assert len(only(trace, "WARN")) == warnings
    assert len(only(trace, "EPOCH_COMPLETED")) == max_epochs
    if data_kind == "none":
        assert not only(trace, "GET_BATCH_STARTED", "GET_BATCH_COMPLETED", "DATALOADER_STOP_ITERATION")


async def test_generator_passed_again_with_epoch_length_is_used_from_where_it_stands() -> None:
    trace = await agree(
        Scenario(data_kind="gen", n=5, epoch_length=2, max_epochs=1, reruns=("data", "data"), reuse_data=True)
    )
    assert batches(trace) == [0, 1, 2, 3, 4]
    assert only(trace, "RETURNED") == [("RETURNED", 1, 2, True), ("RETURNED", 1, 2, True), ("RETURNED", 1, 1, True)]


async def test_max_iters_ends_the_run_mid_epoch_and_a_larger_max_iters_continues() -> None:
    trace = await agree(Scenario(n=3, max_iters=5, reruns=("more",), extra=2))
    assert after(trace, ("ITERATION_COMPLETED", 2, 5), 3) == [
        ("TERMINATE", 2, 5),
        ("COMPLETED", 2, 5),
        ("RETURNED", 2, 5, True),
    ]
    # The rerun resumes a terminated run: a new epoch, counted from 0 on fresh data.
    assert batches(trace) == [0, 1, 2, 0, 1, 0, 1]
    assert trace[-1] == ("RETURNED", 3, 7, True)


# ---------------------------------------------------------------- terminate


@pytest.mark.parametrize("action", ["terminate", "terminate_skip"])
async def test_terminate_mid_epoch_skips_that_epochs_epoch_completed(action: str) -> None:
    trace = await agree(Scenario(n=4, max_epochs=2, process_triggers=at_call(2, action)))
    assert not only(trace, "EPOCH_COMPLETED")
    tail = [("TERMINATE", 1, 2), ("COMPLETED", 1, 2)] if action == "terminate" else [("TERMINATE", 1, 2)]
    assert after(trace, ("PROCESS", 1, 2, 1), 2 + len(tail)) == [
        ("ACT", "process", action),
        ("ITERATION_COMPLETED", 1, 2),
        *tail,
    ]


async def test_terminate_on_epoch_completed_keeps_that_epoch_completed() -> None:
    handler = on("h", ("EPOCH_COMPLETED", ("once", 1)), triggers=at_call(1, "terminate"))
    trace = await agree(Scenario(n=2, max_epochs=3, handlers=(handler,)))
    assert only(trace, "EPOCH_COMPLETED", "TERMINATE", "COMPLETED") == [
        ("EPOCH_COMPLETED", 1, 2),
        ("TERMINATE", 1, 2),
        ("COMPLETED", 1, 2),
    ]


async def test_terminate_then_run_again_starts_the_next_epoch_on_fresh_data() -> None:
    handler = on("h", ("ITERATION_COMPLETED", ("once", 6)), triggers=at_call(1, "terminate"))
    trace = await agree(Scenario(n=4, max_epochs=3, handlers=(handler,), reruns=("data",)))
    assert only(trace, "STARTED") == [("STARTED", 0, 0), ("STARTED", 2, 6)]
    assert batches(trace) == [0, 1, 2, 3, 0, 1, 0, 1, 2, 3]
    assert trace[-1] == ("RETURNED", 3, 10, True)


@pytest.mark.parametrize("action", ["terminate_epoch", "terminate_epoch_skip"])
async def test_terminate_epoch_passes_iter_counter_and_restarts_the_data(action: str) -> None:
    trace = await agree(Scenario(n=4, max_epochs=2, process_triggers=at_call(2, action)))
    assert only(trace, "TERMINATE_SINGLE_EPOCH") == [("TERMINATE_SINGLE_EPOCH", 1, 2, 2)]
    epoch_completed = [("EPOCH_COMPLETED", 2, 6)]
    if action == "terminate_epoch":
        epoch_completed.insert(0, ("EPOCH_COMPLETED", 1, 2))
    assert only(trace, "EPOCH_COMPLETED") == epoch_completed
    assert batches(trace) == [0, 1, 0, 1, 2, 3]


async def test_terminate_epoch_on_get_batch_started_counts_only_fetched_batches() -> None:
    handler = on("h", ("GET_BATCH_STARTED", ("once", 2)), triggers=at_call(1, "terminate_epoch"))
    trace = await agree(Scenario(n=4, max_epochs=2, handlers=(handler,)))
    assert only(trace, "TERMINATE_SINGLE_EPOCH") == [("TERMINATE_SINGLE_EPOCH", 1, 2, 2)]
    assert batches(trace) == [0, 1, 0, 1, 2, 3]


@pytest.mark.parametrize("event", ["STARTED", "EPOCH_STARTED"])
@pytest.mark.parametrize("exc_handler", [None, "swallow"])
async def test_terminate_epoch_before_any_epoch_is_a_runtime_error(event: str, exc_handler: str | None) -> None:
    handler = on("h", (event, None), triggers=at_call(1, "terminate_epoch"))
    trace = await agree(Scenario(n=2, max_epochs=2, handlers=(handler,), exc_handler=exc_handler))
    assert not only(trace, "PROCESS")
    if exc_handler is None:
        assert trace[-1][:2] == ("RAISED", "RuntimeError")
    else:
        assert trace[-2][:2] == ("EXC", "RuntimeError")
        assert trace[-1][0] == "RETURNED"


# ---------------------------------------------------------------- exceptions


@pytest.mark.parametrize("where", ["process", "handler"])
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_exception_without_handler_raises_the_original_type(where: str, use_async: bool) -> None:
    handlers = (on("h", ("ITERATION_COMPLETED", ("once", 2)), triggers=at_call(1, "raise")),)
    scenario = Scenario(
        n=3,
        max_epochs=2,
        handlers=handlers if where == "handler" else (),
        process_triggers=at_call(2, "raise") if where == "process" else (),
        ours_async_process=use_async,
        ours_async_handlers=use_async,
    )
    trace = await agree(scenario)
    # Raised at iteration 2: the state is rewound to the last completed one (see _scenarios.Player.run).
    assert trace[-1] == ("RAISED", "ScenarioError", 0, 1)

    engine = Player(scenario, ours(scenario)).build()
    with pytest.raises(ScenarioError) as info:
        await engine.run([0, 1, 2], max_epochs=2)
    assert type(info.value) is ScenarioError
    assert not isinstance(info.value, BaseExceptionGroup)


async def test_exception_swallowed_in_the_epoch_ends_the_epoch_and_the_run_goes_on() -> None:
    trace = await agree(Scenario(n=4, max_epochs=2, process_triggers=at_call(2, "raise"), exc_handler="swallow"))
    assert after(trace, ("ACT", "process", "raise"), 3) == [
        ("EXC", "ScenarioError", 1, 2, "swallow"),
        ("EPOCH_COMPLETED", 1, 2),
        ("EPOCH_STARTED", 2, 2),
    ]
    # The data iterator is not reset: epoch 2 continues it, then restarts it.
    assert batches(trace) == [0, 1, 2, 3, 0, 1]
    assert trace[-2:] == [("COMPLETED", 2, 6), ("RETURNED", 2, 6, True)]


async def test_exception_swallowed_outside_the_epoch_ends_the_run_without_completed() -> None:
    handler = on("h", ("EPOCH_STARTED", ("once", 2)), triggers=at_call(1, "raise"))
    trace = await agree(Scenario(n=2, max_epochs=3, handlers=(handler,), exc_handler="swallow", reruns=("data",)))
    first_run = trace[: trace.index(("RETURNED", 2, 2, True)) + 1]
    assert first_run[-3:] == [
        ("ACT", "h", "raise"),
        ("EXC", "ScenarioError", 2, 2, "swallow"),
        ("RETURNED", 2, 2, True),
    ]
    assert not only(first_run, "COMPLETED")
    # The rerun starts a new run body from the state: STARTED again, then epoch 3.
    assert after(trace, ("RETURNED", 2, 2, True), 3)[1:] == [("STARTED", 2, 2), ("EPOCH_STARTED", 3, 2)]


async def test_exception_reraised_by_the_handler_is_seen_twice_then_raised() -> None:
    trace = await agree(Scenario(n=3, max_epochs=1, process_triggers=at_call(2, "raise"), exc_handler="reraise"))
    assert only(trace, "EXC") == [("EXC", "ScenarioError", 1, 2, "reraise")] * 2
    assert trace[-1] == ("RAISED", "ScenarioError", 0, 1)  # rewound once the exception has left run()


@pytest.mark.parametrize("mode", ["terminate", "interrupt"])
async def test_exception_handler_that_stops_the_engine(mode: str) -> None:
    trace = await agree(
        Scenario(n=3, max_epochs=2, process_triggers=at_call(2, "raise"), exc_handler=mode, reruns=("noargs",))
    )
    stop = "TERMINATE" if mode == "terminate" else "INTERRUPT"
    assert after(trace, ("EXC", "ScenarioError", 1, 2, mode), 2) == [("EPOCH_COMPLETED", 1, 2), (stop, 1, 2)]


# ---------------------------------------------------------------- interrupt, rerun, state dict


@pytest.mark.parametrize(
    ("event", "spec"),
    [
        ("STARTED", None),
        ("EPOCH_STARTED", ("once", 2)),
        ("GET_BATCH_STARTED", ("once", 3)),
        ("GET_BATCH_COMPLETED", ("once", 4)),
        ("ITERATION_STARTED", ("once", 2)),
        ("ITERATION_COMPLETED", ("once", 2)),
        ("DATALOADER_STOP_ITERATION", None),
        ("EPOCH_COMPLETED", ("once", 1)),
        ("TERMINATE_SINGLE_EPOCH", None),
    ],
)
async def test_interrupt_then_resume_continues_where_it_stopped(event: str, spec: Any) -> None:
    handlers = [on("h", (event, spec), triggers=at_call(1, "interrupt"))]
    if event == "TERMINATE_SINGLE_EPOCH":
        handlers.append(on("t", ("ITERATION_COMPLETED", ("once", 5)), triggers=at_call(1, "terminate_epoch")))
    scenario = Scenario(n=3, epoch_length=4, max_epochs=3, handlers=tuple(handlers), reruns=("data",))
    trace = await agree(scenario)
    assert len(only(trace, "INTERRUPT")) == 1
    assert len(only(trace, "STARTED")) == len(only(trace, "COMPLETED")) == 1
    uninterrupted = await play(Scenario(n=3, epoch_length=4, max_epochs=3, handlers=tuple(handlers[1:])), IGNITE)
    assert batches(trace) == batches(uninterrupted)


async def test_interrupt_before_the_data_is_opened_then_run_without_data_runs_without_data() -> None:
    # The data iterator is opened at the first epoch; run() without data before that takes data=None.
    handler = on("h", ("STARTED", None), triggers=at_call(1, "interrupt"))
    trace = await agree(Scenario(n=3, max_epochs=1, handlers=(handler,), reruns=("noargs",)))
    assert batches(trace) == [None, None, None]
    assert not only(trace, "GET_BATCH_STARTED")


async def test_run_again_after_completion_restarts_and_with_larger_max_epochs_continues() -> None:
    trace = await agree(Scenario(n=2, max_epochs=1, reruns=("data", "more", "noargs"), extra=1))
    assert only(trace, "STARTED") == [("STARTED", 0, 0), ("STARTED", 0, 0), ("STARTED", 1, 2), ("STARTED", 0, 0)]
    # The last run() starts anew, with the default max_epochs=1.
    assert only(trace, "RETURNED") == [
        ("RETURNED", 1, 2, True),
        ("RETURNED", 1, 2, True),
        ("RETURNED", 2, 4, True),
        ("RETURNED", 1, 2, True),
    ]


async def test_run_again_with_max_epochs_below_the_state_is_refused() -> None:
    handler = on("h", ("EPOCH_COMPLETED", ("once", 3)), triggers=at_call(1, "interrupt"))
    trace = await agree(Scenario(n=2, max_epochs=4, handlers=(handler,), reruns=("set",), extra=2))
    assert trace[-1] == ("RAISED", "ValueError", 3, 6)


@pytest.mark.parametrize(
    ("scenario", "state_dict", "loaded", "resumed"),
    [
        pytest.param(
            Scenario(
                n=3,
                max_epochs=3,
                handlers=(on("h", ("ITERATION_COMPLETED", ("once", 4)), triggers=at_call(1, "interrupt")),),
                state_dict_resume=True,
            ),
            (("epoch_length", 3), ("iteration", 4), ("max_epochs", 3)),
            ("LOADED", 1, 4),
            [0, 1, 2, 0, 1],  # a fresh iterator, counted from iteration 4 % 3 = 1 in the epoch
            id="mid-epoch-max_epochs",
        ),
        pytest.param(
            Scenario(
                data_kind="iterable",
                n=3,
                epoch_length=3,
                max_iters=7,
                process_triggers=at_call(4, "interrupt"),
                state_dict_resume=True,
            ),
            (("epoch_length", 3), ("iteration", 4), ("max_iters", 7)),
            ("LOADED", 1, 4),
            [0, 1, 2],
            id="mid-epoch-max_iters",
        ),
        pytest.param(
            Scenario(n=2, max_epochs=2, state_dict_resume=True),
            (("epoch_length", 2), ("iteration", 4), ("max_epochs", 2)),
            ("LOADED", 2, 4),
            [0, 1],  # a finished state: the fresh engine starts a new run, with the default max_epochs=1
            id="finished",
        ),
    ],
)
async def test_state_dict_round_trip_resumes_on_a_fresh_engine(
    scenario: Scenario, state_dict: tuple[Any, ...], loaded: tuple[Any, ...], resumed: list[Any]
) -> None:
    trace = await agree(scenario)
    assert ("STATE_DICT", state_dict) in trace
    assert loaded in trace
    assert batches(trace[trace.index(loaded) :]) == resumed


# ---------------------------------------------------------------- custom events, async callables


async def test_custom_events_fired_from_an_async_process_function() -> None:
    handler = on("h", ("CUSTOM_A", None), triggers=at_call(2, "terminate_epoch"))
    scenario = Scenario(n=3, max_epochs=2, custom_event=True, handlers=(handler,))
    assert ours(scenario).async_process
    trace = await agree(scenario)
    assert trace[6:10] == [
        ("PROCESS", 1, 1, 0),
        ("CUSTOM_A", 1, 1),
        ("H", "h", "CUSTOM_A", 1, 1),
        ("ITERATION_COMPLETED", 1, 1),
    ]
    assert after(trace, ("ACT", "h", "terminate_epoch"), 3) == [
        ("ITERATION_COMPLETED", 1, 2),
        ("TERMINATE_SINGLE_EPOCH", 1, 2, 2),
        ("EPOCH_COMPLETED", 1, 2),
    ]
    assert len(only(trace, "CUSTOM_A")) == len(only(trace, "PROCESS")) == 5


async def test_async_fire_and_sync_fire_event_reach_the_same_handlers() -> None:
    """The engine-level check, without the harness: ``await engine.fire(E)`` runs E's handlers in order."""

    def build(lib: Any, custom: Any, fire: Any, seen: list[tuple[Any, ...]]) -> Any:
        engine = lib.Engine(fire)
        engine.register_events(*custom)
        engine.add_event_handler(custom.CUSTOM_A, lambda e: seen.append(("a", e.state.iteration)))
        engine.add_event_handler(custom.CUSTOM_A, lambda: seen.append(("b",)))
        engine.add_event_handler(lib.Events.ITERATION_COMPLETED, lambda e: seen.append(("it", e.state.iteration)))
        return engine

    ref: list[tuple[Any, ...]] = []
    got: list[tuple[Any, ...]] = []
    build(ignite_engine, IgniteCustomEvents, lambda e, b: e.fire_event(IgniteCustomEvents.CUSTOM_A), ref).run(
        [0, 1], max_epochs=2
    )

    async def step(engine: ignite_async.Engine, batch: Any) -> None:
        await engine.fire(OursCustomEvents.CUSTOM_A)

    await build(ignite_async, OursCustomEvents, step, got).run([0, 1], max_epochs=2)
    assert got == ref
    assert len(ref) == 12


# ---------------------------------------------------------------- deliberate differences (see the README)
# pytorch-ignite 0.5.5 quirks that ignite_async does not copy; each test shows both behaviours.


def _traced(lib: Any, step: Any) -> tuple[Any, list[tuple[str, int, int]]]:
    trace: list[tuple[str, int, int]] = []
    engine = lib.Engine(step)
    for event in lib.Events:
        if event.name not in ("EXCEPTION_RAISED", "TERMINATE_SINGLE_EPOCH"):
            engine.add_event_handler(event, lambda e, n=event.name: trace.append((n, e.state.epoch, e.state.iteration)))
    return engine, trace


def _fails_on_second_call() -> Any:
    calls = 0

    def step(engine: Any, batch: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ScenarioError("second call")

    return step


async def test_run_after_an_escaped_exception_redoes_the_failed_iteration_and_skips_nothing() -> None:
    ref_engine, ref = _traced(ignite_engine, _fails_on_second_call())
    with pytest.raises(ScenarioError):
        ref_engine.run([0, 1, 2], max_epochs=2)
    assert (ref_engine.state.epoch, ref_engine.state.iteration) == (1, 2)
    mark = len(ref)
    assert ref_engine.run([0, 1, 2]) is None  # pytorch-ignite: the dead run generator makes this a no-op
    assert len(ref) == mark
    ref_engine.run([0, 1, 2])  # only the call after it resumes, in epoch 2: the rest of epoch 1 is skipped
    assert ref[mark:][:2] == [("STARTED", 1, 2), ("EPOCH_STARTED", 2, 2)]
    assert ref_engine.state.iteration == 3  # of 6

    engine, got = _traced(ignite_async, _fails_on_second_call())
    with pytest.raises(ScenarioError):
        await engine.run([0, 1, 2], max_epochs=2)
    assert (engine.state.epoch, engine.state.iteration) == (0, 1)  # the last completed iteration
    mark = len(got)
    state = await engine.run([0, 1, 2])  # resumes at once, in epoch 1, and redoes iteration 2
    assert state is engine.state
    assert got[mark:][:3] == [("STARTED", 0, 1), ("EPOCH_STARTED", 1, 1), ("GET_BATCH_STARTED", 1, 1)]
    assert [i for name, _, i in got[mark:] if name == "ITERATION_COMPLETED"] == [2, 3, 4, 5, 6]
    assert (state.epoch, state.iteration) == (2, 6)


async def test_exceptions_raise_again_once_the_exception_handler_is_removed() -> None:
    def swallow(engine: Any, exc: BaseException) -> None: ...

    ref_engine, _ = _traced(ignite_engine, _fails_on_second_call())
    ref_engine.add_event_handler(ignite_engine.Events.EXCEPTION_RAISED, swallow)
    ref_engine.remove_event_handler(swallow, ignite_engine.Events.EXCEPTION_RAISED)
    assert ref_engine.run([0, 1, 2]) is not None  # pytorch-ignite: still swallowed by the removed handler

    engine, _ = _traced(ignite_async, _fails_on_second_call())
    engine.add_event_handler(ignite_async.Events.EXCEPTION_RAISED, swallow)
    engine.remove_event_handler(swallow, ignite_async.Events.EXCEPTION_RAISED)
    with pytest.raises(ScenarioError):
        await engine.run([0, 1, 2])


@pytest.mark.parametrize(
    ("first", "then"), [({"max_epochs": 1}, {"max_iters": 4}), ({"max_iters": 2}, {"max_epochs": 2})]
)
async def test_a_completed_run_may_be_followed_by_one_in_the_other_mode(
    first: dict[str, int], then: dict[str, int]
) -> None:
    ref_engine = ignite_engine.Engine(lambda e, b: None)
    ref_engine.run([0, 1], **first)
    with pytest.raises(ValueError, match="To switch from"):  # pytorch-ignite wants state.max_* reset by hand
        ref_engine.run([0, 1], **then)

    engine = ignite_async.Engine(lambda e, b: None)
    await engine.run([0, 1], **first)
    state = await engine.run([0, 1], **then)
    assert state.iteration == 4
    assert (state.max_epochs, state.max_iters) == (then.get("max_epochs"), then.get("max_iters"))
    # Resuming an unfinished run in the other mode is refused by both.
    engine.add_event_handler(ignite_async.Events.ITERATION_COMPLETED(once=1), lambda e: e.interrupt())
    await engine.run([0, 1], **first)
    with pytest.raises(ValueError, match="resuming a run bounded by"):
        await engine.run([0, 1], **then)


# ---------------------------------------------------------------- set_data()


def _set_data_trace(lib: Any, switch_on: str, new_len: int, run_kwargs: dict[str, Any], use_async: bool) -> Any:
    """The events with (epoch, iteration), batches and warnings of a run that switches data at ``switch_on``."""
    trace: list[tuple[Any, ...]] = []
    new = [f"new{i}" for i in range(new_len)]
    if lib is ignite_async and use_async:

        async def step(engine: Any, batch: Any) -> None:
            await anyio.lowlevel.checkpoint()
            trace.append(("PROCESS", engine.state.epoch, engine.state.iteration, batch))
    else:

        def step(engine: Any, batch: Any) -> None:  # type: ignore[misc]
            trace.append(("PROCESS", engine.state.epoch, engine.state.iteration, batch))

    engine = lib.Engine(step)
    for event in lib.Events:
        if event.name not in ("EXCEPTION_RAISED", "TERMINATE_SINGLE_EPOCH"):
            engine.add_event_handler(event, lambda e, n=event.name: trace.append((n, e.state.epoch, e.state.iteration)))
    name, _, once = switch_on.partition("=")
    engine.add_event_handler(getattr(lib.Events, name)(once=int(once)), lambda e: e.set_data(new))
    return engine, trace


@pytest.mark.parametrize(("use_async", "prefetch"), [(False, 0), (True, 0), (False, 2)])
@pytest.mark.parametrize(
    "switch_on",
    ["ITERATION_COMPLETED=3", "GET_BATCH_STARTED=4", "GET_BATCH_COMPLETED=2", "EPOCH_COMPLETED=1", "EPOCH_STARTED=2"],
)
@pytest.mark.parametrize("new_len", [2, 9])
@pytest.mark.parametrize("run_kwargs", [{"max_epochs": 3}, {"max_epochs": 2, "epoch_length": 3}, {"max_iters": 11}])
async def test_set_data_gives_the_same_batches_and_events_as_ignite(
    switch_on: str, new_len: int, run_kwargs: dict[str, Any], use_async: bool, prefetch: int
) -> None:
    data = [f"old{i}" for i in range(5)]
    ref_engine, ref = _set_data_trace(ignite_engine, switch_on, new_len, run_kwargs, use_async)
    with warnings.catch_warnings(record=True) as ref_warnings:
        warnings.simplefilter("always")
        ref_engine.run(data, **run_kwargs)
    engine, got = _set_data_trace(ignite_async, switch_on, new_len, run_kwargs, use_async)
    with warnings.catch_warnings(record=True) as our_warnings:
        warnings.simplefilter("always")
        await engine.run(data, **run_kwargs, prefetch=prefetch)
    assert got == ref
    assert any(entry[0] == "PROCESS" and str(entry[3]).startswith("new") for entry in got)
    assert [w.category for w in our_warnings] == [w.category for w in ref_warnings]
    assert (engine.state.epoch_length, engine.state.iteration) == (
        ref_engine.state.epoch_length,
        ref_engine.state.iteration,
    )


async def test_data_running_out_warns_the_same_category_as_ignite() -> None:
    categories = []
    for lib in (ignite_engine, ignite_async):
        engine = lib.Engine(lambda e, b: None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = engine.run(iter(range(4)), epoch_length=3, max_epochs=3)
            if lib is ignite_async:
                await result
        categories.append([w.category for w in caught])
    assert categories[0] == categories[1] == [UserWarning]


# ---------------------------------------------------------------- more deliberate differences


async def test_an_exception_raised_handler_taking_one_argument_gets_the_engine_not_the_exception() -> None:
    got: list[Any] = []

    def on_error(engine: Any) -> None:  # e.g. a Checkpoint: __call__(self, engine)
        got.append(engine)

    def fail(engine: Any, batch: Any) -> None:
        raise ScenarioError("boom")

    ref_engine = ignite_engine.Engine(fail)
    ref_engine.add_event_handler(ignite_engine.Events.EXCEPTION_RAISED, on_error)
    ref_engine.run([0])
    assert isinstance(got.pop(), ScenarioError)  # pytorch-ignite passes the exception in the engine's place

    engine = ignite_async.Engine(fail)
    engine.add_event_handler(ignite_async.Events.EXCEPTION_RAISED, on_error)
    await engine.run([0])
    assert got == [engine]


async def test_data_that_gives_no_batch_in_the_first_epoch_is_an_error_not_an_empty_run() -> None:
    ref_engine = ignite_engine.Engine(lambda e, b: None)

    def empty() -> Any:
        yield from ()

    with pytest.warns(UserWarning, match="can not provide data anymore"):
        state = ref_engine.run(empty(), epoch_length=3, max_epochs=2)
    assert (state.epoch, state.iteration) == (2, 0)  # pytorch-ignite: two empty epochs and a warning

    with pytest.raises(ValueError, match="gave no batch in the first epoch"):
        await ignite_async.Engine(lambda e, b: None).run(empty(), epoch_length=3, max_epochs=2)
