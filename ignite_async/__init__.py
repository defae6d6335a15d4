"""ignite_async: an async-native, event-driven training loop for PyTorch.

>>> import asyncio
>>> from ignite_async import Engine, Events
>>> engine = Engine(lambda engine, batch: batch)
>>> asyncio.run(engine.run([1, 2, 3], max_epochs=2)).iteration
6
"""

from __future__ import annotations

from ignite_async.engine import (
    CallableEventWithFilter,
    Engine,
    EventEnum,
    EventFilter,
    Events,
    EventsList,
    RemovableEventHandle,
    State,
    throttle_filter,
    timeout_filter,
)

__version__ = "0.1.0"

__all__ = [
    "CallableEventWithFilter",
    "Engine",
    "EventEnum",
    "EventFilter",
    "Events",
    "EventsList",
    "RemovableEventHandle",
    "State",
    "__version__",
    "throttle_filter",
    "timeout_filter",
]
