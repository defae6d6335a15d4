from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from ignite_async import Engine, EventEnum, Events, RemovableEventHandle, State, background
from tests.conftest import record_events

pytestmark = pytest.mark.anyio


class Custom(EventEnum):
    FOO = "foo"


def noop(engine: Engine, batch: Any) -> Any:
    return batch


# ---------------------------------------------------------------- sync and async are interchangeable


async def test_sync_and_async_handlers_run_in_registration_order() -> None:
    effects: list[str] = []

    async def step(engine: Engine, batch: int) -> int:
        await anyio.lowlevel.checkpoint()
        effects.append(f"step{batch}")
        return batch

    async def slow_async(engine: Engine) -> None:
        await anyio.sleep(0.01)  # really suspends: later handlers must still wait for it
        effects.append("async")

    engine = Engine(step)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda: effects.append("sync1"))
    engine.add_event_handler(Events.ITERATION_COMPLETED, slow_async)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda: effects.append("sync2"))
    await engine.run([1, 2])
    assert effects == ["step1", "sync1", "async", "sync2", "step2", "sync1", "async", "sync2"]


async def test_async_and_sync_process_functions_give_the_same_trace() -> None:
    async def astep(engine: Engine, batch: int) -> int:
        await anyio.lowlevel.checkpoint()
        return batch * 10

    traces = []
    for step in (lambda e, b: b * 10, astep):
        trace: list[tuple[str, int, int]] = []
        engine = Engine(step)
        record_events(engine, trace)
        state = await engine.run([1, 2, 3], max_epochs=2)
        assert state.output == 30
        traces.append(trace)
    assert traces[0] == traces[1]


async def test_callable_objects_with_async_call_are_awaited() -> None:
    class Handler:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self, engine: Engine) -> None:
            await anyio.lowlevel.checkpoint()
            self.calls += 1

    handler = Handler()
    engine = Engine(noop)
    engine.add_event_handler(Events.ITERATION_COMPLETED, handler)
    await engine.run(range(4))
    assert handler.calls == 4


# ---------------------------------------------------------------- handler arguments


async def test_handlers_with_and_without_engine_and_extra_args() -> None:
    calls: list[tuple[Any, ...]] = []
    engine = Engine(noop)
    engine.add_event_handler(Events.STARTED, lambda e, a, b=0: calls.append((e is engine, a, b)), 1, b=2)
    engine.add_event_handler(Events.STARTED, lambda a: calls.append(("no engine", a)), "x")
    engine.add_event_handler(Events.STARTED, lambda: calls.append(("nothing",)))
    await engine.run([0])
    assert calls == [(True, 1, 2), ("no engine", "x"), ("nothing",)]


async def test_exception_raised_handlers_get_engine_and_the_original_exception() -> None:
    error = KeyError("boom")
    got: list[tuple[Any, ...]] = []

    def step(engine: Engine, batch: int) -> None:
        if batch == 2:
            raise error

    engine = Engine(step)
    engine.add_event_handler(Events.EXCEPTION_RAISED, lambda e, exc, tag: got.append((e, exc, tag)), "tag")
    state = await engine.run([1, 2, 3], max_epochs=1)
    assert got == [(engine, error, "tag")]
    assert state.iteration == 2  # the epoch ended at the error, and the run went on to COMPLETED


class EngineOnly:
    """Like a Checkpoint: a callable object whose ``__call__`` takes only the engine."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    def __call__(self, engine: Engine) -> None:
        self.got.append(engine)


async def test_exception_raised_handlers_that_take_only_the_engine_get_the_engine() -> None:
    def step(engine: Engine, batch: int) -> None:
        raise KeyError("boom")

    got: list[tuple[Any, ...]] = []

    def plain(engine: Engine) -> None:
        got.append(("plain", engine))

    def both(engine: Engine, e: BaseException) -> None:
        got.append(("both", engine, e))

    async def async_plain(engine: Engine) -> None:
        got.append(("async", engine))

    def with_arg(engine: Engine, tag: str) -> None:
        got.append((tag, engine))

    obj = EngineOnly()
    engine = Engine(step)
    for handler in (plain, both, async_plain, obj, background(lambda engine: got.append(("bg", engine)))):
        engine.add_event_handler(Events.EXCEPTION_RAISED, handler)
    engine.add_event_handler(Events.EXCEPTION_RAISED, with_arg, "tag")
    engine.add_event_handler(Events.EXCEPTION_RAISED, lambda: got.append(("nothing",)))
    await engine.run([1])
    error = got[1][2]
    assert isinstance(error, KeyError)
    inline = [entry for entry in got if entry[0] != "bg"]
    assert inline == [("plain", engine), ("both", engine, error), ("async", engine), ("tag", engine), ("nothing",)]
    assert obj.got == [engine]
    [(_, view)] = [entry for entry in got if entry[0] == "bg"]
    assert view.state.iteration == 1  # the background handler's view of the engine, at the firing


async def test_a_checkpoint_on_exception_raised_saves_the_engine(tmp_path: Any) -> None:
    from ignite_async.handlers import Checkpoint, DiskSaver

    model = torch.nn.Linear(1, 1)

    def step(engine: Engine, batch: int) -> None:
        if batch == 2:
            raise KeyError("boom")

    engine = Engine(step)
    checkpoint = Checkpoint({"model": model}, DiskSaver(tmp_path, require_empty=False))
    engine.add_event_handler(Events.EXCEPTION_RAISED, checkpoint)
    await engine.run([1, 2, 3])
    checkpoint.close()
    assert [p.name for p in tmp_path.glob("*.pt")] == ["model_2.pt"]  # its global step: the iteration that failed


async def test_terminate_single_epoch_passes_iter_counter_to_handlers_that_take_it() -> None:
    got: list[Any] = []
    engine = Engine(noop)
    engine.add_event_handler(Events.TERMINATE_SINGLE_EPOCH, lambda e, iter_counter: got.append(iter_counter))
    engine.add_event_handler(Events.TERMINATE_SINGLE_EPOCH, lambda e: got.append("plain"))
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.terminate_epoch())
    await engine.run([1, 2, 3])
    assert got == [2, "plain"]


def test_handler_signature_that_cannot_fit_names_the_handler() -> None:
    def needs_three(a: int, b: int, c: int) -> None: ...

    engine = Engine(noop)
    with pytest.raises(TypeError, match=r"needs_three.*ITERATION_COMPLETED"):
        engine.add_event_handler(Events.ITERATION_COMPLETED, needs_three)
    with pytest.raises(TypeError, match="needs_three"):
        engine.add_event_handler(Events.EXCEPTION_RAISED, needs_three)
    with pytest.raises(TypeError, match="must be callable"):
        engine.add_event_handler(Events.STARTED, 42)  # type: ignore[arg-type]
    assert not engine.has_event_handler(needs_three)


def test_process_function_signature_is_checked() -> None:
    with pytest.raises(TypeError, match="process_function"):
        Engine(lambda batch: None)  # type: ignore[arg-type,misc]
    with pytest.raises(ValueError, match="process function"):
        Engine(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------- registration


def test_non_events_and_unregistered_events_are_refused() -> None:
    engine = Engine(noop)
    with pytest.raises(TypeError, match="needs an event"):
        engine.add_event_handler(3, lambda: None)
    with pytest.raises(ValueError, match="not registered"):
        engine.add_event_handler(Custom.FOO, lambda: None)
    with pytest.raises(TypeError, match="EventEnum members or strings"):
        engine.register_events(object())  # type: ignore[arg-type]
    # ValueError, as pytorch-ignite 0.5.5 raises.
    with pytest.raises(ValueError, match="event_to_attr must be a mapping"):
        engine.register_events(Custom.FOO, event_to_attr=["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["epoch_completed", "Events.EPOCH_COMPLETED", "epoch-completed"])
def test_a_string_naming_a_builtin_event_is_told_to_use_events(name: str) -> None:
    engine = Engine(noop)
    with pytest.raises(ValueError, match=r"use Events\.EPOCH_COMPLETED, not a string.*register_events"):
        engine.on(name)(lambda: None)


def test_an_unknown_string_event_is_told_about_events_and_register_events() -> None:
    with pytest.raises(ValueError, match=r"members of Events \(e\.g\. Events\.EPOCH_COMPLETED\).*register_events"):
        Engine(noop).add_event_handler("no_such_event", lambda: None)


def test_the_name_of_a_builtin_event_works_as_in_ignite() -> None:
    engine = Engine(noop)
    engine.on("EPOCH_COMPLETED")(lambda: None)  # pytorch-ignite accepts it too: events compare by name
    assert engine.has_event_handler(engine._event_handlers["EPOCH_COMPLETED"][0][6].handler, Events.EPOCH_COMPLETED)


def test_interrupt_raises_when_interrupt_resume_is_disabled_as_in_ignite(monkeypatch: pytest.MonkeyPatch) -> None:
    import ignite.engine as ignite_engine

    assert Engine.interrupt_resume_enabled is True
    errors = []
    for cls in (Engine, ignite_engine.Engine):
        monkeypatch.setattr(cls, "interrupt_resume_enabled", False)
        with pytest.raises(RuntimeError) as caught:
            cls(noop).interrupt()
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "Engine.interrupt_resume_enabled=True" in errors[0]


def test_default_event_filter_is_deprecated_as_in_ignite() -> None:
    import ignite.engine as ignite_engine

    caught = []
    for events in (Events, ignite_engine.Events):
        with pytest.warns(UserWarning, match="default_event_filter is deprecated") as record:
            assert events.default_event_filter(None, 3) is True
        caught.append((record[0].category, str(record[0].message)))
    assert caught[0] == caught[1]


async def test_fire_refuses_unregistered_events() -> None:
    engine = Engine(noop)
    with pytest.raises(ValueError, match=r"Custom.FOO|FOO.*not registered"):
        await engine.fire(Custom.FOO)
    with pytest.raises(TypeError, match="needs an event"):
        await engine.fire(None)


async def test_has_remove_and_removable_handle() -> None:
    calls: list[str] = []

    def a() -> None:
        calls.append("a")

    def b(engine: Engine) -> None:
        calls.append("b")

    engine = Engine(noop)
    handle = engine.add_event_handler(Events.STARTED | Events.COMPLETED, a)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), b)
    assert isinstance(handle, RemovableEventHandle)
    assert engine.has_event_handler(a)
    assert engine.has_event_handler(a, Events.COMPLETED)
    assert engine.has_event_handler(b, Events.ITERATION_COMPLETED)
    assert not engine.has_event_handler(b, Events.STARTED)
    handle.remove()
    assert not engine.has_event_handler(a)
    engine.remove_event_handler(b, Events.ITERATION_COMPLETED)
    with pytest.raises(ValueError, match="not attached"):
        engine.remove_event_handler(b, Events.ITERATION_COMPLETED)
    with pytest.raises(ValueError, match="no handler is attached"):
        engine.remove_event_handler(b, Events.INTERRUPT)
    await engine.run([1, 2])
    assert calls == []
    with engine.add_event_handler(Events.COMPLETED, a):
        await engine.run([1])
    await engine.run([1])
    assert calls == ["a"]


async def test_decorator_returns_the_function() -> None:
    engine = Engine(noop)

    @engine.on(Events.EPOCH_COMPLETED, "x")
    async def handler(engine: Engine, tag: str) -> None:
        engine.state.tag = tag

    assert callable(handler)
    state = await engine.run([1])
    assert state.tag == "x"


async def test_custom_events_fired_from_an_async_process_function() -> None:
    order: list[str] = []

    async def step(engine: Engine, batch: int) -> None:
        order.append(f"before{batch}")
        await engine.fire(Custom.FOO)
        order.append(f"after{batch}")

    engine = Engine(step)
    engine.register_events(*Custom)
    engine.add_event_handler(Custom.FOO, lambda e: order.append(f"foo@{e.state.iteration}"))
    await engine.run([1, 2])
    assert order == ["before1", "foo@1", "after1", "before2", "foo@2", "after2"]
    assert engine.last_event_name is Events.COMPLETED


# ---------------------------------------------------------------- data


async def test_async_iterables_are_consumed_like_iterables() -> None:
    async def agen() -> AsyncIterator[int]:
        for i in range(5):
            await anyio.lowlevel.checkpoint()
            yield i

    class Batches:
        def __aiter__(self) -> AsyncIterator[int]:
            return agen()

    for data in (Batches(), agen()):
        seen: list[int] = []
        engine = Engine(lambda e, b, seen=seen: seen.append(b))
        await engine.run(data, epoch_length=3, max_epochs=2)
        # An async generator is exhausted after its 5 items; a re-iterable restarts.
        assert seen == ([0, 1, 2, 3, 4, 0] if isinstance(data, Batches) else [0, 1, 2, 3, 4])


async def test_torch_dataloaders() -> None:
    loader = DataLoader(torch.arange(10.0), batch_size=4)
    sums: list[float] = []
    engine = Engine(lambda e, b: sums.append(float(b.sum())))
    state = await engine.run(loader, max_epochs=2)
    assert state.epoch_length == 3
    assert sums == [6.0, 22.0, 17.0] * 2

    class Stream(IterableDataset[int]):
        def __iter__(self) -> Iterator[int]:
            return iter(range(100))

    stream_loader = DataLoader(Stream(), batch_size=None)
    with pytest.raises(ValueError, match="has no length"):
        await Engine(noop).run(stream_loader)
    state = await Engine(noop).run(stream_loader, epoch_length=7)
    assert state.output == 6


async def test_no_data_calls_the_process_function_with_none() -> None:
    seen: list[Any] = []
    engine = Engine(lambda e, b: seen.append(b))
    trace: list[tuple[str, int, int]] = []
    record_events(engine, trace)
    await engine.run(epoch_length=3)
    assert seen == [None, None, None]
    assert not any(name.startswith("GET_BATCH") for name, _, _ in trace)


# ---------------------------------------------------------------- state


async def test_state_fields_times_and_user_fields() -> None:
    engine = Engine(lambda e, b: b + 1)

    @engine.on(Events.STARTED)
    def init(engine: Engine) -> None:
        engine.state.best = 0.0
        engine.state.metrics["loss"] = 1.0

    state = await engine.run([1, 2, 3], max_epochs=2)
    assert isinstance(state, State)
    assert state is engine.state
    assert (state.epoch, state.iteration, state.epoch_length, state.max_epochs) == (2, 6, 3, 2)
    assert state.output == 4
    assert state.batch == 3
    assert state.best == 0.0
    assert state.metrics == {"loss": 1.0}
    assert state.dataloader == [1, 2, 3]
    assert state.times["EPOCH_COMPLETED"] is not None
    assert state.times["COMPLETED"] is not None
    assert state.times["COMPLETED"] >= state.times["EPOCH_COMPLETED"] >= 0
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = state.missing


async def test_state_dict_round_trip_resumes_on_a_new_engine() -> None:
    seen: list[int] = []
    engine = Engine(lambda e, b: seen.append(b))
    engine.state_dict_user_keys.append("alpha")
    engine.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "alpha", 0.5))
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=5), lambda e: e.interrupt())
    await engine.run(list(range(4)), max_epochs=3)
    sd = engine.state_dict()
    assert dict(sd) == {"epoch_length": 4, "iteration": 5, "max_epochs": 3, "alpha": 0.5}

    resumed_seen: list[int] = []
    resumed = Engine(lambda e, b: resumed_seen.append(b))
    resumed.state_dict_user_keys.append("alpha")
    resumed.load_state_dict(sd)
    assert (resumed.state.epoch, resumed.state.iteration) == (1, 5)
    state = await resumed.run(list(range(4)))
    # As in pytorch-ignite, the resumed epoch counts from its second iteration, the data starts afresh, and
    # the iterator carries over into the next epoch (skipping seen batches is a deterministic loader's job).
    assert resumed_seen == [0, 1, 2, 3, 0, 1, 2]
    assert (state.epoch, state.iteration) == (3, 12)


def test_load_state_dict_errors_name_the_problem() -> None:
    engine = Engine(noop)
    with pytest.raises(TypeError, match="mapping"):
        engine.load_state_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epoch_length"):
        engine.load_state_dict({"iteration": 3, "max_epochs": 2})
    with pytest.raises(ValueError, match="not both"):
        engine.load_state_dict({"iteration": 3, "epoch": 1, "max_epochs": 2, "epoch_length": 3})
    with pytest.raises(ValueError, match="exactly one of 'max_epochs' and 'max_iters'"):
        engine.load_state_dict({"iteration": 3, "epoch_length": 3})
    with pytest.raises(ValueError, match="below the state's epoch"):
        engine.load_state_dict({"epoch": 3, "epoch_length": 3, "max_epochs": 2})
    engine.state_dict_user_keys.append("alpha")
    with pytest.raises(ValueError, match="alpha"):
        engine.load_state_dict({"epoch": 1, "epoch_length": 3, "max_epochs": 2})
    engine.load_state_dict({"epoch": 1, "epoch_length": 3, "max_iters": 20, "alpha": 1})
    assert dict(engine.state_dict()) == {"epoch_length": 3, "iteration": 3, "max_iters": 20, "alpha": 1}


# ---------------------------------------------------------------- bad run() arguments


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data": 5}, TypeError, "data must be an iterable"),
        (
            {"data": DataLoader},
            TypeError,
            r"got the class torch\.utils\.data\.dataloader\.DataLoader itself: pass an instance",
        ),
        ({"data": int}, TypeError, "data must be an iterable or an async iterable, got the class int"),
        ({"data": [1], "max_epochs": 0}, ValueError, "max_epochs must be a positive integer"),
        ({"data": [1], "max_epochs": -3}, ValueError, "max_epochs must be a positive integer"),
        ({"data": [1], "max_epochs": 2.0}, TypeError, "max_epochs must be a positive integer"),
        ({"data": [1], "max_epochs": True}, TypeError, "max_epochs must be a positive integer"),
        ({"data": [1], "epoch_length": 0}, ValueError, "epoch_length must be a positive integer"),
        ({"data": [1], "max_iters": 0}, ValueError, "max_iters must be a positive integer"),
        ({"data": [1], "max_epochs": 2, "max_iters": 3}, ValueError, "mutually exclusive"),
        ({"data": []}, ValueError, "data is empty"),
        ({"data": iter([1, 2])}, ValueError, "has no length: pass epoch_length"),
        ({"data": None}, ValueError, "epoch_length is required when data is None"),
    ],
)
async def test_bad_run_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    engine = Engine(noop)
    with pytest.raises(error, match=match):
        await engine.run(**kwargs)
    assert engine.state.iteration == 0  # nothing ran


async def test_resume_arguments_are_checked() -> None:
    engine = Engine(noop)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.interrupt())
    await engine.run([1, 2, 3], max_epochs=3)
    with pytest.raises(ValueError, match="differs from the resumed state"):
        await engine.run([1, 2, 3], epoch_length=2)
    with pytest.raises(ValueError, match="resuming a run bounded by max_epochs"):
        await engine.run([1, 2, 3], max_iters=5)
    state = await engine.run([1, 2, 3])
    assert state.iteration == 9


async def test_run_while_running_is_refused() -> None:
    engine = Engine(noop)
    errors: list[BaseException] = []

    async def reenter(engine: Engine) -> None:
        try:
            await engine.run([1])
        except RuntimeError as exc:
            errors.append(exc)

    engine.add_event_handler(Events.STARTED, reenter)
    state = await engine.run([1, 2])
    assert state.iteration == 2
    assert len(errors) == 1
    assert "already running" in str(errors[0])


# ---------------------------------------------------------------- exceptions, termination, tasks


async def test_errors_propagate_as_the_original_exception_not_a_group() -> None:
    class Boom(Exception):
        pass

    async def step(engine: Engine, batch: int) -> None:
        await anyio.lowlevel.checkpoint()
        raise Boom("in step")

    with pytest.raises(Boom, match="in step") as info:
        await Engine(step).run([1])
    assert not isinstance(info.value, BaseExceptionGroup)

    engine = Engine(noop)

    async def bad_handler() -> None:
        raise Boom("in handler")

    engine.add_event_handler(Events.EPOCH_COMPLETED, bad_handler)
    with pytest.raises(Boom, match="in handler"):
        await engine.run([1])
    # The failed run can be started again: the engine is not left "running".
    engine.remove_event_handler(bad_handler, Events.EPOCH_COMPLETED)
    assert (await engine.run([1])).iteration == 1


async def test_terminate_and_interrupt_from_another_task() -> None:
    started = anyio.Event()
    proceed = anyio.Event()

    async def step(engine: Engine, batch: int) -> None:
        if engine.state.iteration == 3:
            started.set()
            await proceed.wait()

    engine = Engine(step)
    trace: list[tuple[str, int, int]] = []
    record_events(engine, trace, [Events.TERMINATE, Events.EPOCH_COMPLETED, Events.COMPLETED])
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run, range(100))
        await started.wait()
        engine.terminate()
        proceed.set()
    assert engine.state.iteration == 3
    assert trace == [("TERMINATE", 1, 3), ("COMPLETED", 1, 3)]


async def test_evaluator_runs_inside_a_trainer_handler() -> None:
    evaluator = Engine(lambda e, b: b * 2)
    results: list[tuple[int, Any]] = []

    @evaluator.on(Events.COMPLETED)
    def collect(engine: Engine) -> None:
        engine.state.metrics["last"] = engine.state.output

    trainer = Engine(noop)

    @trainer.on(Events.EPOCH_COMPLETED(every=2))
    async def evaluate(engine: Engine) -> None:
        state = await evaluator.run([1, 2, 3])
        results.append((engine.state.epoch, state.metrics["last"]))

    await trainer.run([0, 1], max_epochs=4)
    assert results == [(2, 6), (4, 6)]


async def test_cancellation_stops_the_run_without_exception_raised() -> None:
    fired: list[Any] = []

    async def step(engine: Engine, batch: int) -> None:
        await anyio.lowlevel.checkpoint()

    engine = Engine(step)
    engine.add_event_handler(Events.EXCEPTION_RAISED, lambda e, exc: fired.append(exc))
    with anyio.CancelScope() as scope:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda: scope.cancel())
        await engine.run(range(10))
    assert scope.cancelled_caught
    assert fired == []
    # Stopped at the next await point, in iteration 4's step; the state rewinds to the last completed one.
    assert engine.state.iteration == 3


def test_interrupted_run_resumes_in_a_new_event_loop_even_of_another_backend() -> None:
    # Scripts call asyncio.run(engine.run(...)) once per call; a paused run must survive its loop's shutdown.
    import asyncio

    import trio

    seen: list[int] = []

    def step(engine: Engine, batch: int) -> None:
        seen.append(batch)
        if engine.state.iteration in (2, 5):
            engine.interrupt()

    engine = Engine(step)
    trace: list[tuple[str, int, int]] = []
    record_events(engine, trace, [Events.INTERRUPT, Events.STARTED, Events.COMPLETED])
    assert asyncio.run(engine.run([0, 1, 2], max_epochs=3)).iteration == 2
    assert trio.run(engine.run).iteration == 5
    assert asyncio.run(engine.run()).iteration == 9
    assert seen == [0, 1, 2] * 3
    assert trace == [("STARTED", 0, 0), ("INTERRUPT", 1, 2), ("INTERRUPT", 2, 5), ("COMPLETED", 3, 9)]


def test_async_generator_data_resumes_across_event_loops_and_backends() -> None:
    import asyncio

    import trio

    for prefetch in (0, 3):
        seen: list[int] = []

        class Data:
            def __aiter__(self) -> AsyncIterator[int]:
                async def batches() -> AsyncIterator[int]:
                    for i in range(10):
                        yield i

                return batches()

        engine = Engine(lambda e, b, seen=seen: seen.append(b))
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=4), lambda e: e.interrupt())
        asyncio.run(engine.run(Data(), max_epochs=2, epoch_length=10, prefetch=prefetch))
        trio.run(engine.run)  # asyncio.run closed its loop: the engine, not the loop, owns the generator
        assert seen == list(range(10)) * 2, prefetch


async def test_sync_callables_returning_coroutines_are_awaited() -> None:
    evaluator = Engine(lambda e, b: b)
    trainer = Engine(lambda e, b: evaluator.run([b]))  # pytorch-ignite idioms: run() returns a coroutine here
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: evaluator.run([1, 2, 3]))
    state = await trainer.run([5])
    assert state.output is evaluator.state  # the step's coroutine was awaited, not stored
    assert evaluator.state.iteration == 3


def test_has_and_remove_accept_events_lists_and_refuse_non_events() -> None:
    def handler() -> None: ...

    engine = Engine(noop)
    events = Events.STARTED | Events.COMPLETED
    engine.add_event_handler(events, handler)
    assert engine.has_event_handler(handler, events)
    engine.remove_event_handler(handler, events)
    assert not engine.has_event_handler(handler)
    with pytest.raises(TypeError, match="needs an event"):
        engine.has_event_handler(handler, 3)
    with pytest.raises(TypeError, match="needs an event"):
        engine.remove_event_handler(handler, object())
