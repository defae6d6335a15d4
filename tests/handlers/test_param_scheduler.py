"""Parameter schedulers: every value at every event equals pytorch-ignite 0.5.5's for the same arguments."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import ignite.handlers as ig
import pytest
import torch
from torch.optim import lr_scheduler as torch_schedulers

import ignite_async.handlers as ours
from ignite_async import Engine, Events

Build = Callable[[Any, torch.optim.Optimizer], Any]


def optimizer(groups: int = 1) -> torch.optim.Optimizer:
    params = [{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1 * (i + 1)} for i in range(groups)]
    return torch.optim.SGD(params, lr=0.1)


def values(lib: Any, build: Build, events: int, groups: int = 1) -> list[list[float]]:
    opt = optimizer(groups)
    scheduler = build(lib, opt)
    out = []
    for _ in range(events):
        scheduler(None)
        out.append([g["lr"] for g in opt.param_groups])
    return out


def same_values(build: Build, events: int = 40, groups: int = 1) -> None:
    theirs = values(ig, build, events, groups)
    mine = values(ours, build, events, groups)
    assert len(mine) == len(theirs)
    flat = [v for row in theirs for v in row]
    assert [v for row in mine for v in row] == pytest.approx(flat, rel=1e-12, abs=1e-15)


def random_cyclical(rng: random.Random) -> Build:
    kind = rng.choice(["LinearCyclicalScheduler", "CosineAnnealingScheduler"])
    kwargs: dict[str, Any] = {
        "param_name": "lr",
        "start_value": rng.choice([1.0, 0.5, 0.1]),
        "end_value": rng.choice([0.0, 0.01, 2.0]),
        "cycle_size": rng.randint(2, 9),
        "cycle_mult": rng.choice([1.0, 1.5, 2.0]),
        "start_value_mult": rng.choice([1.0, 0.5]),
        "end_value_mult": rng.choice([1.0, 0.9]),
    }
    if kind == "LinearCyclicalScheduler" and rng.random() < 0.5:
        kwargs["monotonic"] = True
        kwargs["warmup_duration"] = rng.randint(1, 4)
    elif kind == "CosineAnnealingScheduler" and rng.random() < 0.3:
        kwargs["warmup_duration"] = rng.randint(1, 4)
    return lambda lib, opt: getattr(lib, kind)(opt, **kwargs)


@pytest.mark.parametrize("seed", range(30))
def test_cyclical_schedulers(seed: int) -> None:
    same_values(random_cyclical(random.Random(seed)), events=60)


@pytest.mark.parametrize("seed", range(15))
def test_piecewise_linear(seed: int) -> None:
    rng = random.Random(seed)
    milestones = sorted(rng.sample(range(0, 30), rng.randint(1, 5)))
    pairs = [(m, rng.choice([0.0, 0.1, 1.0, 0.5])) for m in milestones]
    same_values(lambda lib, opt: lib.PiecewiseLinear(opt, "lr", milestones_values=pairs))


TORCH_SCHEDULERS: list[Callable[[torch.optim.Optimizer], Any]] = [
    lambda opt: torch_schedulers.StepLR(opt, step_size=3, gamma=0.5),
    lambda opt: torch_schedulers.ExponentialLR(opt, gamma=0.9),
    lambda opt: torch_schedulers.MultiStepLR(opt, milestones=[2, 5, 9], gamma=0.3),
    lambda opt: torch_schedulers.LambdaLR(opt, lr_lambda=lambda e: 1.0 / (e + 1)),
    lambda opt: torch_schedulers.CosineAnnealingLR(opt, T_max=7, eta_min=0.001),
    lambda opt: torch_schedulers.CosineAnnealingWarmRestarts(opt, T_0=4, T_mult=2, eta_min=0.001),
]


@pytest.mark.parametrize("index", range(len(TORCH_SCHEDULERS)))
@pytest.mark.parametrize("groups", [1, 2])
def test_lr_scheduler_wrapping_torch_schedulers(index: int, groups: int) -> None:
    make = TORCH_SCHEDULERS[index]
    same_values(lambda lib, opt: lib.LRScheduler(make(opt)), groups=groups)


@pytest.mark.parametrize("index", range(len(TORCH_SCHEDULERS)))
@pytest.mark.parametrize("end", [None, 0.2])
@pytest.mark.parametrize("groups", [1, 2])
def test_warmup_then_a_torch_scheduler(index: int, end: float | None, groups: int) -> None:
    make = TORCH_SCHEDULERS[index]
    same_values(
        lambda lib, opt: lib.create_lr_scheduler_with_warmup(
            make(opt), warmup_start_value=0.0, warmup_duration=5, warmup_end_value=end
        ),
        groups=groups,
    )


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("duration", [2, 3, 6])
def test_warmup_then_a_param_scheduler(seed: int, duration: int) -> None:
    cyclical = random_cyclical(random.Random(seed))
    end = random.Random(seed).choice([None, 1.0, 0.5])
    same_values(
        lambda lib, opt: lib.create_lr_scheduler_with_warmup(
            cyclical(lib, opt), warmup_start_value=0.0, warmup_duration=duration, warmup_end_value=end
        )
    )


def test_concat_scheduler() -> None:
    def build(lib: Any, opt: torch.optim.Optimizer) -> Any:
        first = lib.LinearCyclicalScheduler(opt, "lr", start_value=0.1, end_value=0.5, cycle_size=10)
        second = lib.CosineAnnealingScheduler(opt, "lr", start_value=0.5, end_value=0.01, cycle_size=20)
        return lib.ConcatScheduler([first, second], durations=[10])

    same_values(build, events=50)


@pytest.mark.parametrize("seed", range(8))
def test_state_dict_resumes_the_schedule(seed: int) -> None:
    build = random_cyclical(random.Random(seed))
    expected = values(ours, build, 40)
    opt = optimizer()
    first = build(ours, opt)
    for _ in range(17):
        first(None)
    state = first.state_dict()
    opt2 = optimizer()
    resumed = build(ours, opt2)
    resumed.load_state_dict(state)
    rest = []
    for _ in range(23):
        resumed(None)
        rest.append([g["lr"] for g in opt2.param_groups])
    assert rest == expected[17:]


@pytest.mark.anyio
async def test_attached_to_an_engine_like_ignite() -> None:
    def trace(lib_engine: Any, lib_events: Any, lib: Any) -> list[float]:
        opt = optimizer()
        engine = lib_engine(lambda e, b: None)
        scheduler = lib.CosineAnnealingScheduler(
            opt, "lr", start_value=1.0, end_value=0.1, cycle_size=7, save_history=True
        )
        engine.add_event_handler(lib_events.ITERATION_STARTED, scheduler)
        seen: list[float] = []
        engine.add_event_handler(lib_events.ITERATION_COMPLETED, lambda: seen.append(opt.param_groups[0]["lr"]))
        return seen, engine  # type: ignore[return-value]

    from ignite.engine import Engine as IgniteEngine
    from ignite.engine import Events as IgniteEvents

    theirs, ref = trace(IgniteEngine, IgniteEvents, ig)
    ref.run(range(5), max_epochs=3)
    mine, engine = trace(Engine, Events, ours)
    await engine.run(range(5), max_epochs=3)
    assert mine == theirs
    assert engine.state.param_history["lr"] == ref.state.param_history["lr"]


def test_bad_arguments() -> None:
    opt = optimizer()
    with pytest.raises(ValueError, match="cycle_size must be an integer >= 2"):
        ours.LinearCyclicalScheduler(opt, "lr", 1.0, 0.0, cycle_size=1)
    with pytest.raises(ValueError, match="needs monotonic=True"):
        ours.LinearCyclicalScheduler(opt, "lr", 1.0, 0.0, cycle_size=4, warmup_duration=2)
    with pytest.raises(ValueError, match="must not decrease"):
        ours.PiecewiseLinear(opt, "lr", [(5, 1.0), (2, 0.0)])
    with pytest.raises(TypeError, match="must be an integer"):
        ours.PiecewiseLinear(opt, "lr", [(1.5, 1.0)])
    with pytest.raises(TypeError, match="param_groups"):
        ours.CosineAnnealingScheduler(object(), "lr", 1.0, 0.0, cycle_size=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 events"):
        ours.create_lr_scheduler_with_warmup(torch_schedulers.StepLR(opt, 2), 0.0, warmup_duration=1)
    with pytest.raises(TypeError, match=r"torch\.optim\.lr_scheduler"):
        ours.LRScheduler(object())  # type: ignore[arg-type]
