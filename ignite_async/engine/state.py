"""The engine's state: counters, the current batch and output, metrics, and user fields."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = ["State"]

# Which counter a filtered event counts (pytorch-ignite's ``State.event_to_attr``).
DEFAULT_EVENT_TO_ATTR: dict[str, str] = {
    "GET_BATCH_STARTED": "iteration",
    "GET_BATCH_COMPLETED": "iteration",
    "ITERATION_STARTED": "iteration",
    "ITERATION_COMPLETED": "iteration",
    "EPOCH_STARTED": "epoch",
    "EPOCH_COMPLETED": "epoch",
    "STARTED": "epoch",
    "COMPLETED": "epoch",
}


def _event_name(event: object) -> object:
    # Events compare and hash by name (as in pytorch-ignite): a filtered event counts what its event counts.
    return event if isinstance(event, str) else getattr(event, "name", event)


class State:
    """State shared by the engine, its process function and its handlers.

    ``iteration`` and ``epoch`` are 1-based while running (0 before the first). ``times`` holds the
    seconds taken by the last epoch (``"EPOCH_COMPLETED"``) and by the whole run (``"COMPLETED"``).
    Any other attribute may be set by users to pass data between handlers.

    >>> from ignite_async import State
    >>> state = State(iteration=10, alpha=0.5)
    >>> state.iteration, state.alpha
    (10, 0.5)
    """

    #: The default event-to-counter map (pytorch-ignite's ``State.event_to_attr``). An engine's state also
    #: knows the events registered with ``register_events(..., event_to_attr=...)`` on that engine.
    event_to_attr: ClassVar[Mapping[str, str]] = MappingProxyType(DEFAULT_EVENT_TO_ATTR)
    # Replaced, per instance, by the engine's own map (see Engine.__init__); never shown by repr.
    _event_to_attr: Mapping[str, str] = event_to_attr

    def __init__(self, **kwargs: Any) -> None:
        self.iteration = 0
        self.epoch = 0
        self.epoch_length: int | None = None
        self.max_epochs: int | None = None
        self.max_iters: int | None = None
        self.output: Any = None
        self.batch: Any = None
        self.metrics: dict[str, Any] = {}
        self.dataloader: Any = None
        self.seed: int | None = None
        self.times: dict[str, float | None] = {"EPOCH_COMPLETED": None, "COMPLETED": None}
        for key, value in kwargs.items():
            setattr(self, key, value)

    def get_event_attrib_value(self, event_name: Any) -> int:
        """The counter that ``event_name`` counts: ``iteration`` for iteration events, ``epoch`` for epoch events.

        :raises RuntimeError: for an event that counts nothing (as pytorch-ignite 0.5.5 does).

        >>> from ignite_async import Events, State
        >>> State(iteration=7, epoch=2).get_event_attrib_value(Events.ITERATION_COMPLETED(every=3))
        7
        """
        attr = self._event_to_attr.get(_event_name(event_name))  # type: ignore[call-overload]
        if attr is None:
            raise RuntimeError(f"Unknown event name '{event_name}'")
        value: int = getattr(self, attr)
        return value

    def _copy(self, **fields: Any) -> State:
        """A shallow copy, with ``metrics`` and ``times`` copied and ``fields`` set: every snapshot of the state
        (background handlers, event streams, :meth:`Engine.last_completed_state`) is made here."""
        copy = State.__new__(State)
        copy.__dict__.update(self.__dict__)
        copy.metrics = dict(self.metrics)
        copy.times = dict(self.times)
        copy.__dict__.update(fields)
        return copy

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes that were never set; declared so that user fields type-check.
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __repr__(self) -> str:
        lines = ["State:"]
        for key, value in self.__dict__.items():
            if key.startswith("_"):
                continue
            shown = value if isinstance(value, (numbers.Number, str)) else type(value)
            lines.append(f"\t{key}: {shown}")
        return "\n".join(lines)
