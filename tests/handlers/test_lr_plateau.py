"""ReduceLROnPlateauScheduler: on a scripted metric sequence, the learning rates equal pytorch-ignite 0.5.5's."""

from __future__ import annotations

import random
from typing import Any

import ignite.handlers as ig
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

import ignite_async.handlers as ours
from ignite_async import Engine, Events


def optimizer(groups: int = 1) -> torch.optim.Optimizer:
    params = [{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1 * (i + 1)} for i in range(groups)]
    return torch.optim.SGD(params, lr=0.1)


def scripted(seed: int, n: int = 30) -> list[float]:
    rng = random.Random(seed)
    value, out = 10.0, []
    for _ in range(n):
        value += rng.choice([-1.0, -0.01, 0.0, 0.5, 2.0])
        out.append(value)
    return out


def kwargs_for(seed: int) -> dict[str, Any]:
    rng = random.Random(1000 + seed)
    return {
        "mode": rng.choice(["min", "max"]),
        "factor": rng.choice([0.5, 0.1]),
        "patience": rng.randint(0, 3),
        "threshold": rng.choice([1e-4, 0.1, 1.0]),
        "threshold_mode": rng.choice(["rel", "abs"]),
        "cooldown": rng.randint(0, 2),
    }


def lrs_by_hand(lib: Any, metric_values: list[float], groups: int, **kwargs: Any) -> list[list[float]]:
    opt = optimizer(groups)
    scheduler = lib.ReduceLROnPlateauScheduler(opt, "loss", **kwargs)
    engine = (IgniteEngine if lib is ig else Engine)(lambda e, b: None)
    out = []
    for value in metric_values:
        engine.state.metrics["loss"] = value
        scheduler(engine)
        out.append([g["lr"] for g in opt.param_groups])
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("groups", [1, 2])
def test_learning_rates_equal_ignites(seed: int, groups: int) -> None:
    metric_values = scripted(seed)
    theirs = lrs_by_hand(ig, metric_values, groups, **kwargs_for(seed))
    mine = lrs_by_hand(ours, metric_values, groups, **kwargs_for(seed))
    assert mine == theirs


def test_the_scripts_reduce_the_lr() -> None:
    reduced = [lrs_by_hand(ours, scripted(s), 1, **kwargs_for(s))[-1] != [0.1] for s in range(12)]
    assert sum(reduced) >= 6


@pytest.mark.parametrize("seed", range(6))
def test_one_param_group(seed: int) -> None:
    metric_values = scripted(seed)
    theirs = lrs_by_hand(ig, metric_values, 2, param_group_index=1, **kwargs_for(seed))
    mine = lrs_by_hand(ours, metric_values, 2, param_group_index=1, **kwargs_for(seed))
    assert mine == theirs
    assert all(row[0] == 0.1 for row in mine)


def test_min_lr_with_group_zero_equals_ignite() -> None:
    metric_values = [1.0] * 20
    kwargs: dict[str, Any] = {"factor": 0.5, "patience": 0, "param_group_index": 0, "min_lr": 0.02}
    mine = lrs_by_hand(ours, metric_values, 2, **kwargs)
    assert mine == lrs_by_hand(ig, metric_values, 2, **kwargs)
    assert mine[-1] == [0.02, 0.2]


def test_min_lr_is_honoured() -> None:
    # pytorch-ignite 0.5.5 replaces min_lr by 0 here; ours keeps it.
    rows = ours.ReduceLROnPlateauScheduler.simulate_values(
        10, [1.0] * 10, init_lr=1.0, factor=0.5, patience=0, min_lr=0.1
    )
    assert rows[-1] == [9, 0.1]
    opt = optimizer(2)
    scheduler = ours.ReduceLROnPlateauScheduler(opt, "loss", factor=0.5, patience=0, param_group_index=1, min_lr=0.15)
    engine = Engine(lambda e, b: None)
    for _ in range(5):
        engine.state.metrics["loss"] = 1.0
        scheduler(engine)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.15]


@pytest.mark.parametrize("seed", range(6))
def test_simulate_values_equal_ignites(seed: int) -> None:
    metric_values = scripted(seed, 25)
    theirs = ig.ReduceLROnPlateauScheduler.simulate_values(25, metric_values, init_lr=0.3, **kwargs_for(seed))
    mine = ours.ReduceLROnPlateauScheduler.simulate_values(25, metric_values, init_lr=0.3, **kwargs_for(seed))
    assert mine == theirs


@pytest.mark.anyio
async def test_on_an_evaluator_with_history_in_the_trainer() -> None:
    """0.5.5's documented example: an evaluator run per trainer iteration, a scripted loss, history in the trainer."""

    def build(lib_engine: Any, lib: Any, completed: Any) -> tuple[Any, Any, list[Any]]:
        trainer, evaluator = lib_engine(lambda e, b: None), lib_engine(lambda e, b: None)
        values = iter([10, 5, 3, 4, 4, 4, 5, 1])
        scheduler = lib.ReduceLROnPlateauScheduler(
            optimizer(), "loss", save_history=True, mode="min", factor=0.5, patience=3, threshold=0.1, trainer=trainer
        )
        evaluator.add_event_handler(completed.COMPLETED, lambda e: e.state.metrics.__setitem__("loss", next(values)))
        evaluator.add_event_handler(completed.COMPLETED, scheduler)
        return trainer, evaluator, []

    trainer_ig, evaluator_ig, _ = build(IgniteEngine, ig, IgniteEvents)
    trainer_ig.add_event_handler(IgniteEvents.ITERATION_COMPLETED, lambda: evaluator_ig.run([0.0]))
    trainer_ig.run([0.0] * 8)

    trainer, evaluator, _ = build(Engine, ours, Events)

    @trainer.on(Events.ITERATION_COMPLETED)
    async def evaluate() -> None:
        await evaluator.run([0.0])

    await trainer.run([0.0] * 8)
    assert trainer.state.param_history["lr"] == trainer_ig.state.param_history["lr"]
    assert trainer.state.param_history["lr"][-1] == [0.05]


@pytest.mark.anyio
async def test_a_missing_metric_is_named_at_the_first_firing() -> None:
    evaluator = Engine(lambda e, b: None)
    ours.ReduceLROnPlateauScheduler(optimizer(), "accuracy").attach(evaluator)
    with pytest.raises(ValueError, match=r"metric 'accuracy' is not in engine\.state\.metrics"):
        await evaluator.run([0])


def test_state_dict_resumes() -> None:
    metric_values = scripted(3)
    expected = lrs_by_hand(ours, metric_values, 1, patience=1, factor=0.5)
    opt = optimizer()
    engine = Engine(lambda e, b: None)
    first = ours.ReduceLROnPlateauScheduler(opt, "loss", patience=1, factor=0.5)
    for value in metric_values[:13]:
        engine.state.metrics["loss"] = value
        first(engine)
    state, lr = first.state_dict(), opt.param_groups[0]["lr"]
    opt2 = optimizer()
    opt2.param_groups[0]["lr"] = lr
    resumed = ours.ReduceLROnPlateauScheduler(opt2, "loss", patience=1, factor=0.5)
    resumed.load_state_dict(state)
    rest = []
    for value in metric_values[13:]:
        engine.state.metrics["loss"] = value
        resumed(engine)
        rest.append([opt2.param_groups[0]["lr"]])
    assert rest == expected[13:]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="min_lr must be a float"):
        ours.ReduceLROnPlateauScheduler(optimizer(2), "loss", param_group_index=0, min_lr=1)
    with pytest.raises(ValueError, match="metric_values must hold num_events=3"):
        ours.ReduceLROnPlateauScheduler.simulate_values(3, [1.0], init_lr=0.1)
    with pytest.raises(TypeError, match="metric_name must be a string"):
        ours.ReduceLROnPlateauScheduler(optimizer(), 3)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="save_history"):
        ours.ReduceLROnPlateauScheduler(optimizer(), "loss", verbose=True)
