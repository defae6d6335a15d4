"""An exponential moving average of a model's weights, updated as training goes (pytorch-ignite's ``EMAHandler``)."""

from __future__ import annotations

import copy
import numbers
import warnings
from typing import Any

import torch
from torch import nn

from ignite_async.engine import Engine, Events

__all__ = ["EMAHandler"]

_BUFFER_MODES = ("copy", "update", "ema_train")


def _is_real(value: object) -> bool:
    """A real number (numpy's included), not a bool; a function, so that the types declared stay as they are."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _MomentumWarmup:
    """The momentum at the ``n``-th update (from 1): linear from ``start`` at the first update to ``end`` at the
    ``iters``-th, then ``end``."""

    def __init__(self, start: float, iters: int, end: float) -> None:
        self.start, self.iters, self.end = start, iters, end

    def __call__(self, n: int) -> float:
        # Evaluated in the same order as pytorch-ignite's EMAWarmUp, so that the floats are the same.
        value = self.start + (self.end - self.start) * (n - 1) / max(1, self.iters - 1)
        return min(self.end, value) if self.end >= self.start else max(self.end, value)


class EMAHandler:
    r"""Keep ``ema_model``, an exponential moving average of ``model``'s parameters.

    At each firing of the event given to :meth:`attach` (every iteration by default), every parameter of the
    EMA model becomes :math:`(1 - \lambda)\,\theta_{\mathrm{EMA}} + \lambda\,\theta`, :math:`\lambda` being the
    momentum, which handlers read as ``engine.state.<name>`` (``engine.state.ema_momentum`` by default).

    With ``momentum_warmup`` and ``warmup_iters`` both given, the momentum goes linearly from ``momentum_warmup``
    at the first update to ``momentum`` at the ``warmup_iters``-th, and stays there; updates are counted from
    :meth:`attach` (a handler attached with ``every=5`` counts one update per 5 iterations). The count is this
    handler's own: a resumed run starts the warmup again, as in pytorch-ignite.

    Buffers (a batch norm's running statistics) follow ``handle_buffers``:

    - ``"copy"``: copied from the online model at each update; the EMA model is in ``eval`` mode.
    - ``"update"``: floating-point buffers are averaged like the parameters, others (counters) copied; ``eval``
      mode.
    - ``"ema_train"``: left alone, and the EMA model is in ``train`` mode (it computes its own statistics when it
      runs).

    The values at each update are pytorch-ignite 0.5.5's, but for two differences. Copied buffers are copied
    into the EMA model's own tensors, whereas pytorch-ignite makes the EMA model share the online model's
    buffer tensors (so there they also change between updates). And the warmup schedules ``state.<name>``
    whatever the ``name``; pytorch-ignite's schedules ``state.ema_momentum`` even for another name, so
    that its warmup has no effect there.

    Create the handler, load a checkpoint into ``model`` and ``ema_model`` if resuming, then attach it.

    :param model: the online model; a ``DistributedDataParallel`` is unwrapped to its ``module``.
    :param momentum: the momentum after the warmup, in ``(0, 1)``.
    :param momentum_warmup: the momentum at the first update, in ``(0, 1]`` (1 starts the EMA model as a copy),
        or None for no warmup.
    :param warmup_iters: the number of updates of the warmup, an integer >= 1, or None for no warmup.
    :param handle_buffers: ``"copy"``, ``"update"`` or ``"ema_train"``, as above.
    :raises TypeError: for a ``momentum`` or ``momentum_warmup`` that is not a real number, or a
        ``warmup_iters`` that is not an integer (for a momentum, pytorch-ignite raises TypeError too, comparing it).
    :raises ValueError: for a momentum outside ``(0, 1)``, a ``momentum_warmup`` outside ``(0, 1]``, a
        ``warmup_iters < 1``, only one of ``momentum_warmup`` and ``warmup_iters`` (pytorch-ignite then runs
        with no warmup, silently), a ``model`` that is not an ``nn.Module`` or has no parameters, or another
        ``handle_buffers``.

    >>> import asyncio, torch
    >>> from ignite_async import Engine
    >>> from ignite_async.handlers import EMAHandler
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> _ = torch.nn.init.zeros_(model.weight)
    >>> ema = EMAHandler(model, momentum=0.5)
    >>> trainer = Engine(lambda engine, batch: model.weight.data.fill_(batch))  # stands for an optimizer step
    >>> ema.attach(trainer)
    >>> _ = asyncio.run(trainer.run([1.0, 1.0]))
    >>> ema.ema_model.weight.item(), trainer.state.ema_momentum
    (0.75, 0.5)
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        momentum_warmup: float | None = None,
        warmup_iters: int | None = None,
        handle_buffers: str = "copy",
    ) -> None:
        if not _is_real(momentum):
            raise TypeError(f"momentum must be a real number in (0, 1), got {momentum!r}")
        if not 0 < momentum < 1:
            raise ValueError(f"momentum must be in (0, 1), got {momentum!r}")
        if momentum_warmup is not None:
            if not _is_real(momentum_warmup):
                raise TypeError(f"momentum_warmup must be a real number in (0, 1] or None, got {momentum_warmup!r}")
            if not 0 < momentum_warmup <= 1:  # NaN fails this too
                # A momentum above 1 gives weights outside the segment between the EMA and the model's: they diverge.
                raise ValueError(f"momentum_warmup must be in (0, 1], got {momentum_warmup!r}")
        if warmup_iters is not None:
            if isinstance(warmup_iters, bool) or not isinstance(warmup_iters, numbers.Integral | int):
                raise TypeError(f"warmup_iters must be an integer >= 1 or None, got {warmup_iters!r}")
            if warmup_iters < 1:
                raise ValueError(f"warmup_iters must be >= 1, got {warmup_iters}")
        if (momentum_warmup is None) != (warmup_iters is None):
            given, missing = (
                ("momentum_warmup", "warmup_iters") if warmup_iters is None else ("warmup_iters", "momentum_warmup")
            )
            raise ValueError(
                f"{given} was given without {missing}: a warmup needs both (pass {missing} too), none needs neither"
            )
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
        if handle_buffers not in _BUFFER_MODES:
            raise ValueError(
                f"handle_buffers must be one of {', '.join(map(repr, _BUFFER_MODES))}; got {handle_buffers!r}"
            )
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        if next(model.parameters(), None) is None:
            raise ValueError(
                f"model ({type(model).__name__}) has no parameters, so there is nothing to average: "
                "pass the model whose weights training updates"
            )
        self.momentum = momentum
        self.model = model
        self.handle_buffers = handle_buffers
        self._warmup = (
            _MomentumWarmup(momentum_warmup, warmup_iters, momentum)
            if momentum_warmup is not None and warmup_iters is not None
            else None
        )
        self._updates = 0  # counted for the warmup

        self.ema_model = copy.deepcopy(model)
        for param in self.ema_model.parameters():
            param.detach_()
        self.ema_model.train(handle_buffers == "ema_train")

    def attach(
        self,
        engine: Engine,
        name: str = "ema_momentum",
        warn_if_exists: bool = True,
        event: Any = Events.ITERATION_COMPLETED,
    ) -> None:
        """Update the EMA model at each firing of ``event``; the momentum is ``engine.state.<name>``.

        ``engine.state.<name>`` is set to ``momentum`` now, unless it exists: then it is kept (it was loaded
        with the engine's state, or another handler uses the name; pick another name for a second
        EMAHandler on one engine), with a ``UserWarning`` if ``warn_if_exists``.

        :param engine: the trainer.
        :param name: the state attribute holding the momentum.
        :param warn_if_exists: whether to warn if ``engine.state`` already has ``name``.
        :param event: the event (with a filter if you like) at which to update.
        :raises TypeError: for an ``engine`` that is not an ignite_async ``Engine``.
        """
        if not isinstance(engine, Engine):
            raise TypeError(
                f"engine must be an ignite_async Engine (the trainer), got "
                f"{type(engine).__module__}.{type(engine).__name__}"
            )
        if hasattr(engine.state, name):
            if warn_if_exists:
                warnings.warn(
                    f"engine.state already has {name!r} (loaded with the engine's state, or set by another "
                    "handler); EMAHandler keeps its value. Pass warn_if_exists=False to silence this.",
                    UserWarning,
                    stacklevel=2,
                )
        else:
            setattr(engine.state, name, self.momentum)
        self._updates = 0
        engine.add_event_handler(event, self._update, name)

    def _update(self, engine: Engine, name: str) -> None:
        if self._warmup is not None:
            self._updates += 1
            setattr(engine.state, name, self._warmup(self._updates))
        momentum = getattr(engine.state, name)
        with torch.no_grad():
            for ema_p, p in zip(self.ema_model.parameters(), self.model.parameters(), strict=True):
                ema_p.mul_(1.0 - momentum).add_(p, alpha=momentum)
            if self.handle_buffers == "ema_train":
                return
            for ema_b, b in zip(self.ema_model.buffers(), self.model.buffers(), strict=True):
                if self.handle_buffers == "update" and (ema_b.is_floating_point() or ema_b.is_complex()):
                    ema_b.mul_(1.0 - momentum).add_(b, alpha=momentum)
                else:
                    ema_b.copy_(b)
