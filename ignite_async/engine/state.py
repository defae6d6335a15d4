"""The engine's state: counters, the current batch and output, metrics, and user fields."""

from __future__ import annotations

import numbers
from typing import Any

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

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes that were never set; declared so that user fields type-check.
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __repr__(self) -> str:
        lines = ["State:"]
        for key, value in self.__dict__.items():
            shown = value if isinstance(value, (numbers.Number, str)) else type(value)
            lines.append(f"\t{key}: {shown}")
        return "\n".join(lines)
