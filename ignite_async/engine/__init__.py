"""The engine, its events and its state."""

from __future__ import annotations

from ignite_async.engine.background import (
    BackgroundHandler,
    BackgroundStatistics,
    EngineStatistics,
    TaskHandle,
    background,
)
from ignite_async.engine.engine import Engine
from ignite_async.engine.errors import InterruptHandlerError
from ignite_async.engine.events import (
    CallableEventWithFilter,
    EventEnum,
    Events,
    EventsList,
    RemovableEventHandle,
)
from ignite_async.engine.filters import EventFilter, throttle_filter, timeout_filter
from ignite_async.engine.state import State
from ignite_async.engine.streams import EventStream
from ignite_async.engine.supervised import create_supervised_evaluator, create_supervised_trainer

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
    "background",
    "create_supervised_evaluator",
    "create_supervised_trainer",
    "throttle_filter",
    "timeout_filter",
]
