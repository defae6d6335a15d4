from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from ignite_async import Engine, Events
from ignite_async.loggers import (
    GradsHistHandler,
    GradsScalarHandler,
    TensorBoardLogger,
    TensorboardLogger,
    WeightsHistHandler,
    WeightsScalarHandler,
)

pytestmark = pytest.mark.anyio


async def test_scalars_read_back_with_tensorboards_own_reader(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: 0.5 * b)

    @engine.on(Events.EPOCH_COMPLETED)
    def validate(engine: Engine) -> None:
        engine.state.metrics["accuracy"] = 0.25 * engine.state.epoch

    async with TensorBoardLogger(tmp_path / "tb") as logger:
        logger.attach_output_handler(
            engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"loss": x}
        )
        logger.attach_output_handler(engine, Events.EPOCH_COMPLETED, "val", metric_names="all")
        await engine.run(range(4), max_epochs=2)

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train/loss", "val/accuracy"}
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(i, 0.5 * ((i - 1) % 4)) for i in range(1, 9)]
    assert [(e.step, e.value) for e in events.Scalars("val/accuracy")] == [(1, 0.25), (2, 0.5)]


def test_a_log_dir_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"cannot create log directory .*a-file/tb"):
        TensorBoardLogger(blocker / "tb")


async def test_a_second_run_after_the_event_file_was_released_is_read_back_too(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: float(b))
    logger = TensorBoardLogger(tmp_path / "tb")
    logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"x": x})
    await engine.run(range(3))
    assert logger.writer.file_writer is None  # released when the run ended
    await engine.run(range(3))  # a new run: steps 1..3 again, in a new event file
    await logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert len(list((tmp_path / "tb").iterdir())) == 2
    assert logger.statistics().written == 6
    assert sorted(e.step for e in events.Scalars("train/x")) == [1, 1, 2, 2, 3, 3]


# ---------------------------------------------------------------------- model handlers, against pytorch-ignite


def _model_and_data() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(3, 4), act=nn.ReLU(), fc2=nn.Linear(4, 1)))
    model.fc2.bias.requires_grad_(False)  # a parameter without a gradient: the grads handlers skip it
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.randn(5, 3), torch.randn(5, 1)) for _ in range(3)]
    return model, optimizer, data


def _step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[Any, Any], float]:
    def step(engine: Any, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(batch[0]), batch[1])
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step


def _handlers(ns: Any, model: nn.Module, whitelist: Any) -> list[tuple[Any, Any]]:
    event = ns.Events.ITERATION_COMPLETED
    return [
        (ns.WeightsScalarHandler(model, whitelist=whitelist), event),
        (ns.GradsScalarHandler(model, reduction=torch.mean, tag="train", whitelist=whitelist), event),
        (ns.WeightsHistHandler(model, tag="train", whitelist=whitelist), ns.Events.EPOCH_COMPLETED),
        (ns.GradsHistHandler(model, whitelist=whitelist), event),
    ]


class _Ignite:
    from ignite.engine import Events
    from ignite.handlers.tensorboard_logger import (
        GradsHistHandler,
        GradsScalarHandler,
        WeightsHistHandler,
        WeightsScalarHandler,
    )


class _Ours:
    from ignite_async.engine import Events
    from ignite_async.loggers import GradsHistHandler, GradsScalarHandler, WeightsHistHandler, WeightsScalarHandler


def _read(log_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, float, float]]]]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    scalars = {t: [(e.step, e.value) for e in events.Scalars(t)] for t in events.Tags()["scalars"]}
    hists = {
        t: [(e.step, e.histogram_value.num, e.histogram_value.sum) for e in events.Histograms(t)]
        for t in events.Tags()["histograms"]
    }
    return scalars, hists


def _ignite_run(log_dir: Path, whitelist: Any) -> None:
    from ignite.engine import Engine as IgniteEngine
    from ignite.handlers.tensorboard_logger import TensorboardLogger as IgniteTensorboardLogger

    model, optimizer, data = _model_and_data()
    engine = IgniteEngine(_step(model, optimizer))
    logger = IgniteTensorboardLogger(log_dir=str(log_dir))
    for handler, event in _handlers(_Ignite, model, whitelist):
        logger.attach(engine, log_handler=handler, event_name=event)
    engine.run(data, max_epochs=2)
    logger.close()


def _has_bias(name: str, param: nn.Parameter) -> bool:
    return "bias" in name


@pytest.mark.parametrize("whitelist", [None, ["fc1", "fc2.weight"], _has_bias], ids=["all", "names", "callable"])
async def test_model_handlers_log_what_pytorch_ignites_do(tmp_path: Path, whitelist: Any) -> None:
    _ignite_run(tmp_path / "ignite", whitelist)
    model, optimizer, data = _model_and_data()
    engine = Engine(_step(model, optimizer))
    async with TensorboardLogger(tmp_path / "ours") as logger:
        for handler, event in _handlers(_Ours, model, whitelist):
            logger.attach(engine, log_handler=handler, event_name=event)
        await engine.run(data, max_epochs=2)

    (want_scalars, want_hists), (got_scalars, got_hists) = _read(tmp_path / "ignite"), _read(tmp_path / "ours")
    assert want_scalars  # the comparison compares something
    assert want_hists
    assert sorted(got_scalars) == sorted(want_scalars)
    for tag, want in want_scalars.items():
        assert [s for s, _ in got_scalars[tag]] == [s for s, _ in want]
        assert [v for _, v in got_scalars[tag]] == pytest.approx([v for _, v in want], abs=1e-6), tag
    assert sorted(got_hists) == sorted(want_hists)
    for tag, want_h in want_hists.items():
        assert [(s, n) for s, n, _ in got_hists[tag]] == [(s, n) for s, n, _ in want_h]
        assert [x for _, _, x in got_hists[tag]] == pytest.approx([x for _, _, x in want_h], abs=1e-6), tag
    if whitelist is None:
        assert "weights_norm/fc1/weight" in got_scalars
        assert "train/grads_mean/fc2/weight" in got_scalars
        assert "train/grads_mean/fc2/bias" not in got_scalars  # no gradient
        assert "train/weights/fc2/bias" in got_hists
        assert [s for s, _, _ in got_hists["train/weights/fc1/weight"]] == [1, 2]  # at EPOCH_COMPLETED: the epoch
    elif callable(whitelist):
        assert sorted(got_scalars) == ["train/grads_mean/fc1/bias", "weights_norm/fc1/bias", "weights_norm/fc2/bias"]
    else:
        assert "weights_norm/fc2/bias" not in got_scalars
        assert "weights_norm/fc1/bias" in got_scalars


async def test_a_histogram_holds_the_values_at_the_firing_not_at_the_write(tmp_path: Path) -> None:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)

    def step(engine: Engine, batch: int) -> None:
        with torch.no_grad():
            model.weight.fill_(float(batch))  # changed in place, before the writer may have written

    engine = Engine(step)
    async with TensorBoardLogger(tmp_path / "tb") as logger:
        logger.attach(engine, WeightsHistHandler(model), Events.ITERATION_COMPLETED)
        await engine.run([2, 3, 4])
    _, hists = _read(tmp_path / "tb")
    assert hists["weights/weight"] == [(1, 2.0, 4.0), (2, 2.0, 6.0), (3, 2.0, 8.0)]


def test_bad_model_handler_arguments_are_named() -> None:
    model = nn.Linear(2, 1)
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        WeightsScalarHandler("model")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reduction must be callable"):
        GradsScalarHandler(model, reduction="norm")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reduction must return a number or a 0-d tensor"):
        WeightsScalarHandler(model, reduction=lambda t: t * 2)
    with pytest.raises(TypeError, match="whitelist must be a list of names"):
        GradsHistHandler(model, whitelist="weight")
    with pytest.raises(TypeError, match="tag must be a string"):
        WeightsHistHandler(model, tag=1)  # type: ignore[arg-type]


def test_attach_takes_only_the_model_handlers(tmp_path: Path) -> None:
    logger = TensorboardLogger(tmp_path / "tb")
    with pytest.raises(TypeError, match="log_handler must be a WeightsScalarHandler"):
        logger.attach(Engine(lambda e, b: None), lambda *a: None, Events.ITERATION_COMPLETED)  # type: ignore[arg-type]
    logger.writer.close()
    assert TensorboardLogger is TensorBoardLogger
