"""create_supervised_trainer/evaluator: the same weights and metrics as pytorch-ignite 0.5.5's."""

from __future__ import annotations

import contextlib
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


def _gradscaler_on_cpu() -> bool:
    try:
        torch.amp.GradScaler("cpu")
    except (RuntimeError, ValueError, TypeError):  # pragma: no cover - torch builds without it
        return False
    return True


def hand_written_clipped_training(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: list[tuple[torch.Tensor, torch.Tensor]],
    epochs: int,
    k: int,
    max_norm: float | None,
    max_value: float | None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """The loop torch's docs write: clip after backward, before the step (unscaled first with a GradScaler)."""
    loss_fn = nn.CrossEntropyLoss()
    iteration = 0
    for _ in range(epochs):
        for x, y in data:
            iteration += 1
            if (iteration - 1) % k == 0:
                optimizer.zero_grad()
            model.train()
            with torch.autocast("cpu") if scaler is not None else contextlib.nullcontext():
                loss = loss_fn(model(x), y) / k
            (scaler.scale(loss) if scaler is not None else loss).backward()
            if iteration % k:
                continue
            if scaler is not None:
                scaler.unscale_(optimizer)
            if max_value is not None:
                nn.utils.clip_grad_value_(model.parameters(), max_value)
            if max_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()


CLIPS = [(0.05, None), (None, 0.01), (0.05, 0.01)]


@pytest.mark.parametrize(("max_norm", "max_value"), CLIPS)
@pytest.mark.parametrize("accumulation", [1, 3])
@pytest.mark.parametrize("amp", [False, True])
async def test_clipped_weights_equal_a_hand_written_loop(
    max_norm: float | None, max_value: float | None, accumulation: int, amp: bool
) -> None:
    if amp and not _gradscaler_on_cpu():
        pytest.skip("this torch has no GradScaler for the CPU")
    model, optimizer, data = setup()
    torch.manual_seed(42)  # dropout masks
    ref_scaler = torch.amp.GradScaler("cpu") if amp else None
    hand_written_clipped_training(model, optimizer, data, 3, accumulation, max_norm, max_value, ref_scaler)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer, data = setup()
    torch.manual_seed(42)
    amp_kwargs: dict[str, Any] = {"amp_mode": "amp", "scaler": torch.amp.GradScaler("cpu")} if amp else {}
    trainer = create_supervised_trainer(
        model,
        optimizer,
        nn.CrossEntropyLoss(),
        gradient_accumulation_steps=accumulation,
        clip_grad_norm=max_norm,
        clip_grad_value=max_value,
        **amp_kwargs,
    )
    await trainer.run(data, max_epochs=3)
    assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)

    # The clipping bit: without it the weights differ.
    model, optimizer, data = setup()
    torch.manual_seed(42)
    unclipped_scaler = torch.amp.GradScaler("cpu") if amp else None
    hand_written_clipped_training(model, optimizer, data, 3, accumulation, None, None, unclipped_scaler)
    assert not torch.equal(model.state_dict()["0.weight"], expected["0.weight"])


async def test_clipping_happens_only_before_the_step_that_applies_the_gradients() -> None:
    model, optimizer, data = setup()
    grad_norms: list[float] = []
    step = optimizer.step

    def grad_norm() -> float:
        return float(
            torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        )

    def recording_step(*args: Any, **kwargs: Any) -> Any:
        grad_norms.append(grad_norm())
        return step(*args, **kwargs)

    optimizer.step = recording_step  # type: ignore[method-assign]
    accumulated: list[float] = []
    trainer = create_supervised_trainer(
        model, optimizer, nn.CrossEntropyLoss(), gradient_accumulation_steps=2, clip_grad_norm=1e-3
    )
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: accumulated.append(grad_norm()))
    await trainer.run(data, max_epochs=1)
    assert len(grad_norms) == 3
    assert all(n == pytest.approx(1e-3, rel=1e-3) for n in grad_norms)
    assert all(n > 1e-2 for n in accumulated[0::2])  # mid-accumulation gradients are left whole


@pytest.mark.parametrize("name", ["clip_grad_norm", "clip_grad_value"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), True, "1.0"])
def test_bad_clip_bounds(name: str, bad: Any) -> None:
    model, optimizer, _ = setup()
    with pytest.raises(ValueError, match=f"{name} must be None or a positive finite float"):
        create_supervised_trainer(model, optimizer, nn.CrossEntropyLoss(), **{name: bad})


async def test_deterministic_is_accepted_in_pytorch_ignites_place(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    ours = list(inspect.signature(create_supervised_trainer).parameters)
    theirs = list(inspect.signature(ig_engine.create_supervised_trainer).parameters)
    assert ours[: len(theirs)] == theirs  # deterministic where 0.5.5 has it: ported positional calls work
    with pytest.raises(TypeError, match="deterministic must be True or False, got 'yes'"):
        create_supervised_trainer(*setup()[:2], nn.CrossEntropyLoss(), deterministic="yes")  # type: ignore[arg-type]

    # On the CPU alone it changes nothing: pytorch-ignite's plain trainer's weights.
    model, optimizer, data = setup()
    torch.manual_seed(42)
    ig_engine.create_supervised_trainer(model, optimizer, nn.CrossEntropyLoss()).run(data, max_epochs=2)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model, optimizer, data = setup()
    torch.manual_seed(42)
    await create_supervised_trainer(model, optimizer, nn.CrossEntropyLoss(), deterministic=True).run(data, max_epochs=2)
    assert all(torch.equal(model.state_dict()[k], expected[k]) for k in expected)
    assert not torch.are_deterministic_algorithms_enabled()

    # With CUDA, the run's start sets what DeterministicEngine sets (restored after: they are process-wide).
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model, optimizer, data = setup()
    trainer = create_supervised_trainer(model, optimizer, nn.CrossEntropyLoss(), deterministic=True)
    torch.backends.cudnn.benchmark = True
    try:
        await trainer.run(data[:1], max_epochs=1)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]
