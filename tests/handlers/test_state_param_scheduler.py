"""State-parameter schedulers: every value at every event equals pytorch-ignite 0.5.5's for the same arguments."""

from __future__ import annotations

import random
import warnings
from typing import Any

import ignite.handlers as ig
import pytest
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

import ignite_async.handlers as ours
from ignite_async import Engine, Events

KINDS = [
    "LambdaStateScheduler",
    "PiecewiseLinearStateScheduler",
    "ExpStateScheduler",
    "StepStateScheduler",
    "MultiStepStateScheduler",
]


def random_case(seed: int) -> tuple[str, dict[str, Any]]:
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    kwargs: dict[str, Any] = {"param_name": "alpha"}
    if kind == "LambdaStateScheduler":
        a, b = rng.random(), rng.randint(1, 5)
        kwargs["lambda_obj"] = lambda i: a * (i % b) + 0.5
    elif kind == "PiecewiseLinearStateScheduler":
        milestones = sorted(rng.sample(range(0, 25), rng.randint(1, 5)))
        kwargs["milestones_values"] = [(m, rng.choice([0.0, 0.3, 1.0, 2.5])) for m in milestones]
    else:
        kwargs.update(initial_value=rng.choice([1.0, 3.0]), gamma=rng.choice([0.5, 0.9, 1.1]))
        if kind == "StepStateScheduler":
            kwargs["step_size"] = rng.randint(1, 6)
        elif kind == "MultiStepStateScheduler":
            kwargs["milestones"] = sorted(rng.sample(range(1, 25), rng.randint(1, 4)))
    return kind, kwargs


@pytest.mark.parametrize("seed", range(25))
def test_simulate_values_equal_ignites(seed: int) -> None:
    kind, kwargs = random_case(seed)
    theirs = getattr(ig, kind).simulate_values(num_events=30, save_history=True, **kwargs)
    mine = getattr(ours, kind).simulate_values(num_events=30, save_history=True, **kwargs)
    assert [r[0] for r in mine] == [r[0] for r in theirs] == list(range(30))
    assert [r[1] for r in mine] == pytest.approx([r[1] for r in theirs], rel=1e-12, abs=1e-15)


def trace(lib_engine: Any, lib_events: Any, lib: Any, kind: str, kwargs: dict[str, Any]) -> tuple[Any, list[Any]]:
    engine = lib_engine(lambda e, b: None)
    getattr(lib, kind)(save_history=True, create_new=True, **kwargs).attach(engine)
    seen: list[Any] = []
    engine.add_event_handler(lib_events.ITERATION_COMPLETED, lambda e: seen.append(e.state.alpha))
    return engine, seen


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(5))
async def test_attached_to_an_engine_like_ignite(seed: int) -> None:
    kind, kwargs = random_case(seed)
    ref, theirs = trace(IgniteEngine, IgniteEvents, ig, kind, kwargs)
    ref.run(range(4), max_epochs=3)
    engine, mine = trace(Engine, Events, ours, kind, kwargs)
    await engine.run(range(4), max_epochs=3)
    assert mine == pytest.approx(theirs)
    assert len(mine) == 12
    assert engine.state.param_history["alpha"] == pytest.approx(ref.state.param_history["alpha"])


@pytest.mark.anyio
async def test_attach_to_another_event() -> None:
    engine = Engine(lambda e, b: None)
    seen: list[float] = []
    ours.ExpStateScheduler(1.0, 0.5, "alpha", create_new=True).attach(engine, Events.EPOCH_COMPLETED)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(e.state.alpha))
    await engine.run(range(3), max_epochs=3)
    assert seen == [0.5, 0.25, 0.125]


def test_attach_warns_and_refuses_like_ignite() -> None:
    for lib, engine in [(ig, IgniteEngine(lambda e, b: None)), (ours, Engine(lambda e, b: None))]:
        with pytest.warns(UserWarning, match="create_new=True"):
            lib.ExpStateScheduler(1.0, 0.5, "alpha").attach(engine)
        assert engine.state.alpha is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lib.ExpStateScheduler(1.0, 0.5, "alpha").attach(engine)  # it exists now: no warning
            lib.ExpStateScheduler(1.0, 0.5, "beta", create_new=True).attach(engine)
        with pytest.raises(ValueError, match="alpha"):
            lib.ExpStateScheduler(1.0, 0.5, "alpha", create_new=True).attach(engine)


def test_state_dict_resumes_the_schedule() -> None:
    kwargs: dict[str, Any] = {"param_name": "alpha", "milestones_values": [(0, 1.0), (5, 0.0), (9, 2.0)]}
    expected = [v for _, v in ours.PiecewiseLinearStateScheduler.simulate_values(15, **kwargs)]
    engine = Engine(lambda e, b: None)
    first = ours.PiecewiseLinearStateScheduler(**kwargs)
    for _ in range(7):
        first(engine)
    resumed = ours.PiecewiseLinearStateScheduler(param_name="alpha", milestones_values=[(0, 5.0)])
    resumed.load_state_dict(first.state_dict())
    rest = []
    for _ in range(8):
        resumed(engine)
        rest.append(engine.state.alpha)
    assert rest == expected[7:]
    assert ig.PiecewiseLinearStateScheduler(**kwargs).state_dict().keys() == first.state_dict().keys()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lambda_obj must be callable"):
        ours.LambdaStateScheduler(3, "alpha")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="milestones_values must be a list"):
        ours.PiecewiseLinearStateScheduler(3, "alpha")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        ours.PiecewiseLinearStateScheduler([], "alpha")
    with pytest.raises(ValueError, match="must not decrease"):
        ours.PiecewiseLinearStateScheduler([(3, 1.0), (1, 0.0)], "alpha")
    with pytest.raises(TypeError, match="a milestone must be an integer"):
        ours.PiecewiseLinearStateScheduler([(0.5, 1.0)], "alpha")  # type: ignore[list-item]
    with pytest.raises(TypeError, match="gamma must be a number"):
        ours.ExpStateScheduler(1.0, "x", "alpha")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        ours.StepStateScheduler(1.0, 0.5, 0, "alpha")
    with pytest.raises(TypeError, match="milestones must be a list of integers"):
        ours.MultiStepStateScheduler(1.0, 0.5, [1.5], "alpha")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="param_name must be an attribute name"):
        ours.ExpStateScheduler(1.0, 0.5, "not a name")
