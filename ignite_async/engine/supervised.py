"""Trainer and evaluator engines for the usual supervised case, with pytorch-ignite 0.5.5's steps."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio.to_thread
import torch

from ignite_async.engine.engine import Engine
from ignite_async.engine.events import Events

__all__ = ["create_supervised_evaluator", "create_supervised_trainer", "prepare_batch"]


def _to(value: Any, device: str | torch.device | None, non_blocking: bool) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, non_blocking=non_blocking) if device is not None else value
    if isinstance(value, Mapping):
        return {k: _to(v, device, non_blocking) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device, non_blocking) for v in value)
    return value


def prepare_batch(batch: Sequence[Any], device: str | torch.device | None = None, non_blocking: bool = False) -> Any:
    """``(x, y)`` moved to ``device`` (nested lists, tuples and dicts of tensors too)."""
    x, y = batch
    return _to(x, device, non_blocking), _to(y, device, non_blocking)


def _device_type(device: str | torch.device | None) -> str:
    return torch.device(device).type if device is not None else "cpu"


def _autocast(amp_mode: str | None, device: str | torch.device | None) -> Any:
    if amp_mode is None:
        return contextlib.nullcontext()
    if amp_mode != "amp":
        raise ValueError(f"amp_mode must be None or 'amp', got {amp_mode!r}")
    return torch.autocast(device_type=_device_type(device))


def _clip_bound(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be None or a positive finite float, got {value!r}")
    return float(value)


def _clipper(
    optimizer: torch.optim.Optimizer, clip_grad_norm: float | None, clip_grad_value: float | None
) -> Callable[[], None] | None:
    """What clips the gradients of ``optimizer``'s parameters before its step, or None when nothing is to clip."""
    max_norm = _clip_bound("clip_grad_norm", clip_grad_norm)
    max_value = _clip_bound("clip_grad_value", clip_grad_value)
    if max_norm is None and max_value is None:
        return None

    def clip() -> None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if max_value is not None:
            torch.nn.utils.clip_grad_value_(params, max_value)
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, max_norm)

    return clip


def _process(step: Callable[[Engine, Any], Any], in_thread: bool) -> Callable[..., Any]:
    if not in_thread:
        return step

    async def step_in_thread(engine: Engine, batch: Any) -> Any:
        return await anyio.to_thread.run_sync(step, engine, batch)  # the loop stays responsive meanwhile

    return step_in_thread


def create_supervised_trainer(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = prepare_batch,
    model_transform: Callable[[Any], Any] = lambda output: output,
    output_transform: Callable[[Any, Any, Any, torch.Tensor], Any] = lambda x, y, y_pred, loss: loss.item(),
    deterministic: bool = False,
    amp_mode: str | None = None,
    scaler: bool | torch.amp.GradScaler = False,
    gradient_accumulation_steps: int = 1,
    model_fn: Callable[[torch.nn.Module, Any], Any] = lambda model, x: model(x),
    step_in_thread: bool = False,
    clip_grad_norm: float | None = None,
    clip_grad_value: float | None = None,
) -> Engine:
    """A trainer whose step is pytorch-ignite's: for the same seed, model and data, the same weights.

    With ``gradient_accumulation_steps=k`` gradients add up over ``k`` iterations (the loss divided by ``k``)
    before each optimizer step. ``amp_mode="amp"`` runs the forward pass under ``torch.autocast``, with a
    ``GradScaler`` if ``scaler`` is True or one. ``step_in_thread`` runs the step in a worker thread.

    ``clip_grad_norm`` and ``clip_grad_value`` (not in pytorch-ignite) clip the gradients of the optimizer's
    parameters before each optimizer step, as ``torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)`` and
    ``torch.nn.utils.clip_grad_value_(params, clip_grad_value)`` would: with gradient accumulation, only the
    accumulated gradients, just before the step that applies them. With a ``GradScaler`` the gradients are
    unscaled first (``scaler.unscale_(optimizer)``), as torch's AMP recipe prescribes, so that the bounds apply
    to the true gradients. Both may be given: the values are clipped first, then the norm. Both None (the
    default) leaves the step exactly pytorch-ignite's.

    ``deterministic`` is accepted in pytorch-ignite's place, for ported calls; no special engine class is
    returned, since every :class:`~ignite_async.Engine` resumes a map-style ``DataLoader`` exactly mid-epoch.
    What ``deterministic=True`` does is what pytorch-ignite's ``DeterministicEngine`` does to torch when
    the run starts on a machine with CUDA: ``torch.use_deterministic_algorithms(True, warn_only=True)`` and
    ``torch.backends.cudnn.benchmark = False`` (process-wide settings, left set after the run, as there).
    Unlike ``DeterministicEngine``, the random generators are not re-seeded at each epoch (it draws a seed
    at the start and seeds ``seed + epoch``), so the random streams are those of ``deterministic=False``;
    save and restore them with :class:`~ignite_async.handlers.RNGStates` in the checkpoint to resume them.

    :raises TypeError: for a ``deterministic`` that is not a bool, or a ``gradient_accumulation_steps`` that
        is not an integer.
    :raises ValueError: for ``gradient_accumulation_steps < 1``, an unknown ``amp_mode``, or a
        ``clip_grad_norm`` or ``clip_grad_value`` that is not a positive finite number.

    >>> import asyncio, torch
    >>> from ignite_async import create_supervised_trainer
    >>> model = torch.nn.Linear(2, 1)
    >>> trainer = create_supervised_trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.MSELoss())
    >>> state = asyncio.run(trainer.run([(torch.ones(4, 2), torch.zeros(4, 1))] * 3))
    >>> isinstance(state.output, float)
    True
    """
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be True or False, got {deterministic!r}")
    if isinstance(gradient_accumulation_steps, bool) or not isinstance(gradient_accumulation_steps, int):
        raise TypeError(f"gradient_accumulation_steps must be an integer, got {gradient_accumulation_steps!r}")
    if gradient_accumulation_steps < 1:
        raise ValueError(f"gradient_accumulation_steps must be >= 1, got {gradient_accumulation_steps}")
    _autocast(amp_mode, device)  # validates amp_mode now, not at the first step
    grad_scaler = scaler if isinstance(scaler, torch.amp.GradScaler) else None
    if scaler is True:
        if amp_mode != "amp":
            raise ValueError("scaler=True needs amp_mode='amp'")
        grad_scaler = torch.amp.GradScaler(_device_type(device))
    k = gradient_accumulation_steps
    clip = _clipper(optimizer, clip_grad_norm, clip_grad_value)

    def step(engine: Engine, batch: Any) -> Any:
        if (engine.state.iteration - 1) % k == 0:
            optimizer.zero_grad()
        model.train()
        x, y = prepare_batch(batch, device=device, non_blocking=non_blocking)
        with _autocast(amp_mode, device):
            y_pred = model_transform(model_fn(model, x))
            loss = loss_fn(y_pred, y)
            if k > 1:
                loss = loss / k
        if grad_scaler is not None:
            grad_scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            if engine.state.iteration % k == 0:
                if clip is not None:
                    grad_scaler.unscale_(optimizer)
                    clip()
                grad_scaler.step(optimizer)
                grad_scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            if engine.state.iteration % k == 0:
                if clip is not None:
                    clip()
                optimizer.step()
        return output_transform(x, y, y_pred, loss * k)

    trainer = Engine(_process(step, step_in_thread))
    if deterministic:
        trainer.add_event_handler(Events.STARTED, _deterministic_algorithms)
    return trainer


def _deterministic_algorithms(_: Engine) -> None:
    """What pytorch-ignite's DeterministicEngine sets at each run's start, with CUDA only (as there: on the CPU
    alone, deterministic algorithms would turn some ops into warnings or errors for no benefit)."""
    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def create_supervised_evaluator(
    model: torch.nn.Module,
    metrics: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] = prepare_batch,
    model_transform: Callable[[Any], Any] = lambda output: output,
    output_transform: Callable[[Any, Any, Any], Any] = lambda x, y, y_pred: (y_pred, y),
    amp_mode: str | None = None,
    model_fn: Callable[[torch.nn.Module, Any], Any] = lambda model, x: model(x),
    step_in_thread: bool = False,
) -> Engine:
    """An evaluator (``model.eval()``, no gradients) with ``metrics`` attached by name.

    >>> import asyncio, torch
    >>> from ignite_async import create_supervised_evaluator
    >>> from ignite_async.metrics import MeanSquaredError
    >>> model = torch.nn.Linear(2, 1)
    >>> evaluator = create_supervised_evaluator(model, metrics={"mse": MeanSquaredError()})
    >>> state = asyncio.run(evaluator.run([(torch.ones(4, 2), torch.zeros(4, 1))]))
    >>> sorted(state.metrics)
    ['mse']
    """
    _autocast(amp_mode, device)

    def step(engine: Engine, batch: Any) -> Any:
        model.eval()
        with torch.no_grad(), _autocast(amp_mode, device):
            x, y = prepare_batch(batch, device=device, non_blocking=non_blocking)
            y_pred = model_transform(model_fn(model, x))
            return output_transform(x, y, y_pred)

    evaluator = Engine(_process(step, step_in_thread))
    for name, metric in (metrics or {}).items():
        metric.attach(evaluator, name)
    return evaluator
