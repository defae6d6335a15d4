"""Stochastic Weight Averaging over epochs, on ``torch.optim.swa_utils`` (not in pytorch-ignite)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio.to_thread
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from ignite_async.engine import Engine, Events

__all__ = ["StochasticWeightAveraging"]

_ANNEAL_STRATEGIES = ("cos", "linear")


def _check_lr(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"swa_lr must be a finite float >= 0 or a list of them (one per param group), got {value!r}")


class StochasticWeightAveraging:
    """Average ``model``'s weights at the end of each epoch from ``swa_start`` on, the SWA recipe of
    :mod:`torch.optim.swa_utils`.

    At each ``EPOCH_COMPLETED`` whose ``engine.state.epoch`` (counted from 1) is ``swa_start`` or later,
    ``averaged_model`` (an :class:`~torch.optim.swa_utils.AveragedModel`: an equal-weight average of the weights
    seen at those epochs) takes in ``model``'s weights, then ``scheduler`` (an
    :class:`~torch.optim.swa_utils.SWALR`) steps: the learning rate of every param group goes from its value
    then to ``swa_lr`` over ``anneal_epochs`` epochs, following ``anneal_strategy``, and stays there. Before
    ``swa_start`` the learning rates are left alone (unlike constructing ``SWALR`` by hand with
    ``anneal_epochs=0``, which sets them to ``swa_lr`` at once).

    A batch norm's running statistics are buffers, not averaged: ``AveragedModel`` copies them from ``model`` at
    each update, so they are not the statistics of the averaged weights. Give ``update_bn_loader`` (an iterable
    of tensors or of tuples whose first item is the input) and, at ``COMPLETED``, they are recomputed over it with
    :func:`~torch.optim.swa_utils.update_bn`, in a worker thread (so that the event loop stays free) and
    without autograd; nothing is done there if no epoch has been averaged yet.

    :meth:`state_dict` and :meth:`load_state_dict` hold the averaged model (with its count of averaged epochs)
    and the scheduler, so that the handler can go in a :class:`~ignite_async.handlers.Checkpoint`'s ``to_save``.

    :param model: the model being trained.
    :param optimizer: its optimizer, whose learning rates the scheduler sets.
    :param swa_start: the first epoch (from 1) at whose end the weights are averaged.
    :param swa_lr: the learning rate to anneal to: one for all param groups, or a list with one per group.
    :param anneal_epochs: the number of epochs of the annealing (0: ``swa_lr`` from the first averaged epoch).
    :param anneal_strategy: ``"cos"`` or ``"linear"``.
    :param update_bn_loader: the data over which to recompute batch norm statistics at the end, or None.
    :param device: where ``averaged_model`` lives, and where the ``update_bn_loader`` inputs are moved; None:
        where ``model`` is.
    :raises ValueError: for a ``swa_start`` below 1, a negative or non-finite ``swa_lr``, a negative
        ``anneal_epochs``, or an ``anneal_strategy`` other than ``"cos"`` and ``"linear"``.
    :raises TypeError: for a ``model`` that is not an ``nn.Module`` or an ``optimizer`` that is not an
        ``Optimizer``.

    >>> import asyncio, torch
    >>> from ignite_async import create_supervised_trainer
    >>> from ignite_async.handlers import StochasticWeightAveraging
    >>> model = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> trainer = create_supervised_trainer(model, optimizer, torch.nn.MSELoss())
    >>> swa = StochasticWeightAveraging(model, optimizer, swa_start=3, swa_lr=0.01, anneal_epochs=2)
    >>> swa.attach(trainer)
    >>> _ = asyncio.run(trainer.run([(torch.ones(4, 2), torch.zeros(4, 1))], max_epochs=5))
    >>> int(swa.averaged_model.n_averaged), optimizer.param_groups[0]["lr"]
    (3, 0.01)
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        swa_start: int,
        swa_lr: float | Sequence[float],
        anneal_epochs: int = 10,
        anneal_strategy: str = "cos",
        update_bn_loader: Iterable[Any] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(swa_start, bool) or not isinstance(swa_start, int) or swa_start < 1:
            raise ValueError(f"swa_start must be an integer >= 1 (an epoch, counted from 1), got {swa_start!r}")
        groups = len(optimizer.param_groups)
        lrs: list[Any] = list(swa_lr) if isinstance(swa_lr, (list, tuple)) else [swa_lr] * groups
        if len(lrs) != groups:
            raise ValueError(f"swa_lr must have one value per param group ({groups}), got {len(lrs)}")
        for lr in lrs:
            _check_lr(lr)
        if isinstance(anneal_epochs, bool) or not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be an integer >= 0, got {anneal_epochs!r}")
        if anneal_strategy not in _ANNEAL_STRATEGIES:
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.model = model
        self.optimizer = optimizer
        self.swa_start = swa_start
        self.update_bn_loader = update_bn_loader
        self.device = torch.device(device) if device is not None else None
        self.averaged_model = AveragedModel(model, device=self.device)
        # SWALR's constructor takes a first step, which with anneal_epochs=0 sets every lr to swa_lr: undone, so
        # that the learning rates before swa_start are the optimizer's (or another scheduler's).
        before = [group["lr"] for group in optimizer.param_groups]
        self.scheduler = SWALR(
            optimizer,
            swa_lr=lrs,  # type: ignore[arg-type]  # a list (one per group) is documented; the stub says float
            anneal_epochs=anneal_epochs,
            anneal_strategy=anneal_strategy,  # type: ignore[arg-type]
        )
        for group, lr in zip(optimizer.param_groups, before, strict=True):
            group["lr"] = lr

    def attach(self, engine: Engine) -> None:
        """Average at each ``EPOCH_COMPLETED`` from ``swa_start`` on; recompute batch norm statistics at
        ``COMPLETED`` if ``update_bn_loader`` was given.

        :param engine: the trainer.
        """
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._on_epoch_completed)
        if self.update_bn_loader is not None:
            engine.add_event_handler(Events.COMPLETED, self._on_completed)

    def _on_epoch_completed(self, engine: Engine) -> None:
        if engine.state.epoch < self.swa_start:
            return
        self.averaged_model.update_parameters(self.model)
        self.scheduler.step()

    async def _on_completed(self, engine: Engine) -> None:
        if int(self.averaged_model.n_averaged) == 0:
            return
        await anyio.to_thread.run_sync(self._update_bn)

    def _update_bn(self) -> None:
        assert self.update_bn_loader is not None
        with torch.no_grad():
            update_bn(self.update_bn_loader, self.averaged_model, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        """The averaged model's and the scheduler's state dicts, under ``"averaged_model"`` and ``"scheduler"``."""
        return {"averaged_model": self.averaged_model.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        :raises ValueError: for a mapping without ``"averaged_model"`` or ``"scheduler"``.
        """
        missing = [key for key in ("averaged_model", "scheduler") if key not in state_dict]
        if missing:
            raise ValueError(f"state_dict lacks {', '.join(map(repr, missing))}")
        self.averaged_model.load_state_dict(state_dict["averaged_model"])
        self.scheduler.load_state_dict(state_dict["scheduler"])
