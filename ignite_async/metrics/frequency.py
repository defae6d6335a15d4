"""Throughput: how many things (samples, tokens) per second since the epoch started."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ignite_async.distributed.comm import get_world_size
from ignite_async.engine import Engine, Events
from ignite_async.metrics.metric import Metric, NotComputableError, sync_all_reduce

__all__ = ["Frequency"]


class Frequency(Metric):
    """The sum of the outputs (e.g. tokens per batch) divided by the seconds since the epoch started.

    Attached, it restarts each epoch and writes an ``int`` into ``state.metrics[name]`` at ``event_name``
    (each iteration by default), as pytorch-ignite's does.

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> engine = Engine(lambda engine, batch: len(batch))
    >>> Frequency().attach(engine, "samples/s")
    >>> state = asyncio.run(engine.run([[1, 2, 3]] * 4))
    >>> state.metrics["samples/s"] > 0
    True
    """

    required_output_keys = None
    _state_attrs = ("_n", "_elapsed")

    def __init__(
        self,
        output_transform: Callable[[Any], Any] = lambda x: x,
        device: str | torch.device = "cpu",
        skip_unrolling: bool = False,
    ) -> None:
        self._event: Any = Events.ITERATION_COMPLETED  # where attach() put completed()
        super().__init__(output_transform, device, skip_unrolling)

    def reset(self) -> None:
        self._start = time.perf_counter()
        self._n: Any = 0
        self._elapsed = 0.0

    def update(self, output: Any) -> None:
        self._n += output
        self._elapsed = time.perf_counter() - self._start

    @sync_all_reduce("_n", "_elapsed")
    def compute(self) -> float:
        if self._elapsed <= 0.0:
            raise NotComputableError("Frequency must have at least one update before it can be computed")
        n = self._n.item() if isinstance(self._n, torch.Tensor) else self._n
        # Summed over ranks: all ranks' things over their mean time.
        return float(n / self._elapsed) * get_world_size()

    def completed(self, engine: Engine, name: str) -> None:
        engine.state.metrics[name] = int(self.compute())

    def attach(  # pytorch-ignite's signature: an event, not a usage
        self, engine: Engine, name: str, event_name: Any = Events.ITERATION_COMPLETED
    ) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(event_name, self.completed, name)
        self._event = event_name

    def _handlers(self) -> tuple[tuple[Callable[..., Any], Any], ...]:
        return (
            (self.started, Events.EPOCH_STARTED),
            (self.iteration_completed, Events.ITERATION_COMPLETED),
            (self.completed, self._event),
        )

    def detach(self, engine: Engine, usage: Any = None) -> None:
        for handler, event in self._handlers():
            if engine.has_event_handler(handler, event):
                engine.remove_event_handler(handler, event)

    def is_attached(self, engine: Engine, usage: Any = None) -> bool:
        return all(engine.has_event_handler(h, e) for h, e in self._handlers())
