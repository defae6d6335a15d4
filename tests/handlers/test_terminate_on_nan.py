from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import TerminateOnNan as IgniteTerminateOnNan

from ignite_async import Engine, Events
from ignite_async.handlers import TerminateOnNan

OUTPUTS: list[Any] = [
    1.0,
    math.nan,
    math.inf,
    -math.inf,
    torch.tensor([1.0, 2.0]),
    torch.tensor([1.0, math.nan]),
    (1.0, torch.tensor(math.inf)),
    [torch.ones(2), 3],
    {"loss": torch.tensor(0.5), "acc": 1.0},
    {"loss": torch.tensor(math.nan)},
    "not a number",
]


@pytest.mark.anyio
@pytest.mark.parametrize("index", range(len(OUTPUTS)))
async def test_same_decision_as_ignite(index: int) -> None:
    bad = OUTPUTS[index]

    def step(engine: Any, batch: int) -> Any:
        return bad if batch == 2 else 0.0

    ref = IgniteEngine(step)
    ref.add_event_handler(IgniteEvents.ITERATION_COMPLETED, IgniteTerminateOnNan())
    ref.run(range(5))
    ours = Engine(step)
    ours.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())
    await ours.run(range(5))
    assert ours.state.iteration == ref.state.iteration


@pytest.mark.anyio
async def test_outputs_without_numbers_are_left_alone() -> None:
    # pytorch-ignite's TerminateOnNan raises TypeError on a None output; a step that returns nothing is fine here.
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())
    assert (await engine.run(range(3))).iteration == 3


@pytest.mark.anyio
async def test_output_transform() -> None:
    engine = Engine(lambda e, b: {"loss": math.nan if b == 1 else 0.0, "other": math.nan})
    engine.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan(lambda out: out["loss"]))
    assert (await engine.run(range(5))).iteration == 2
    with pytest.raises(TypeError, match="output_transform must be callable"):
        TerminateOnNan(3)  # type: ignore[arg-type]
