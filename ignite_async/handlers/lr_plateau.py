"""Reduce the learning rate when a metric stops improving (pytorch-ignite 0.5.5's ``ReduceLROnPlateauScheduler``)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ignite_async.engine import Engine, Events
from ignite_async.handlers.param_scheduler import ParamScheduler, _check_num_events, _fake_optimizer

__all__ = ["ReduceLROnPlateauScheduler"]


class _Plateau(ReduceLROnPlateau):
    """torch's plateau bookkeeping (best value, patience, cooldown), reducing only the driven param groups."""

    _group_index: int | None

    def _reduce_lr(self, epoch: Any) -> None:
        groups = list(enumerate(self.optimizer.param_groups))
        if self._group_index is not None:
            groups = [groups[self._group_index]]
        for index, group in groups:
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[index])
            if old - new > self.eps:
                group["lr"] = new


class ReduceLROnPlateauScheduler(ParamScheduler):
    """Multiply the learning rate by ``factor`` once ``metric_name`` has not improved for ``patience`` firings.

    Attach it to the engine that computes the metric, usually an evaluator's ``Events.COMPLETED`` (the default
    of :meth:`attach`). Each firing reads ``engine.state.metrics[metric_name]`` and takes one step of
    ``torch.optim.lr_scheduler.ReduceLROnPlateau`` built with ``scheduler_kwargs`` (``mode``, ``factor``,
    ``patience``, ``threshold``, ``threshold_mode``, ``cooldown``, ``min_lr``, ``eps``). With ``save_history``,
    the learning rates after each firing are appended to ``trainer.state.param_history["lr"]``.

    Differences from pytorch-ignite 0.5.5: ``min_lr`` is honoured (0.5.5 replaces it by 0 unless
    ``param_group_index`` is given, and then applies it only when that index is 0); ``attach`` defaults to
    ``Events.COMPLETED`` (0.5.5: ``ITERATION_STARTED``, where no metric is computed yet); ``verbose`` is dropped
    with 0.5.5's warning rather than passed on to torch, which no longer takes it.

    :param optimizer: the optimizer whose learning rate is reduced.
    :param metric_name: the key of the monitored value in ``engine.state.metrics``.
    :param trainer: the engine whose ``state.param_history`` gets the history (used with ``save_history``).
    :param param_group_index: reduce only this param group (default: all of them).
    :raises TypeError: if ``min_lr`` is not a float when ``param_group_index`` is given.
    :raises ValueError: at a firing, if ``engine.state.metrics`` has no ``metric_name``.

    >>> import asyncio
    >>> import torch
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import ReduceLROnPlateauScheduler
    >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> losses = iter([3.0, 2.0, 2.5, 2.4, 2.2, 1.0])
    >>> evaluator = Engine(lambda e, b: None)
    >>> @evaluator.on(Events.COMPLETED)
    ... def compute_loss(engine):
    ...     engine.state.metrics["loss"] = next(losses)
    >>> ReduceLROnPlateauScheduler(optimizer, "loss", mode="min", factor=0.5, patience=1).attach(evaluator)
    >>> lrs = []
    >>> for _ in range(6):
    ...     _ = asyncio.run(evaluator.run([0]))
    ...     lrs.append(optimizer.param_groups[0]["lr"])
    >>> lrs
    [0.1, 0.1, 0.1, 0.05, 0.05, 0.05]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        metric_name: str,
        trainer: Engine | None = None,
        save_history: bool = False,
        param_group_index: int | None = None,
        **scheduler_kwargs: Any,
    ) -> None:
        super().__init__(optimizer, "lr", save_history=save_history, param_group_index=param_group_index)
        if not isinstance(metric_name, str):
            raise TypeError(f"metric_name must be a string, got {type(metric_name).__name__}")
        if trainer is not None and not isinstance(trainer, Engine):
            raise TypeError(f"trainer must be an ignite_async Engine or None, got {type(trainer).__name__}")
        self.metric_name = metric_name
        self.trainer = trainer
        kwargs = dict(scheduler_kwargs)
        if "verbose" in kwargs:
            warnings.warn(
                "verbose is not passed on to ReduceLROnPlateau; use save_history=True to record the learning rates",
                UserWarning,
                stacklevel=2,
            )
            del kwargs["verbose"]
        if param_group_index is not None and "min_lr" in kwargs:
            min_lr = kwargs["min_lr"]
            if not isinstance(min_lr, float):
                raise TypeError(f"min_lr must be a float when param_group_index is given, got {type(min_lr).__name__}")
            floors = [0.0] * len(optimizer.param_groups)
            floors[param_group_index] = min_lr
            kwargs["min_lr"] = floors
        self.scheduler = _Plateau(optimizer, **kwargs)
        self.scheduler._group_index = param_group_index
        self._state_attrs += ["metric_name", "scheduler"]

    def attach(self, engine: Engine, event: Any = Events.COMPLETED) -> None:
        engine.add_event_handler(event, self)

    def __call__(self, engine: Engine | None = None, name: str | None = None) -> None:
        metrics = getattr(getattr(engine, "state", None), "metrics", None)
        if not isinstance(metrics, dict) or self.metric_name not in metrics:
            known = sorted(metrics) if isinstance(metrics, dict) else []
            raise ValueError(
                f"ReduceLROnPlateauScheduler: metric {self.metric_name!r} is not in engine.state.metrics "
                f"(it has {known}); attach the scheduler after the metric, on the engine that computes it "
                "(e.g. an evaluator's Events.COMPLETED)"
            )
        self.scheduler.step(metrics[self.metric_name])
        super().__call__(self.trainer, name)

    def get_param(self) -> float | list[float]:
        lrs = [float(group["lr"]) for group in self.optimizer_param_groups]
        return lrs[0] if len(lrs) == 1 else lrs

    @classmethod
    def simulate_values(  # type: ignore[override]
        cls, num_events: int, metric_values: list[float], init_lr: float, **scheduler_kwargs: Any
    ) -> list[list[Any]]:
        """``[event_index, lr]`` for ``num_events`` firings that see ``metric_values`` one by one, starting from
        ``init_lr`` (``optimizer``, ``metric_name`` and ``save_history`` among the kwargs are ignored).

        :raises ValueError: if ``len(metric_values) != num_events``.

        >>> from ignite_async.handlers import ReduceLROnPlateauScheduler
        >>> ReduceLROnPlateauScheduler.simulate_values(4, [1.0, 1.0, 1.0, 1.0], init_lr=1.0, factor=0.5, patience=1)
        [[0, 1.0], [1, 1.0], [2, 0.5], [3, 0.5]]
        """
        _check_num_events(num_events)
        if len(metric_values) != num_events:
            raise ValueError(f"metric_values must hold num_events={num_events} values, got {len(metric_values)}")
        kwargs = {k: v for k, v in scheduler_kwargs.items() if k not in ("optimizer", "metric_name", "save_history")}
        scheduler = cls(_fake_optimizer(lr=init_lr), "metric", **kwargs)
        engine = Engine(lambda e, b: None)
        out: list[list[Any]] = []
        for i, value in enumerate(metric_values):
            engine.state.metrics["metric"] = value
            scheduler(engine)
            out.append([i, scheduler.optimizer_param_groups[0]["lr"]])
        return out
