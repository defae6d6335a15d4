"""Keep every output of an epoch, e.g. an evaluator's predictions, for plotting or inspection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ignite_async.engine import Engine, Events

__all__ = ["EpochOutputStore"]


class EpochOutputStore:
    """Collect ``output_transform(engine.state.output)`` at every iteration of the current epoch, in ``data``.

    :meth:`attach` empties ``data`` when an epoch starts and appends at every ``ITERATION_COMPLETED``; with a
    ``name``, the list is also set as ``engine.state.<name>`` when the epoch completes. All outputs of an
    epoch stay in memory, so transform them down to what you need.

    :param output_transform: maps the engine's output to what is stored (by default the output itself).
    :raises TypeError: for an ``output_transform`` that is not callable (at the call, not during the run).

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> from ignite_async.handlers import EpochOutputStore
    >>> evaluator = Engine(lambda e, batch: (batch * 10, batch))
    >>> store = EpochOutputStore(output_transform=lambda out: out[0])
    >>> store.attach(evaluator, name="predictions")
    >>> state = asyncio.run(evaluator.run([1, 2, 3]))
    >>> store.data, state.predictions
    ([10, 20, 30], [10, 20, 30])
    """

    def __init__(self, output_transform: Callable[[Any], Any] = lambda x: x) -> None:
        if not callable(output_transform):
            raise TypeError(
                f"output_transform must be callable (it maps engine.state.output to what is stored), "
                f"got {output_transform!r}"
            )
        self.data: list[Any] = []
        self.output_transform = output_transform

    def reset(self) -> None:
        """Start a new, empty ``data`` list (the previous epoch's list, if stored on the state, is kept there)."""
        self.data = []

    def update(self, engine: Engine) -> None:
        """Append the transformed output of the engine's current iteration to ``data``."""
        self.data.append(self.output_transform(engine.state.output))

    def store(self, engine: Engine) -> None:
        """Set ``data`` as ``engine.state.<name>``, ``name`` being the one given to :meth:`attach`."""
        setattr(engine.state, self.name, self.data)

    def attach(self, engine: Engine, name: str | None = None) -> None:
        """Reset at ``EPOCH_STARTED`` and update at ``ITERATION_COMPLETED``; with a ``name``, also store the
        epoch's list as ``engine.state.<name>`` at ``EPOCH_COMPLETED``.

        :param engine: the engine whose outputs are collected.
        :param name: the state attribute to store the list under, or None not to store it.
        """
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        if name:
            self.name = name
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.store)
