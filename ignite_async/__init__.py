"""ignite_async: an async-native, event-driven training loop for PyTorch.

>>> import asyncio
>>> from ignite_async import Engine, Events
>>> engine = Engine(lambda engine, batch: batch)
>>> asyncio.run(engine.run([1, 2, 3], max_epochs=2)).iteration
6
"""

from __future__ import annotations

from ignite_async.engine import (
    BackgroundHandler,
    BackgroundStatistics,
    CallableEventWithFilter,
    Engine,
    EngineStatistics,
    EventEnum,
    EventFilter,
    Events,
    EventsList,
    EventStream,
    InterruptHandlerError,
    RemovableEventHandle,
    State,
    TaskHandle,
    background,
    create_supervised_evaluator,
    create_supervised_trainer,
    throttle_filter,
    timeout_filter,
)

__version__ = "0.1.0"

__all__ = [
    "BackgroundHandler",
    "BackgroundStatistics",
    "CallableEventWithFilter",
    "Engine",
    "EngineStatistics",
    "EventEnum",
    "EventFilter",
    "EventStream",
    "Events",
    "EventsList",
    "InterruptHandlerError",
    "RemovableEventHandle",
    "State",
    "TaskHandle",
    "__version__",
    "background",
    "create_supervised_evaluator",
    "create_supervised_trainer",
    "throttle_filter",
    "timeout_filter",
]
