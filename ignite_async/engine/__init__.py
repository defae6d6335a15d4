"""The engine, its events and its state."""

from __future__ import annotations

from ignite_async.engine.engine import Engine
from ignite_async.engine.events import (
    CallableEventWithFilter,
    EventEnum,
    Events,
    EventsList,
    RemovableEventHandle,
)
from ignite_async.engine.filters import EventFilter, throttle_filter, timeout_filter
from ignite_async.engine.state import State

__all__ = [
    "CallableEventWithFilter",
    "Engine",
    "EventEnum",
    "EventFilter",
    "Events",
    "EventsList",
    "RemovableEventHandle",
    "State",
    "throttle_filter",
    "timeout_filter",
]
