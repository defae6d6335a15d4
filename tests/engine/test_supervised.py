"""create_supervised_trainer/evaluator: the same weights and metrics as pytorch-ignite 0.5.5's."""

from __future__ import annotations

from typing import Any

import ignite.engine as ig_engine
import ignite.metrics as ig_metrics
import pytest
import torch
from torch import nn

import ignite_async.metrics as metrics
from ignite_async import Events, create_supervised_evaluator, create_supervised_trainer

pytestmark = pytest.mark.anyio


def setup() -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(6)]
    return model, optimizer, data


@pytest.mark.parametrize("accumulation", [1, 3])
@pytest.mark.parametrize("in_thread", [False, True])
async def test_weights_after_training_equal_ignites(accumulation: int, in_thread: bool) -> None:
    model, optimizer, data = setup()
    torch.manual_seed(42)  # dropout masks
    ref = ig_engine.create_supervised_trainer(
        model, optimizer, nn.CrossEntropyLoss(), gradient_accumulation_steps=accumulation
    )
    ref_losses: list[float] = []
    ref.add_event_handler(ig_engine.Events.ITERATION_COMPLETED, lambda e: ref_losses.append(e.state.output))
    ref.run(data, max_epochs=3)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer, data = setup()
    torch.manual_seed(42)
    trainer = create_supervised_trainer(
        model, optimizer, nn.CrossEntropyLoss(), gradient_accumulation_steps=accumulation, step_in_thread=in_thread
    )
    losses: list[Any] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output))
    await trainer.run(data, max_epochs=3)
    assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)
    assert losses == ref_losses


async def test_evaluator_metrics_equal_ignites() -> None:
    model, _, data = setup()
    ref = ig_engine.create_supervised_evaluator(
        model, metrics={"acc": ig_metrics.Accuracy(), "loss": ig_metrics.Loss(nn.CrossEntropyLoss())}
    )
    ref.run(data)
    evaluator = create_supervised_evaluator(
        model, metrics={"acc": metrics.Accuracy(), "loss": metrics.Loss(nn.CrossEntropyLoss())}
    )
    state = await evaluator.run(data)
    assert state.metrics["acc"] == pytest.approx(ref.state.metrics["acc"])
    assert state.metrics["loss"] == pytest.approx(ref.state.metrics["loss"], rel=1e-6)
    assert not model.training


def test_bad_arguments() -> None:
    model, optimizer, _ = setup()
    with pytest.raises(ValueError, match="gradient_accumulation_steps must be >= 1"):
        create_supervised_trainer(model, optimizer, nn.MSELoss(), gradient_accumulation_steps=0)
    with pytest.raises(ValueError, match="amp_mode must be None or 'amp'"):
        create_supervised_trainer(model, optimizer, nn.MSELoss(), amp_mode="apex")
    with pytest.raises(ValueError, match="scaler=True needs amp_mode='amp'"):
        create_supervised_trainer(model, optimizer, nn.MSELoss(), scaler=True)
