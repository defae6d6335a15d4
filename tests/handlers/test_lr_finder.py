from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest
import torch
from torch import nn

from ignite_async import Engine, Events
from ignite_async.handlers import FastaiLRFinder

pytestmark = pytest.mark.anyio


def _setup(groups: bool) -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    params: Any = model.parameters()
    if groups:
        params = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.02}]
    optimizer = torch.optim.SGD(params, lr=0.01)
    data = [(torch.randn(8, 3), torch.randn(8, 1)) for _ in range(10)]
    return model, optimizer, data


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, used: list[list[float]]) -> Any:
    def step(engine: Any, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        used.append([group["lr"] for group in optimizer.param_groups])
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(batch[0]), batch[1])
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _reference(
    groups: bool, max_epochs: int, **kwargs: Any
) -> tuple[dict[str, list[Any]], list[Any], list[str], Any, list[float]]:
    """pytorch-ignite's results, learning rates used, warnings, ``lr_suggestion()`` and the learning rates that
    ``apply_suggested_lr`` sets."""
    import ignite.engine
    import ignite.handlers

    model, optimizer, data = _setup(groups)
    used: list[list[float]] = []
    trainer = ignite.engine.Engine(_step(model, optimizer, used))
    finder = ignite.handlers.FastaiLRFinder()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with finder.attach(trainer, {"model": model, "optimizer": optimizer}, **kwargs) as trainer_with_lr_finder:
            trainer_with_lr_finder.run(data, max_epochs=max_epochs)
    suggestion = finder.lr_suggestion()
    finder.apply_suggested_lr(optimizer)
    applied = [group["lr"] for group in optimizer.param_groups]
    return finder.get_results(), used, [str(w.message) for w in warned], suggestion, applied


def _flat(values: list[Any]) -> list[float]:
    return [x for v in values for x in (v if isinstance(v, list) else [v])]


CASES = [
    pytest.param(False, 1, {}, id="exp-defaults"),
    pytest.param(False, 5, {"start_lr": 1e-3, "end_lr": 1e4}, id="exp-diverges"),
    pytest.param(False, 1, {"num_iter": 6, "end_lr": 1.0}, id="exp-no-divergence"),
    pytest.param(True, 1, {"num_iter": 6, "end_lr": 1.0, "start_lr": [0.001, 0.002]}, id="exp-two-groups"),
    pytest.param(False, 1, {"step_mode": "linear", "num_iter": 15, "end_lr": 0.5}, id="linear-longer-run"),
    pytest.param(True, 2, {"step_mode": "linear", "end_lr": [0.5, 0.6], "smooth_f": 0.0}, id="linear-two-groups"),
]


@pytest.mark.parametrize(("groups", "max_epochs", "kwargs"), CASES)
async def test_lr_and_loss_history_are_pytorch_ignite_s(groups: bool, max_epochs: int, kwargs: dict[str, Any]) -> None:
    expected, expected_used, expected_warnings, expected_suggestion, expected_applied = _reference(
        groups, max_epochs, **kwargs
    )
    model, optimizer, data = _setup(groups)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    initial_lrs = [group["lr"] for group in optimizer.param_groups]
    used: list[list[float]] = []
    trainer = Engine(_step(model, optimizer, used))
    finder = FastaiLRFinder()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        with finder.attach(
            trainer, to_save={"model": model, "optimizer": optimizer}, **kwargs
        ) as trainer_with_lr_finder:
            assert trainer_with_lr_finder is trainer
            await trainer_with_lr_finder.run(data, max_epochs=max_epochs)
    results = finder.get_results()
    assert _flat(results["lr"]) == pytest.approx(_flat(expected["lr"]), rel=1e-12)
    assert [type(lr) for lr in results["lr"]] == [type(lr) for lr in expected["lr"]]  # a list per step for groups
    assert results["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert _flat(used) == pytest.approx(_flat(expected_used), rel=1e-12)  # the learning rate each iteration ran with
    assert [str(w.message) for w in warned] == expected_warnings
    # Restored: the model, the optimizer and the trainer are as before.
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())
    assert [group["lr"] for group in optimizer.param_groups] == initial_lrs
    assert trainer.state.iteration == 0
    assert not any(trainer._event_handlers.values())
    # The suggestion (a list per group with groups) and what apply_suggested_lr sets are pytorch-ignite's.
    suggestion = finder.lr_suggestion()
    assert type(suggestion) is type(expected_suggestion)
    assert _flat([suggestion]) == pytest.approx(_flat([expected_suggestion]), rel=1e-12)
    finder.apply_suggested_lr(optimizer)
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx(expected_applied, rel=1e-12)


async def test_divergence_stops_the_run_and_the_suggestion_is_on_the_falling_part() -> None:
    model, optimizer, data = _setup(False)
    trainer = Engine(_step(model, optimizer, []))
    finder = FastaiLRFinder()
    with finder.attach(trainer, {"model": model, "optimizer": optimizer}, start_lr=1e-4, end_lr=1e4) as t:
        await t.run(data * 5)
    lrs, losses = finder.get_results()["lr"], finder.get_results()["loss"]
    assert len(lrs) < 50  # stopped at divergence
    assert losses[-1] > 5.0 * min(losses)
    suggestion = finder.lr_suggestion()
    assert lrs.index(suggestion) <= losses.index(min(losses))
    finder.apply_suggested_lr(optimizer)
    assert optimizer.param_groups[0]["lr"] == suggestion
    # After the with block the trainer trains normally, from the start, without the finder.
    state = await trainer.run(data, max_epochs=1)
    assert state.iteration == 10
    assert len(finder.get_results()["lr"]) == len(lrs)


async def test_restored_when_the_body_raises() -> None:
    model, optimizer, data = _setup(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Engine(_step(model, optimizer, []))
    finder = FastaiLRFinder()

    async def body_that_raises() -> None:
        with finder.attach(trainer, {"model": model, "optimizer": optimizer}, num_iter=3) as t:
            with pytest.warns(UserWarning, match="without loss diverging"):
                await t.run(data, max_epochs=1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await body_that_raises()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert not any(trainer._event_handlers.values())


async def test_a_loss_that_is_not_a_number_names_output_transform() -> None:
    model, optimizer, data = _setup(False)
    trainer = Engine(lambda e, b: {"loss": 1.0})
    with (
        FastaiLRFinder().attach(trainer, {"model": model, "optimizer": optimizer}) as t,
        pytest.raises(TypeError, match="output_transform"),
    ):
        await t.run(data)
    finder = FastaiLRFinder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with finder.attach(trainer, {"optimizer": optimizer}, output_transform=lambda out: out["loss"]) as t:
            await t.run(data)
    assert finder.get_results()["loss"] == [1.0] * 10


def test_bad_arguments_are_refused_at_the_call() -> None:
    model, optimizer, _ = _setup(False)
    trainer = Engine(lambda e, b: None)
    finder = FastaiLRFinder()
    with pytest.raises(ValueError, match="'optimizer' key"):
        finder.attach(trainer, to_save={"model": model})
    with pytest.raises(TypeError, match="mapping"):
        finder.attach(trainer, to_save=[optimizer])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="torch optimizer"):
        finder.attach(trainer, to_save={"optimizer": model})
    with pytest.raises(TypeError, match="state_dict"):
        finder.attach(trainer, to_save={"optimizer": optimizer, "x": object()})
    with pytest.raises(ValueError, match="smooth_f"):
        finder.attach(trainer, {"optimizer": optimizer}, smooth_f=1.0)
    with pytest.raises(ValueError, match="diverge_th"):
        finder.attach(trainer, {"optimizer": optimizer}, diverge_th=0.5)
    with pytest.raises(ValueError, match="step_mode"):
        finder.attach(trainer, {"optimizer": optimizer}, step_mode="cos")
    with pytest.raises(TypeError, match="num_iter"):
        finder.attach(trainer, {"optimizer": optimizer}, num_iter=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_iter"):
        finder.attach(trainer, {"optimizer": optimizer}, num_iter=0)
    with pytest.raises(ValueError, match="start_lr must be less than end_lr"):
        finder.attach(trainer, {"optimizer": optimizer}, start_lr=20.0)
    with pytest.raises(ValueError, match="end_lr"):
        finder.attach(trainer, {"optimizer": optimizer}, end_lr=[1.0, 2.0])
    with pytest.raises(TypeError, match="start_lr"):
        finder.attach(trainer, {"optimizer": optimizer}, start_lr=1)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="didn't run yet"):
        finder.lr_suggestion()
    assert not any(trainer._event_handlers.values())  # nothing attached by a refused call


async def test_plot_draws_the_loss_against_the_lr_and_marks_the_suggestion() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, optimizer, data = _setup(False)
    trainer = Engine(_step(model, optimizer, []))
    finder = FastaiLRFinder()
    with finder.attach(trainer, {"model": model, "optimizer": optimizer}, start_lr=1e-4, end_lr=1e4) as t:
        await t.run(data * 5)
    results = finder.get_results()
    try:
        ax = finder.plot(skip_start=0, skip_end=0)
        line = ax.get_lines()[0]
        assert list(line.get_xdata()) == results["lr"]
        assert list(line.get_ydata()) == results["loss"]
        assert ax.get_xscale() == "log"
        assert finder.lr_suggestion() in [point[0] for c in ax.collections for point in c.get_offsets()]
    finally:
        plt.close("all")


def test_plot_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'ignite-async\[plot\]'"):
        FastaiLRFinder().plot()


def test_events_are_untouched_by_an_unused_attach() -> None:
    _, optimizer, _ = _setup(False)
    trainer = Engine(lambda e, b: None)
    FastaiLRFinder().attach(trainer, {"optimizer": optimizer})  # never entered
    assert not trainer.has_event_handler(FastaiLRFinder._run, Events.STARTED)
    assert not any(trainer._event_handlers.values())
