"""Events an :class:`~ignite_async.Engine` fires, their filters, and how they combine.

An event is a member of an :class:`EventEnum`. Calling a member with ``every``, ``once``,
``before``, ``after`` or ``event_filter`` returns a *filtered* event with the same name;
``a | b`` attaches one handler to several events and ``a & b`` requires both filters to pass
for the same firing. All validation happens here, when the event is built, so a mistake is
reported at the line that made it.
"""

from __future__ import annotations

import numbers
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from types import DynamicClassAttribute
from typing import TYPE_CHECKING, Any, Union

from ignite_async.engine._handlers import check_callable_signature
from ignite_async.engine.filters import (
    EventFilter,
    all_of,
    before_and_after_filter,
    every_before_and_after_filter,
    every_filter,
    once_filter,
)

if TYPE_CHECKING:
    from ignite_async.engine.engine import Engine

__all__ = ["CallableEventWithFilter", "EventEnum", "Events", "EventsList", "RemovableEventHandle"]


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class CallableEventWithFilter:
    """An event, optionally carrying a filter ``filter(engine, event_value) -> bool``.

    Events compare and hash by name only, as in pytorch-ignite, so ``Events.ITERATION_COMPLETED(every=5)``
    is "the same event" as ``Events.ITERATION_COMPLETED`` for registration and removal.
    """

    filter: EventFilter | None

    def __init__(self, value: str, event_filter: EventFilter | None = None, name: str | None = None) -> None:
        self.filter = event_filter
        if not hasattr(self, "_value_"):
            self._value_ = value
        if not hasattr(self, "_name_") and name is not None:
            self._name_ = name

    @DynamicClassAttribute
    def name(self) -> str:
        """The event's name, e.g. ``"ITERATION_COMPLETED"``."""
        return self._name_

    @DynamicClassAttribute
    def value(self) -> str:
        """The event's value, e.g. ``"iteration_completed"``."""
        return self._value_

    def __call__(
        self,
        event_filter: EventFilter | None = None,
        every: int | None = None,
        once: int | Sequence[int] | None = None,
        before: int | None = None,
        after: int | None = None,
    ) -> CallableEventWithFilter:
        """Return this event restricted by a filter.

        :param event_filter: ``f(engine, event_value) -> bool``; excludes every other argument.
        :param every: fire on every ``every``-th value (counted from ``after`` when given).
        :param once: fire only at this value or these values.
        :param before: fire only while the value is below ``before``.
        :param after: fire only once the value is above ``after``.
        :raises ValueError: for non-positive or non-integer counts, and for combinations that make no sense.
        :raises TypeError: if ``event_filter`` is not callable.

        >>> from ignite_async import Events
        >>> Events.ITERATION_COMPLETED(every=100)
        Events.ITERATION_COMPLETED(every=100)
        """
        window = every is not None or before is not None or after is not None
        given = (event_filter is not None) + (once is not None) + window
        if given != 1:
            raise ValueError(
                f"{self.name}(...) takes exactly one of: event_filter, once, or every/before/after "
                "(every may be combined with before and after); "
                f"got event_filter={event_filter!r}, once={once!r}, every={every!r}, "
                f"before={before!r}, after={after!r}"
            )
        if event_filter is not None and not callable(event_filter):
            raise TypeError(f"event_filter must be a callable (engine, event) -> bool, got {event_filter!r}")
        if every is not None and not (_is_int(every) and every > 0):
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if before is not None and not (_is_int(before) and before >= 0):
            raise ValueError(f"before must be a non-negative integer, got {before!r}")
        if after is not None and not (_is_int(after) and after >= 0):
            raise ValueError(f"after must be a non-negative integer, got {after!r}")
        if before is not None and before <= (after or 0) + 1:
            raise ValueError(
                f"before={before} and after={after or 0} leave no value strictly between them: "
                "the handler would never run"
            )
        if once is not None:
            values = list(once) if isinstance(once, Sequence) and not isinstance(once, str) else [once]
            if not (values and all(_is_int(v) and v > 0 for v in values)):
                raise ValueError(f"once must be a positive integer or a non-empty list of them, got {once!r}")
            event_filter = once_filter(int(v) for v in values)
        elif before is not None or after is not None:
            if every is not None:
                event_filter = every_before_and_after_filter(every, before, after)
            else:
                event_filter = before_and_after_filter(before, after)
        elif every is not None:
            event_filter = None if every == 1 else every_filter(every)
        if event_filter is not None:
            check_callable_signature(event_filter, "event_filter", ("engine", "event"), {})
        return CallableEventWithFilter(self.value, event_filter, self.name)

    @staticmethod
    def default_event_filter(engine: Engine, event: int) -> bool:
        """A filter that passes every firing: deprecated, as in pytorch-ignite 0.5.5; use no filter (``None``).

        >>> import warnings
        >>> from ignite_async import Events
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     Events.default_event_filter(None, 1)
        True
        >>> caught[0].category.__name__
        'UserWarning'
        """
        warnings.warn(
            "Events.default_event_filter is deprecated and will be removed. Please, use None instead",
            UserWarning,  # pytorch-ignite's category, so that code ported from it sees the same warning
            stacklevel=2,
        )
        return True

    def __repr__(self) -> str:
        out = f"Events.{self.name}"
        if self.filter is not None:
            out += f"({self.filter!r})"
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CallableEventWithFilter):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name_)

    def __or__(self, other: Any) -> EventsList:
        return EventsList._from([self, other])

    def __and__(self, other: Any) -> CallableEventWithFilter | EventsList:
        """``a & b``: handlers run only when both ``a``'s and ``b``'s filters pass for the same firing.

        The filters are consulted left to right and the right one only when the left passed, so a
        stateful filter on the right (:func:`~ignite_async.throttle_filter`) counts only the firings that
        reached it. Both sides must name the same event.

        >>> from ignite_async import Events, throttle_filter
        >>> event = Events.ITERATION_COMPLETED(every=10) & Events.ITERATION_COMPLETED(
        ...     event_filter=throttle_filter(30.0)
        ... )
        """
        if isinstance(other, EventsList):
            return EventsList._from(self & e for e in other)
        if not isinstance(other, CallableEventWithFilter):
            return NotImplemented
        if self.name != other.name:
            raise ValueError(
                f"cannot combine {self!r} & {other!r}: a firing is of one event, so both sides of & must name "
                "the same event (use | to run a handler on either)"
            )
        return CallableEventWithFilter(self.value, all_of(self.filter, other.filter), self.name)

    def __rand__(self, other: Any) -> CallableEventWithFilter | EventsList:
        if isinstance(other, EventsList):
            return EventsList._from(e & self for e in other)
        return NotImplemented


class EventEnum(CallableEventWithFilter, Enum):
    """Base class of :class:`Events` and of user-defined events.

    >>> from ignite_async import EventEnum
    >>> class BackpropEvents(EventEnum):
    ...     BACKWARD_STARTED = "backward_started"
    ...     BACKWARD_COMPLETED = "backward_completed"
    """

    def __new__(cls, value: str) -> EventEnum:
        obj = CallableEventWithFilter.__new__(cls)
        obj._value_ = value
        return obj

    # Enum installs its own __hash__/__eq__/__repr__; keep the name-based ones above.
    __hash__ = CallableEventWithFilter.__hash__
    __eq__ = CallableEventWithFilter.__eq__
    __repr__ = CallableEventWithFilter.__repr__


class Events(EventEnum):
    """Events fired by :meth:`Engine.run <ignite_async.Engine.run>`, in pytorch-ignite's order.

    - ``STARTED``, then per epoch ``EPOCH_STARTED``;
    - per iteration ``GET_BATCH_STARTED``, ``GET_BATCH_COMPLETED`` (before the iteration counter moves),
      ``ITERATION_STARTED``, ``ITERATION_COMPLETED``;
    - ``DATALOADER_STOP_ITERATION`` when the data runs out before the epoch does (it is then restarted);
    - ``TERMINATE_SINGLE_EPOCH`` after :meth:`~ignite_async.Engine.terminate_epoch`, ``EPOCH_COMPLETED``;
    - ``TERMINATE`` after :meth:`~ignite_async.Engine.terminate` or when ``max_iters`` is reached;
    - ``INTERRUPT`` after :meth:`~ignite_async.Engine.interrupt`; ``EXCEPTION_RAISED`` with ``(engine, exc)``;
    - ``COMPLETED`` at the end.
    """

    EPOCH_STARTED = "epoch_started"
    EPOCH_COMPLETED = "epoch_completed"
    STARTED = "started"
    COMPLETED = "completed"
    ITERATION_STARTED = "iteration_started"
    ITERATION_COMPLETED = "iteration_completed"
    EXCEPTION_RAISED = "exception_raised"
    GET_BATCH_STARTED = "get_batch_started"
    GET_BATCH_COMPLETED = "get_batch_completed"
    DATALOADER_STOP_ITERATION = "dataloader_stop_iteration"
    TERMINATE = "terminate"
    TERMINATE_SINGLE_EPOCH = "terminate_single_epoch"
    INTERRUPT = "interrupt"


AnyEvent = Union[CallableEventWithFilter, "EventsList", str]


class EventsList:
    """Several events, built with ``|``; a handler added for it is added for each member.

    >>> from ignite_async import Events
    >>> events = Events.STARTED | Events.COMPLETED | Events.ITERATION_STARTED(every=3)
    >>> len(events)
    3
    """

    def __init__(self) -> None:
        self._events: list[CallableEventWithFilter] = []

    @classmethod
    def _from(cls, events: Any) -> EventsList:
        out = cls()
        for e in events:
            out._append(e)
        return out

    def _append(self, event: Any) -> None:
        if isinstance(event, EventsList):
            self._events.extend(event)
            return
        if not isinstance(event, CallableEventWithFilter):
            raise TypeError(f"only events can be combined with |, got {event!r} of type {type(event).__name__}")
        self._events.append(event)

    def __getitem__(self, item: int) -> CallableEventWithFilter:
        return self._events[item]

    def __iter__(self) -> Iterator[CallableEventWithFilter]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def __or__(self, other: Any) -> EventsList:
        out = EventsList._from(self._events)
        out._append(other)
        return out

    def __and__(self, other: Any) -> EventsList:
        if isinstance(other, EventsList):
            return EventsList._from(a & b for a in self for b in other)
        if not isinstance(other, CallableEventWithFilter):
            return NotImplemented
        return EventsList._from(e & other for e in self)

    def __repr__(self) -> str:
        return " | ".join(repr(e) for e in self._events)


class RemovableEventHandle:
    """Returned by :meth:`Engine.add_event_handler <ignite_async.Engine.add_event_handler>`; removes that handler.

    It holds weak references only, and doubles as a context manager that removes the handler on exit.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> engine = Engine(lambda engine, batch: None)
    >>> def report() -> None:
    ...     print("epoch done")
    >>> with engine.add_event_handler(Events.EPOCH_COMPLETED, report):
    ...     _ = asyncio.run(engine.run([1, 2]))
    epoch done
    >>> engine.has_event_handler(report)
    False
    """

    def __init__(self, event_name: AnyEvent, handler: Callable[..., Any], engine: Engine) -> None:
        self.event_name = event_name
        self.handler = weakref.ref(handler)
        self.engine = weakref.ref(engine)

    def remove(self) -> None:
        """Remove the handler from the engine; a no-op if it or the engine is gone already."""
        handler = self.handler()
        engine = self.engine()
        if handler is None or engine is None:
            return
        events = self.event_name if isinstance(self.event_name, EventsList) else [self.event_name]
        for e in events:
            if engine.has_event_handler(handler, e):
                engine.remove_event_handler(handler, e)

    def __enter__(self) -> RemovableEventHandle:
        return self

    def __exit__(self, *args: object) -> None:
        self.remove()
