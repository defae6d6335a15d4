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


# simulate_values / plot_values / output_simulated_values: the rows equal pytorch-ignite 0.5.5's.


def both(make: Callable[[Any], list[list[Any]]]) -> None:
    theirs, mine = make(ig), make(ours)
    assert [len(r) for r in mine] == [len(r) for r in theirs]
    assert [r[0] for r in mine] == [r[0] for r in theirs]
    flat = [float(v) for r in theirs for v in r[1:]]
    assert [float(v) for r in mine for v in r[1:]] == pytest.approx(flat, rel=1e-12, abs=1e-15)


def cyclical_kwargs(seed: int) -> tuple[str, dict[str, Any]]:
    rng = random.Random(seed)
    kind = rng.choice(["LinearCyclicalScheduler", "CosineAnnealingScheduler"])
    kwargs: dict[str, Any] = {
        "param_name": "lr",
        "start_value": rng.choice([1.0, 0.5]),
        "end_value": rng.choice([0.0, 2.0]),
        "cycle_size": rng.randint(2, 9),
        "cycle_mult": rng.choice([1.0, 2.0]),
        "end_value_mult": rng.choice([1.0, 0.9]),
    }
    if kind == "LinearCyclicalScheduler" and rng.random() < 0.5:
        kwargs.update(monotonic=True, warmup_duration=rng.randint(1, 4))
    return kind, kwargs


@pytest.mark.parametrize("seed", range(10))
def test_simulate_values_of_cyclical_schedulers(seed: int) -> None:
    kind, kwargs = cyclical_kwargs(seed)
    both(lambda lib: getattr(lib, kind).simulate_values(num_events=50, save_history=True, **kwargs))


def test_simulate_values_of_piecewise_linear() -> None:
    pairs = [(2, 0.0), (5, 1.0), (9, 0.25)]
    both(lambda lib: lib.PiecewiseLinear.simulate_values(15, param_name="lr", milestones_values=pairs))


def test_simulate_values_ignores_a_given_optimizer() -> None:
    opt = optimizer()
    rows = ours.PiecewiseLinear.simulate_values(3, optimizer=opt, param_name="lr", milestones_values=[(0, 1.0)])
    assert rows == [[0, 1.0], [1, 1.0], [2, 1.0]]
    assert opt.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("index", range(len(TORCH_SCHEDULERS)))
@pytest.mark.parametrize("groups", [1, 2])
def test_lr_scheduler_simulate_values_leaves_the_torch_scheduler_as_it_was(index: int, groups: int) -> None:
    make = TORCH_SCHEDULERS[index]

    def simulate(lib: Any) -> list[list[Any]]:
        opt = optimizer(groups)
        torch_scheduler = make(opt)
        rows = lib.LRScheduler.simulate_values(num_events=25, lr_scheduler=torch_scheduler)
        scheduler = lib.LRScheduler(torch_scheduler)  # the schedule from the start: the simulation left no trace
        for i in range(10):
            scheduler(None)
            assert [g["lr"] for g in opt.param_groups] == pytest.approx(rows[i][1:])
        return rows

    both(simulate)


def concat_build(lib: Any, opt: torch.optim.Optimizer) -> tuple[list[Any], list[int]]:
    first = lib.LinearCyclicalScheduler(opt, "lr", start_value=0.1, end_value=0.5, cycle_size=6)
    second = lib.CosineAnnealingScheduler(opt, "lr", start_value=0.5, end_value=0.01, cycle_size=8)
    return [first, second], [5]


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("param_names", [None, ["lr"], ["lr", "momentum"]])
def test_concat_simulate_values(groups: int, param_names: list[str] | None) -> None:
    def simulate(lib: Any) -> list[list[Any]]:
        opt = optimizer(groups)
        schedulers, durations = concat_build(lib, opt)
        before = [dict(g) for g in opt.param_groups]
        rows = lib.ConcatScheduler.simulate_values(30, schedulers, durations, param_names=param_names)
        assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == [
            {k: v for k, v in g.items() if k != "params"} for g in before
        ]
        assert all(s.event_index == 0 for s in schedulers)
        return rows

    both(simulate)


def test_param_group_simulate_values() -> None:
    def simulate(lib: Any) -> list[list[Any]]:
        opt = optimizer(2)
        a = lib.LinearCyclicalScheduler(opt, "lr", 1.0, 0.0, cycle_size=4, param_group_index=0)
        b = lib.PiecewiseLinear(opt, "lr", [(0, 0.0), (6, 1.0)], param_group_index=1)
        rows = lib.ParamGroupScheduler.simulate_values(num_events=12, schedulers=[a, b], names=["a", "b"])
        assert (a.event_index, b.event_index) == (0, 0)
        return rows

    both(simulate)


@pytest.mark.parametrize("index", range(len(TORCH_SCHEDULERS)))
@pytest.mark.parametrize("end", [None, 0.2])
@pytest.mark.parametrize("groups", [1, 2])
def test_warmup_output_simulated_values(index: int, end: float | None, groups: int) -> None:
    make = TORCH_SCHEDULERS[index]

    def simulate(lib: Any) -> list[list[Any]]:
        opt = optimizer(groups)
        out: list[Any] = [None] * 20
        scheduler = lib.create_lr_scheduler_with_warmup(
            make(opt), 0.0, warmup_duration=4, warmup_end_value=end, output_simulated_values=out
        )
        for row in out[:12]:  # the scheduler itself gives the simulated values: the simulation did not move it
            scheduler(None)
            assert [g["lr"] for g in opt.param_groups] == pytest.approx(row[1:])
        return out

    if isinstance(make(optimizer()), torch_schedulers.CosineAnnealingWarmRestarts):
        # pytorch-ignite 0.5.5 fails here (torch.load(weights_only=True) refuses its wrapper class): the
        # simulated values are checked against the scheduler's own.
        assert all(row is not None for row in simulate(ours))
        return
    both(simulate)


@pytest.mark.parametrize("seed", range(4))
def test_warmup_output_simulated_values_with_a_param_scheduler(seed: int) -> None:
    kind, kwargs = cyclical_kwargs(seed)

    def simulate(lib: Any) -> list[list[Any]]:
        out: list[Any] = [None] * 30
        opt = optimizer()
        lib.create_lr_scheduler_with_warmup(
            getattr(lib, kind)(opt, **kwargs), 0.0, warmup_duration=3, output_simulated_values=out
        )
        return out

    both(simulate)


def test_use_legacy_warns_as_ignite() -> None:
    with pytest.warns(UserWarning, match="ITERATION_COMPLETED") as theirs:
        ig.LRScheduler(torch_schedulers.StepLR(optimizer(), step_size=2), use_legacy=True)
    with pytest.warns(UserWarning, match="first lr value") as mine:
        ours.LRScheduler(torch_schedulers.StepLR(optimizer(), step_size=2), use_legacy=True)
    assert len(mine) == len(theirs) == 1
    assert mine[0].filename == __file__  # points at the caller


def test_plot_values_draws_the_simulated_values() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kwargs: dict[str, Any] = {"param_name": "lr", "start_value": 1.0, "end_value": 0.0, "cycle_size": 4}
    plt.figure()
    try:
        lines = ours.LinearCyclicalScheduler.plot_values(num_events=8, **kwargs)
        rows = ours.LinearCyclicalScheduler.simulate_values(8, **kwargs)
        assert len(lines) == 1
        assert list(lines[0].get_xdata()) == [r[0] for r in rows]
        assert list(lines[0].get_ydata()) == [r[1] for r in rows]
        assert lines[0].get_label() == "lr"
    finally:
        plt.close("all")


def test_plot_values_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'ignite-async\[plot\]'"):
        ours.PiecewiseLinear.plot_values(3, param_name="lr", milestones_values=[(0, 1.0)])


def test_simulation_bad_arguments() -> None:
    opt = optimizer()
    with pytest.raises(TypeError, match="output_simulated_values must be a list"):
        ours.create_lr_scheduler_with_warmup(
            torch_schedulers.StepLR(opt, 2),
            0.0,
            warmup_duration=3,
            output_simulated_values=(None,),  # type: ignore[arg-type]
        )
    schedulers, durations = concat_build(ours, opt)
    with pytest.raises(TypeError, match="param_names must be a list"):
        ours.ConcatScheduler.simulate_values(3, schedulers, durations, param_names="lr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="param_names must hold strings"):
        ours.ConcatScheduler.simulate_values(3, schedulers, durations, param_names=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"torch\.optim\.lr_scheduler"):
        ours.LRScheduler.simulate_values(3, lr_scheduler=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_events must be a non-negative integer"):
        ours.PiecewiseLinear.simulate_values(-1, param_name="lr", milestones_values=[(0, 1.0)])


# BatchSizeScheduler


@pytest.mark.anyio
async def test_batch_size_scheduler_on_epochs_like_ignite() -> None:
    from ignite.engine import Engine as IgniteEngine
    from torch.utils.data import DataLoader

    def build(lib_engine: Any, lib: Any) -> tuple[Any, Any, list[int]]:
        loader = DataLoader(torch.arange(24), batch_size=4)
        sizes: list[int] = []
        engine = lib_engine(lambda e, batch: sizes.append(len(batch)))
        lib.BatchSizeScheduler(loader, scheduler_fn=lambda e: [4, 4, 8, 8][e], save_history=True).attach(engine)
        return engine, loader, sizes

    ref, ref_loader, theirs = build(IgniteEngine, ig)
    ref.run(ref_loader, max_epochs=4)
    engine, loader, mine = build(Engine, ours)
    await engine.run(loader, max_epochs=4)
    assert mine == theirs
    assert 8 in mine
    assert engine.state.param_history["batch_size"] == ref.state.param_history["batch_size"] == [4, 4, 8, 8]


def test_batch_size_simulate_values_and_bad_arguments() -> None:
    from torch.utils.data import DataLoader

    fn = lambda e: 2 ** (e + 1)  # noqa: E731
    assert ours.BatchSizeScheduler.simulate_values(5, scheduler_fn=fn) == ig.BatchSizeScheduler.simulate_values(
        5, scheduler_fn=fn
    )
    with pytest.raises(ValueError, match="needs scheduler_fn"):
        ours.BatchSizeScheduler.simulate_values(5)
    with pytest.raises(TypeError, match="dataloader must be a torch DataLoader"):
        ours.BatchSizeScheduler([1, 2], scheduler_fn=fn)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="BatchSampler"):
        ours.BatchSizeScheduler(DataLoader(torch.arange(4), batch_size=None), scheduler_fn=fn)
    with pytest.raises(TypeError, match="scheduler_fn must be callable"):
        ours.BatchSizeScheduler(DataLoader(torch.arange(4), batch_size=2), scheduler_fn=3)  # type: ignore[arg-type]
    scheduler = ours.BatchSizeScheduler(DataLoader(torch.arange(4), batch_size=2), scheduler_fn=lambda e: 0)
    with pytest.raises(ValueError, match="positive integer batch size, got 0"):
        scheduler()
