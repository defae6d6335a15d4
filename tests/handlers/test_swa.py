"""StochasticWeightAveraging: the same averaged weights and learning rates as torch.optim.swa_utils used by hand."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from ignite_async import Events, create_supervised_trainer
from ignite_async.handlers import StochasticWeightAveraging

Data = list[tuple[torch.Tensor, torch.Tensor]]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))


def make_data(seed: int = 1) -> Data:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 4, generator=generator), torch.randn(6, 1, generator=generator)) for _ in range(4)]


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def hand_written_swa(
    model: nn.Module,
    data: Data,
    epochs: int,
    swa_start: int,
    swa_lr: float,
    anneal_epochs: int,
    anneal_strategy: Any,
    bn_data: Data | None,
) -> tuple[AveragedModel, list[float]]:
    """torch's SWA recipe, with epochs counted from 1 and averaging from the end of epoch ``swa_start``."""
    optimizer = make_optimizer(model)
    swa_model = AveragedModel(model)
    lrs = [group["lr"] for group in optimizer.param_groups]
    swa_scheduler = SWALR(optimizer, swa_lr=swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=anneal_strategy)
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr  # the learning rate before swa_start is the optimizer's
    seen: list[float] = []
    for epoch in range(1, epochs + 1):
        seen.append(optimizer.param_groups[0]["lr"])
        for x, y in data:
            model.train()
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        if epoch >= swa_start:
            swa_model.update_parameters(model)
            swa_scheduler.step()
    if bn_data is not None:
        update_bn(bn_data, swa_model)
    return swa_model, seen


def assert_same_module(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def ours(model: nn.Module, **kwargs: Any) -> tuple[Any, StochasticWeightAveraging, torch.optim.Optimizer, list[float]]:
    optimizer = make_optimizer(model)
    trainer = create_supervised_trainer(model, optimizer, nn.MSELoss())
    swa = StochasticWeightAveraging(model, optimizer, **kwargs)
    swa.attach(trainer)
    seen: list[float] = []
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(optimizer.param_groups[0]["lr"]))
    return trainer, swa, optimizer, seen


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("swa_start", "anneal_epochs", "anneal_strategy"), [(2, 2, "cos"), (3, 0, "linear"), (1, 3, "linear")]
)
@pytest.mark.parametrize("with_bn_update", [True, False])
async def test_averaged_weights_equal_swa_utils_by_hand(
    swa_start: int, anneal_epochs: int, anneal_strategy: str, with_bn_update: bool
) -> None:
    initial, data, bn_data = make_model(), make_data(), make_data(seed=2)
    epochs = 5

    ref_model = copy.deepcopy(initial)
    ref_swa, ref_lrs = hand_written_swa(
        ref_model, data, epochs, swa_start, 0.02, anneal_epochs, anneal_strategy, bn_data if with_bn_update else None
    )

    model = copy.deepcopy(initial)
    trainer, swa, _, lrs = ours(
        model,
        swa_start=swa_start,
        swa_lr=0.02,
        anneal_epochs=anneal_epochs,
        anneal_strategy=anneal_strategy,
        update_bn_loader=bn_data if with_bn_update else None,
    )
    await trainer.run(data, max_epochs=epochs)

    assert lrs == ref_lrs
    assert lrs[:swa_start] == [0.1] * swa_start  # left alone before averaging starts
    assert_same_module(model, ref_model)
    assert_same_module(swa.averaged_model, ref_swa)
    assert int(swa.averaged_model.n_averaged) == epochs - swa_start + 1
    averaged = swa.averaged_model.module
    assert isinstance(averaged, nn.Sequential)
    bn = averaged[1]
    assert isinstance(bn, nn.BatchNorm1d)
    assert bn.num_batches_tracked is not None
    # AveragedModel copies the buffers at each update; update_bn recomputes them over its data.
    assert int(bn.num_batches_tracked) == (len(bn_data) if with_bn_update else epochs * len(data))
    assert not torch.equal(next(averaged.parameters()), next(model.parameters()))


@pytest.mark.anyio
async def test_resumed_from_state_dicts_equals_an_uninterrupted_run() -> None:
    initial, data, bn_data = make_model(), make_data(), make_data(seed=2)
    kwargs: dict[str, Any] = {"swa_start": 2, "swa_lr": 0.02, "anneal_epochs": 3, "update_bn_loader": bn_data}

    model = copy.deepcopy(initial)
    trainer, swa, _, _ = ours(model, **kwargs)
    await trainer.run(data, max_epochs=6)

    first = copy.deepcopy(initial)
    trainer1, swa1, optimizer1, _ = ours(first, **kwargs)
    await trainer1.run(data, max_epochs=3)
    saved = copy.deepcopy(
        {
            "model": first.state_dict(),
            "optimizer": optimizer1.state_dict(),
            "swa": swa1.state_dict(),
            "trainer": trainer1.state_dict(),
        }
    )

    resumed = make_model()
    trainer2, swa2, optimizer2, _ = ours(resumed, **kwargs)
    resumed.load_state_dict(saved["model"])
    optimizer2.load_state_dict(saved["optimizer"])
    swa2.load_state_dict(saved["swa"])
    trainer2.load_state_dict({**saved["trainer"], "max_epochs": 6})
    await trainer2.run(data)

    assert trainer2.state.epoch == 6
    assert int(swa2.averaged_model.n_averaged) == 5
    assert_same_module(swa2.averaged_model, swa.averaged_model)
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(0.02)


@pytest.mark.anyio
async def test_nothing_averaged_before_swa_start_leaves_the_bn_statistics() -> None:
    model = make_model()
    trainer, swa, optimizer, _ = ours(model, swa_start=5, swa_lr=0.02, update_bn_loader=make_data(seed=2))
    before = copy.deepcopy(swa.averaged_model.state_dict())
    await trainer.run(make_data(), max_epochs=2)
    assert int(swa.averaged_model.n_averaged) == 0
    assert all(torch.equal(v, before[k]) for k, v in swa.averaged_model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_load_state_dict_names_missing_keys() -> None:
    model = make_model()
    swa = StochasticWeightAveraging(model, make_optimizer(model), swa_start=1, swa_lr=0.01)
    with pytest.raises(ValueError, match="'scheduler'"):
        swa.load_state_dict({"averaged_model": swa.averaged_model.state_dict()})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"swa_start": 0}, "swa_start must be an integer >= 1"),
        ({"swa_start": True}, "swa_start must be an integer >= 1"),
        ({"swa_lr": -0.1}, "swa_lr must be a finite float >= 0"),
        ({"swa_lr": float("nan")}, "swa_lr must be a finite float >= 0"),
        ({"swa_lr": [0.1, 0.2]}, "swa_lr must have one value per param group"),
        ({"anneal_epochs": -1}, "anneal_epochs must be an integer >= 0"),
        ({"anneal_strategy": "step"}, "anneal_strategy must be 'cos' or 'linear'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    model = make_model()
    optimizer = make_optimizer(model)
    arguments: dict[str, Any] = {"swa_start": 1, "swa_lr": 0.01, **kwargs}
    with pytest.raises(ValueError, match=match):
        StochasticWeightAveraging(model, optimizer, **arguments)
    assert "swa_lr" not in optimizer.param_groups[0]  # the optimizer is left untouched
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        StochasticWeightAveraging(model, "sgd", swa_start=1, swa_lr=0.01)  # type: ignore[arg-type]
