from __future__ import annotations

from typing import Any

import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import EpochOutputStore as IgniteEpochOutputStore

from ignite_async import Engine, Events
from ignite_async.handlers import EpochOutputStore

NAMES = ["EPOCH_STARTED", "ITERATION_COMPLETED", "EPOCH_COMPLETED", "COMPLETED"]


def snapshot(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [snapshot(v) for v in value]
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    return value


def observe(engine: Any, events: Any, store: Any, name: str | None, trace: list[Any]) -> None:
    """After the store's own handlers, record what it holds and what the state holds at each event."""
    for event in events:

        def record(e: Any, event_name: str = event.name) -> None:
            on_state = getattr(e.state, name, "<unset>") if name else "<unset>"
            trace.append(
                (
                    event_name,
                    e.state.epoch,
                    e.state.iteration,
                    snapshot(store.data),
                    snapshot(on_state),
                    on_state is store.data,
                )
            )

        engine.add_event_handler(event, record)


def step(engine: Any, batch: int) -> Any:
    if batch % 3 == 0:
        return {"y_pred": torch.tensor([batch * 0.5]), "y": batch}
    return (torch.tensor([float(batch)]), batch % 2)


TRANSFORMS: list[Any] = [
    None,
    lambda out: out[1] if isinstance(out, tuple) else out["y"],
]


@pytest.mark.anyio
@pytest.mark.parametrize("name", [None, "", "outputs"])
@pytest.mark.parametrize("transform", range(len(TRANSFORMS)))
@pytest.mark.parametrize("terminate_at", [None, 7])
async def test_same_data_and_state_as_ignite(name: str | None, transform: int, terminate_at: int | None) -> None:
    kwargs = {} if TRANSFORMS[transform] is None else {"output_transform": TRANSFORMS[transform]}

    def stop(engine: Any) -> None:
        if engine.state.iteration == terminate_at:
            engine.terminate()

    ref_trace: list[Any] = []
    ref = IgniteEngine(step)
    ref_store = IgniteEpochOutputStore(**kwargs)
    ref_store.attach(ref, name)
    observe(ref, [getattr(IgniteEvents, n) for n in NAMES], ref_store, name, ref_trace)
    ref.add_event_handler(IgniteEvents.ITERATION_COMPLETED, stop)
    ref.run(range(5), max_epochs=3)

    ours_trace: list[Any] = []
    ours = Engine(step)
    store = EpochOutputStore(**kwargs)
    store.attach(ours, name)
    observe(ours, [getattr(Events, n) for n in NAMES], store, name, ours_trace)
    ours.add_event_handler(Events.ITERATION_COMPLETED, stop)
    await ours.run(range(5), max_epochs=3)

    assert ours_trace == ref_trace
    assert snapshot(store.data) == snapshot(ref_store.data)
    assert hasattr(store, "name") == hasattr(ref_store, "name")


@pytest.mark.anyio
async def test_stores_an_evaluators_outputs_for_the_trainer() -> None:
    store = EpochOutputStore()
    evaluator = Engine(lambda e, batch: (batch * 2, batch))
    store.attach(evaluator, "output")
    trainer = Engine(lambda e, batch: None)
    seen: list[Any] = []

    @trainer.on(Events.EPOCH_COMPLETED)
    async def evaluate(engine: Engine) -> None:
        state = await evaluator.run([engine.state.epoch, engine.state.epoch + 10])
        seen.append(state.output)

    await trainer.run(range(2), max_epochs=2)
    assert seen == [[(2, 1), (22, 11)], [(4, 2), (24, 12)]]


def test_methods_work_without_an_engine_run() -> None:
    engine = Engine(lambda e, b: b)
    engine.state.output = 5
    store = EpochOutputStore(lambda x: x + 1)
    store.update(engine)
    store.update(engine)
    assert store.data == [6, 6]
    store.name = "kept"
    store.store(engine)
    assert engine.state.kept == [6, 6]
    store.reset()
    assert store.data == []
    assert engine.state.kept == [6, 6]


def test_an_output_transform_that_is_not_callable_is_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"output_transform must be callable .*got 3"):
        EpochOutputStore(output_transform=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="output_transform must be callable"):
        EpochOutputStore("out")  # type: ignore[arg-type]
    assert EpochOutputStore(str).output_transform is str  # a class is callable
