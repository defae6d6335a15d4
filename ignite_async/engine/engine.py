"""The :class:`Engine`: runs a process function over data and fires events to handlers."""

from __future__ import annotations

import logging
import numbers
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from ignite_async.engine._data import DataFeed, check_pass_record
from ignite_async.engine._grace import GraceScopes
from ignite_async.engine._handlers import (
    Entry,
    check_callable_signature,
    describe,
    is_async_callable,
    make_entry,
)
from ignite_async.engine._loop import drive, run_body
from ignite_async.engine.background import BackgroundHandler, EngineStatistics, TaskHandle, _EngineView, in_background
from ignite_async.engine.events import (
    CallableEventWithFilter,
    EventEnum,
    Events,
    EventsList,
    RemovableEventHandle,
)
from ignite_async.engine.state import DEFAULT_EVENT_TO_ATTR, State
from ignite_async.engine.streams import EventStream

if TYPE_CHECKING:
    from ignite_async.handlers.tracer import Tracer

__all__ = ["Engine"]

ProcessFunction = Callable[["Engine", Any], Any] | Callable[["Engine", Any], Awaitable[Any]]

# Arguments that handlers of these events receive after the engine, used to check signatures early.
_EVENT_ARGS: dict[str, tuple[Any, ...]] = {"EXCEPTION_RAISED": (Exception(),)}
_EVENT_KWARGS: dict[str, dict[str, Any]] = {"TERMINATE_SINGLE_EPOCH": {"iter_counter": 0}}


def _event_key(event: Any) -> str:
    """Handlers are stored by event name, which is how pytorch-ignite's events compare and hash."""
    return event if isinstance(event, str) else event.name


def _check_count(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def _is_handler(entry: Entry, handler: Any) -> bool:
    registered = entry[6].handler
    return bool(registered == handler) or (isinstance(registered, BackgroundHandler) and registered.handler == handler)


def _builtin_event_hint(event: object) -> str:
    """For a string that names a built-in event (``"epoch_completed"``, ``"Events.EPOCH_COMPLETED"``): say so."""
    if not isinstance(event, str):
        return ""
    wanted = event.strip().removeprefix("Events.").upper().replace("-", "_").replace(" ", "_")
    if wanted in Events.__members__:
        return f"use Events.{wanted}, not a string; or "
    return "built-in events are members of Events (e.g. Events.EPOCH_COMPLETED), not strings; or "


def _check_data(data: object, role: str) -> None:
    iterable = hasattr(data, "__iter__") or hasattr(data, "__aiter__")
    if isinstance(data, type) and iterable:  # e.g. DataLoader itself: its instances are iterable, not it
        raise TypeError(
            f"{role} must be an iterable object, got the class {describe(data)} itself: "
            f"pass an instance (e.g. {data.__name__}(...))"
        )
    if not iterable:
        shown = f"the class {describe(data)}" if isinstance(data, type) else type(data).__name__
        raise TypeError(f"{role} must be an iterable or an async iterable, got {shown}")


def _data_length(data: object) -> int | None:
    try:
        return len(data) if hasattr(data, "__len__") else None
    except TypeError:  # e.g. a DataLoader over an IterableDataset
        return None


class Engine:
    """Runs ``process_function(engine, batch)`` over data, firing :class:`~ignite_async.Events` to handlers.

    The process function and the handlers may be plain functions or ``async def``; async ones are awaited
    where a sync one would be called, so the order of effects is the same. Data is any iterable or async
    iterable. Event order, counters and the batches seen are those of pytorch-ignite 0.5.5.

    :param process_function: ``f(engine, batch) -> output``, sync or async; its result is ``state.output``.
    :raises TypeError: if ``process_function`` cannot be called as ``f(engine, batch)``.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> def step(engine, batch):
    ...     return batch * 2
    >>> trainer = Engine(step)
    >>> @trainer.on(Events.EPOCH_COMPLETED)
    ... def report(engine):
    ...     print(f"epoch {engine.state.epoch}: last output {engine.state.output}")
    >>> state = asyncio.run(trainer.run([1, 2, 3], max_epochs=2))
    epoch 1: last output 6
    epoch 2: last output 6
    """

    #: False makes :meth:`interrupt` raise ``RuntimeError``, as in pytorch-ignite 0.5.5 (which then also runs its
    #: pre-0.4.10 loop; here the loop is the same either way, since only interrupt() depends on it).
    interrupt_resume_enabled: bool = True

    def __init__(self, process_function: ProcessFunction) -> None:
        if process_function is None:
            raise ValueError("Engine needs a process function, got None")
        check_callable_signature(process_function, "process_function", ("engine", "batch"), {})
        self._process_function = process_function
        self._process_is_async = is_async_callable(process_function)
        self.logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.state = State()
        self.last_event_name: Any = None

        self._event_handlers: dict[str, list[Entry]] = {}
        self._allowed_events: dict[str, Any] = {}
        self._event_to_attr: dict[str, str] = dict(DEFAULT_EVENT_TO_ATTR)
        self.state._event_to_attr = self._event_to_attr  # what state.get_event_attrib_value() consults
        self._state_dict_user_keys: list[str] = []

        # Stop requests; `_stop_requested` caches "any of them" so the loop checks one attribute.
        self._should_terminate: bool | str = False
        self._should_terminate_single_epoch: bool | str = False
        self._should_interrupt = False
        self._data_switched = False  # set_data() mid-run: the old data is closed at the next stop point
        self._stop_requested = False

        self._feed = DataFeed(self)  # the data iterator across epochs, pauses and runs
        self._init_iter: int | None = None
        self._run_generator: Coroutine[Any, Any, None] | None = None  # a paused run (see _loop)
        self._running = False
        self._run_started_at: float | None = None
        # Shielded work (fetches from a one-shot stream) that a cancellation gives a grace period to finish.
        self._grace = GraceScopes()

        # Concurrency (see background.py): the run's task group, tasks in it, the first failure among them.
        self._task_group: TaskGroup | None = None
        self._tasks_active = 0
        self._tasks_idle: anyio.Event | None = None
        self._loop_thread = threading.get_ident()
        self._background_error: BaseException | None = None
        self._background_handlers: list[BackgroundHandler] = []
        self._completed_iteration = 0
        # (iteration, epoch, output, (epoch_length, max_epochs, max_iters)) at the last iteration's end.
        self._last_completed: tuple[int, int, Any, tuple[int | None, int | None, int | None]] | None = None
        self._run_bounds: tuple[int | None, int | None, int | None] = (None, None, None)  # set by each run()
        # _last_completed when the current data was given: still the same object means that no iteration has
        # completed on that data, so data that then runs out gave nothing at all (see _loop: an error).
        self._data_given_at: Any = None
        self._data_unused = True  # the current data had not already ended when it was given (see _give_data)
        self._cancelling = False  # INTERRUPT handlers are running because the run was cancelled
        # Awaited when a run ends however it ends (not when it pauses), with the error that ended it (None: it
        # completed or was terminated): loggers flush and set the run's status, event streams close.
        # Not an event: a handler on EXCEPTION_RAISED would swallow the run's errors.
        self._run_end_callbacks: list[Callable[[BaseException | None], Awaitable[None]]] = []
        # Set by Tracer.attach: the loop, handler calls and task starts record spans only while it is set.
        self._tracer: Tracer | None = None
        #: Seconds that INTERRUPT handlers get, shielded, when the run is cancelled from outside.
        self.cancel_grace_period = 10.0

        self.register_events(*Events)

    # ------------------------------------------------------------------ events and handlers

    def register_events(self, *event_names: str | EventEnum, event_to_attr: Mapping[Any, str] | None = None) -> None:
        """Allow handlers on, and firing of, custom events.

        :param event_names: members of an :class:`~ignite_async.EventEnum` subclass (or plain strings).
        :param event_to_attr: for filtered handlers on these events, the state attribute a filter counts.
        :raises TypeError: for anything that is not an event.
        :raises ValueError: if ``event_to_attr`` is not a mapping (as pytorch-ignite 0.5.5 does).

        >>> from ignite_async import Engine, EventEnum
        >>> class Custom(EventEnum):
        ...     BACKWARD_COMPLETED = "backward_completed"
        >>> engine = Engine(lambda engine, batch: None)
        >>> engine.register_events(*Custom)
        >>> engine.has_registered_events(Custom.BACKWARD_COMPLETED)
        True
        """
        if event_to_attr is not None and not isinstance(event_to_attr, Mapping):
            raise ValueError(
                f"event_to_attr must be a mapping (e.g. a dict) from event to state attribute, got {event_to_attr!r} "
                f"of type {type(event_to_attr).__name__}"
            )
        for index, event in enumerate(event_names):
            if not isinstance(event, (str, EventEnum)):
                raise TypeError(
                    f"register_events takes EventEnum members or strings; argument {index} is {event!r} "
                    f"of type {type(event).__name__}"
                )
            key = _event_key(event)
            self._allowed_events[key] = event
            if event_to_attr and event in event_to_attr:
                attr = event_to_attr[event]
                self._event_to_attr[key] = attr
                if not hasattr(self.state, attr):
                    setattr(self.state, attr, 0)

    def has_registered_events(self, event: Any) -> bool:
        """Whether ``event`` is one this engine can fire."""
        return isinstance(event, (str, CallableEventWithFilter)) and _event_key(event) in self._allowed_events

    def _registered_key(self, event: Any, action: str) -> str:
        if isinstance(event, EventsList):
            raise TypeError(f"{action} takes a single event here, got the events list {event!r}")
        if not isinstance(event, (str, CallableEventWithFilter)):
            raise TypeError(f"{action} needs an event (a member of Events or of a registered EventEnum), got {event!r}")
        key = _event_key(event)
        if key not in self._allowed_events:
            raise ValueError(
                f"{event!r} is not registered with this engine: {_builtin_event_hint(event)}call "
                "engine.register_events(...) with a custom event first"
            )
        return key

    def add_event_handler(
        self, event_name: Any, handler: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> RemovableEventHandle:
        """Call ``handler`` (sync or async) each time ``event_name`` fires and its filter passes.

        The handler is called as ``handler(engine, *args, **kwargs)``, or ``handler(*args, **kwargs)`` if it
        does not take the engine. ``EXCEPTION_RAISED`` handlers also get the exception after the engine;
        ``TERMINATE_SINGLE_EPOCH`` handlers get ``iter_counter=`` if they accept it.

        :param event_name: an event, a filtered event such as ``Events.ITERATION_COMPLETED(every=10)``, or
            several joined with ``|``.
        :raises TypeError: if ``handler``'s signature cannot take these arguments, or ``event_name`` is no event.
        :raises ValueError: if the event is not registered, or is filtered but has no counter to filter on.
        :return: a handle whose ``remove()`` detaches the handler.

        >>> from ignite_async import Engine, Events
        >>> engine = Engine(lambda engine, batch: None)
        >>> async def log_remote(engine, tag):
        ...     ...
        >>> handle = engine.add_event_handler(Events.ITERATION_COMPLETED(every=100), log_remote, "train")
        >>> engine.has_event_handler(log_remote, Events.ITERATION_COMPLETED)
        True
        """
        if isinstance(event_name, EventsList):
            for event in event_name:
                self.add_event_handler(event, handler, *args, **kwargs)
            return RemovableEventHandle(event_name, handler, self)
        key = self._registered_key(event_name, "add_event_handler")
        event_filter = event_name.filter if isinstance(event_name, CallableEventWithFilter) else None
        filter_attr = None
        if event_filter is not None:
            filter_attr = self._event_to_attr.get(key)
            if filter_attr is None:
                raise ValueError(
                    f"{event_name!r} has a filter but {key} counts nothing to filter on; register it with "
                    "event_to_attr={event: 'state_attribute'} to filter it"
                )
        entry = make_entry(
            self,
            handler,
            args,
            kwargs,
            event_args=_EVENT_ARGS.get(key, ()),
            event_kwargs=_EVENT_KWARGS.get(key, {}),
            event_filter=event_filter,
            filter_attr=filter_attr,
            event_name=key,
        )
        if isinstance(handler, BackgroundHandler):
            entry = (handler.bind(self, entry[6].passes_engine), entry[1], entry[2], True, *entry[4:])
            if handler not in self._background_handlers:
                self._background_handlers.append(handler)
        # Appending in place (removal rebinds the list) gives pytorch-ignite's behaviour for handlers
        # added or removed while the same event is being fired.
        self._event_handlers.setdefault(key, []).append(entry)
        return RemovableEventHandle(event_name, handler, self)

    def on(self, event_name: Any, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of :meth:`add_event_handler`; returns the function unchanged.

        >>> from ignite_async import Engine, Events
        >>> engine = Engine(lambda engine, batch: None)
        >>> @engine.on(Events.EPOCH_COMPLETED | Events.COMPLETED)
        ... async def checkpoint(engine):
        ...     ...
        """

        def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.add_event_handler(event_name, handler, *args, **kwargs)
            return handler

        return decorator

    def has_event_handler(self, handler: Callable[..., Any], event_name: Any = None) -> bool:
        """Whether ``handler`` is attached to ``event_name`` (to any of them for a list, to any event if ``None``)."""
        if event_name is None:
            lists: Iterable[list[Entry]] = self._event_handlers.values()
        elif isinstance(event_name, EventsList):
            return any(self.has_event_handler(handler, event) for event in event_name)
        else:
            lists = [self._event_handlers.get(self._registered_key(event_name, "has_event_handler"), [])]
        return any(_is_handler(entry, handler) for entries in lists for entry in entries)

    def remove_event_handler(self, handler: Callable[..., Any], event_name: Any) -> None:
        """Detach ``handler`` from ``event_name``.

        :raises ValueError: if it is not attached there.
        """
        if isinstance(event_name, EventsList):
            for event in event_name:
                self.remove_event_handler(handler, event)
            return
        key = self._registered_key(event_name, "remove_event_handler")
        entries = self._event_handlers.get(key)
        if entries is None:
            raise ValueError(f"no handler is attached to {event_name!r}")
        kept = [entry for entry in entries if not _is_handler(entry, handler)]
        if len(kept) == len(entries):
            raise ValueError(f"handler {describe(handler)} is not attached to {event_name!r}")
        self._event_handlers[key] = kept

    async def fire(self, event: Any) -> None:
        """Run the handlers of ``event`` now, e.g. a custom event from an async process function.

        :raises ValueError: if ``event`` is not registered with this engine.

        >>> import asyncio
        >>> from ignite_async import Engine, EventEnum
        >>> class Backprop(EventEnum):
        ...     BACKWARD_COMPLETED = "backward_completed"
        >>> async def step(engine, batch):
        ...     await engine.fire(Backprop.BACKWARD_COMPLETED)
        >>> engine = Engine(step)
        >>> engine.register_events(*Backprop)
        >>> _ = engine.add_event_handler(Backprop.BACKWARD_COMPLETED, lambda: print("backward done"))
        >>> _ = asyncio.run(engine.run([0]))
        backward done
        """
        self._registered_key(event, "fire")
        await self._fire_event(event)

    async def _fire_event(self, event: Any, *event_args: Any, **event_kwargs: Any) -> None:
        self.last_event_name = event
        handlers = self._event_handlers.get(_event_key(event))
        if not handlers:
            return
        if event_args or event_kwargs:
            await self._call_handlers_with(handlers, event_args, event_kwargs)
        else:
            await self._call_handlers(handlers)

    async def _call_handlers(self, handlers: list[Entry]) -> None:
        # The hot path: every decision was made at registration (see _handlers.make_entry).
        if self._tracer is not None:
            return await self._call_handlers_traced(handlers, None, {})
        state = self.state
        for fn, args, kwargs, is_async, event_filter, attr, _ in handlers:
            if event_filter is not None and not event_filter(self, getattr(state, attr)):  # type: ignore[arg-type]
                continue
            if is_async:
                await fn(*args, **kwargs)
            elif type(result := fn(*args, **kwargs)) is CoroutineType:
                await result  # e.g. lambda engine: evaluator.run(data), ported from pytorch-ignite

    async def _call_handlers_with(
        self, handlers: list[Entry], event_args: tuple[Any, ...], event_kwargs: dict[str, Any]
    ) -> None:
        if self._tracer is not None:
            return await self._call_handlers_traced(handlers, event_args, event_kwargs)
        state = self.state
        for fn, _, kwargs, is_async, event_filter, attr, info in handlers:
            if event_filter is not None and not event_filter(self, getattr(state, attr)):  # type: ignore[arg-type]
                continue
            given = event_args if info.takes_event_args else ()
            head = (self, *given) if info.passes_engine else given
            extra = {k: v for k, v in event_kwargs.items() if k in info.accepted_event_kwargs}
            result = fn(*head, *info.args, **kwargs, **extra)
            if is_async or type(result) is CoroutineType:
                await result

    async def _call_handlers_traced(
        self, handlers: list[Entry], event_args: tuple[Any, ...] | None, event_kwargs: dict[str, Any]
    ) -> None:
        """The two loops above in one, with the firing and each handler call recorded by the tracer
        (``event_args`` None: the fast path's call form)."""
        tracer = self._tracer
        assert tracer is not None
        state = self.state
        firing = tracer.begin(_event_key(self.last_event_name), "event")
        ran = False
        for fn, args, kwargs, is_async, event_filter, attr, info in handlers:
            if event_filter is not None and not event_filter(self, getattr(state, attr)):  # type: ignore[arg-type]
                continue
            ran = True
            call = tracer.begin(tracer.name_of(info.handler), "handler")
            if event_args is None:
                result = fn(*args, **kwargs)
            else:
                given = event_args if info.takes_event_args else ()
                head = (self, *given) if info.passes_engine else given
                extra = {k: v for k, v in event_kwargs.items() if k in info.accepted_event_kwargs}
                result = fn(*head, *info.args, **kwargs, **extra)
            if is_async or type(result) is CoroutineType:
                await result
            tracer.end(call)
        tracer.end(firing, keep=ran)  # a firing whose filters let no handler run is not shown

    # ------------------------------------------------------------------ stopping

    @property
    def should_terminate(self) -> bool | str:
        """Set by :meth:`terminate`: ``True``, ``"skip_completed"``, or ``False``."""
        return self._should_terminate

    @should_terminate.setter
    def should_terminate(self, value: bool | str) -> None:
        self._should_terminate = value
        self._update_stop_requested()

    @property
    def should_terminate_single_epoch(self) -> bool | str:
        """Set by :meth:`terminate_epoch`: ``True``, ``"skip_epoch_completed"``, or ``False``."""
        return self._should_terminate_single_epoch

    @should_terminate_single_epoch.setter
    def should_terminate_single_epoch(self, value: bool | str) -> None:
        self._should_terminate_single_epoch = value
        self._update_stop_requested()

    @property
    def should_interrupt(self) -> bool:
        """Set by :meth:`interrupt`."""
        return self._should_interrupt

    @should_interrupt.setter
    def should_interrupt(self, value: bool) -> None:
        self._should_interrupt = value
        self._update_stop_requested()

    def _clear_stop_requests(self) -> None:
        self._should_terminate = self._should_terminate_single_epoch = self._should_interrupt = False
        self._data_switched = False  # what set_data() dropped before the run is closed as it starts
        self._stop_requested = False

    def _update_stop_requested(self) -> None:
        self._stop_requested = bool(
            self._should_terminate
            or self._should_terminate_single_epoch
            or self._should_interrupt
            or self._data_switched
            or self._background_error is not None
        )

    def terminate(self, skip_completed: bool = False) -> None:
        """Stop the run after the current event: fires ``TERMINATE``, then ``COMPLETED`` unless ``skip_completed``.

        Called mid-epoch, that epoch's ``EPOCH_COMPLETED`` does not fire. Safe to call from a handler, the
        process function or another task.
        """
        self.logger.info("Terminate signaled; the engine stops after the current event.")
        self.should_terminate = "skip_completed" if skip_completed else True

    def terminate_epoch(self, skip_epoch_completed: bool = False) -> None:
        """End the current epoch after the current event: fires ``TERMINATE_SINGLE_EPOCH``, then
        ``EPOCH_COMPLETED`` (unless ``skip_epoch_completed``), and the run goes on with the next epoch,
        whose data starts afresh.
        """
        self.logger.info("Terminate epoch signaled; the epoch ends after the current event.")
        self.should_terminate_single_epoch = "skip_epoch_completed" if skip_epoch_completed else True

    def interrupt(self) -> None:
        """Pause the run after the current event: ``INTERRUPT`` fires and :meth:`run` returns; calling
        :meth:`run` again resumes exactly where it stopped.

        >>> import asyncio
        >>> from ignite_async import Engine, Events
        >>> engine = Engine(lambda engine, batch: None)
        >>> _ = engine.add_event_handler(Events.ITERATION_COMPLETED(once=2), lambda e: e.interrupt())
        >>> state = asyncio.run(engine.run(range(3), max_epochs=2))
        >>> state.iteration
        2
        >>> state = asyncio.run(engine.run(range(3)))
        >>> state.iteration, state.epoch
        (6, 2)

        :raises RuntimeError: if :attr:`interrupt_resume_enabled` is False.
        """
        if not self.interrupt_resume_enabled:
            raise RuntimeError(
                "Engine 'interrupt/resume' feature is disabled. "
                "Please, set Engine.interrupt_resume_enabled=True to enable it"
            )
        self.logger.info("Interrupt signaled; the engine pauses after the current event.")
        self.should_interrupt = True

    # ------------------------------------------------------------------ data

    def set_data(self, data: Any) -> None:
        """Read the next batches from ``data``, keeping ``epoch_length`` and the counters (as pytorch-ignite 0.5.5).

        The next batch the process function gets is ``data``'s first; the epoch still ends after
        ``epoch_length`` iterations, and if ``data`` runs out first it restarts (``DATALOADER_STOP_ITERATION``).
        Called from a handler or the process function (e.g. a curriculum that changes datasets at an epoch), or
        between runs: a paused run resumes on ``data``. ``data`` is read with the run's ``prefetch``.

        The old data is no longer the engine's: its iterator is dropped, and an async one is closed (``aclose``)
        at the next event. A generator given before is closed too, as whenever the engine is given other data;
        a batch of it read ahead by ``prefetch`` is lost.

        :param data: an iterable or async iterable (not ``None``).
        :raises TypeError: if ``data`` is not iterable.
        :raises RuntimeError: if called from a thread other than the running engine's.

        >>> import asyncio
        >>> from ignite_async import Engine, Events
        >>> seen = []
        >>> engine = Engine(lambda engine, batch: seen.append(batch))
        >>> _ = engine.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.set_data("ABC"))
        >>> _ = asyncio.run(engine.run([1, 2, 3], max_epochs=2))
        >>> seen
        [1, 2, 3, 'A', 'B', 'C']
        """
        _check_data(data, "set_data()'s data")
        if self._running and threading.get_ident() != self._loop_thread:
            raise RuntimeError("set_data() must be called from the event loop's thread, not from a worker thread")
        self._give_data(data)
        self._setup_dataloader_iter()
        if self._running:
            # The dropped iterator is closed (awaited) at the loop's next stop point.
            self._data_switched = True
            self._update_stop_requested()

    # ------------------------------------------------------------------ state dict

    @property
    def state_dict_user_keys(self) -> list[str]:
        """Names of user state attributes that :meth:`state_dict` saves and :meth:`load_state_dict` needs."""
        return self._state_dict_user_keys

    def state_dict(self) -> OrderedDict[str, Any]:
        """The resumable part of the state: ``epoch_length``, ``iteration``, ``max_epochs`` or ``max_iters``,
        and every key in :attr:`state_dict_user_keys`.

        While the engine reads a map-style ``torch.utils.data.DataLoader``, a ``"data_pass"`` key records the
        current pass over it: the states of the generators its iterator draws from when the pass began (torch's
        default one or the loader's ``generator``, and a sampler's own ``generator``: ByteTensors of a few KB),
        the sampler epoch it was given and the iteration it began after. A state loaded from the middle of
        that pass resumes it exactly: the next :meth:`run` skips the batches already used without loading them.

        >>> from ignite_async import Engine
        >>> engine = Engine(lambda engine, batch: None)
        >>> engine.load_state_dict({"epoch": 3, "max_epochs": 10, "epoch_length": 100})
        >>> dict(engine.state_dict())
        {'epoch_length': 100, 'iteration': 300, 'max_epochs': 10}
        """
        keys = [
            "epoch_length",
            "iteration",
            "max_iters" if self.state.max_iters is not None else "max_epochs",
        ]
        keys += self._state_dict_user_keys
        state_dict = OrderedDict((k, getattr(self.state, k)) for k in keys)
        if self._feed.pass_record is not None:
            state_dict["data_pass"] = dict(self._feed.pass_record)
        return state_dict

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (or a dict giving ``epoch`` instead of ``iteration``); the next
        :meth:`run` continues from there. With a ``"data_pass"`` (see :meth:`state_dict`) from the middle of
        a pass, that run's first pass over its map-style DataLoader starts where the saved one was; without
        it (older state dicts, other data), the first pass starts from the loader's beginning.

        :raises TypeError: if ``state_dict`` is not a mapping.
        :raises ValueError: naming any missing or inconsistent key.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        if self._running:
            raise RuntimeError("load_state_dict() cannot be called while the engine is running")
        if "iteration" in state_dict and "epoch" in state_dict:
            raise ValueError(
                "state_dict must hold one of 'iteration' or 'epoch', not both: "
                f"iteration={state_dict['iteration']}, epoch={state_dict['epoch']}"
            )
        if "epoch_length" not in state_dict:
            raise ValueError(f"state_dict lacks the required key 'epoch_length' (has {sorted(state_dict)})")
        if "iteration" not in state_dict and "epoch" not in state_dict:
            raise ValueError(f"state_dict lacks both 'iteration' and 'epoch' (has {sorted(state_dict)})")
        if ("max_epochs" in state_dict) == ("max_iters" in state_dict):
            raise ValueError(
                f"state_dict must hold exactly one of 'max_epochs' and 'max_iters' (has {sorted(state_dict)})"
            )
        missing = [k for k in self._state_dict_user_keys if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict lacks the user state keys {missing} named in state_dict_user_keys")
        epoch_length = state_dict["epoch_length"]
        _check_count("epoch_length", epoch_length)
        if "iteration" in state_dict:
            iteration = state_dict["iteration"]
            epoch = 0 if iteration == 0 or epoch_length is None else iteration // epoch_length
        else:
            epoch = state_dict["epoch"]
            if epoch_length is None:
                raise ValueError("state_dict gives 'epoch' but no epoch_length to compute the iteration from")
            iteration = epoch * epoch_length
        max_epochs = state_dict.get("max_epochs")
        max_iters = state_dict.get("max_iters")
        _check_count("max_epochs", max_epochs)
        _check_count("max_iters", max_iters)
        data_pass = state_dict.get("data_pass")
        if data_pass is not None:
            data_pass = check_pass_record(data_pass, iteration)
        if max_epochs is not None and max_epochs < epoch:
            raise ValueError(f"max_epochs={max_epochs} is below the state's epoch {epoch}")
        if max_iters is not None and max_iters < iteration:
            raise ValueError(f"max_iters={max_iters} is below the state's iteration {iteration}")
        for key in self._state_dict_user_keys:
            setattr(self.state, key, state_dict[key])
        self.state.epoch_length = epoch_length
        self.state.iteration = iteration
        self.state.epoch = epoch
        self.state.max_epochs = max_epochs
        self.state.max_iters = max_iters
        # A loaded state starts a new pass over the data (one where its saved pass was, for a map-style
        # DataLoader; a one-shot stream continues) and a fresh run.
        self._feed.end_pass()
        self._feed.resume_at(data_pass, iteration)
        self._discard_paused_run()
        self._init_iter = None

    # ------------------------------------------------------------------ running

    @staticmethod
    def _is_done(state: State) -> bool:
        if state.max_iters is not None and state.iteration >= state.max_iters:
            return True
        if state.max_epochs is None:
            return False
        if state.epoch_length is not None and state.iteration >= state.epoch_length * state.max_epochs:
            return True
        return state.epoch >= state.max_epochs

    async def run(
        self,
        data: Any = None,
        max_epochs: int | None = None,
        epoch_length: int | None = None,
        max_iters: int | None = None,
        *,
        prefetch: int = 0,
    ) -> State:
        """Run the process function over ``data`` until ``max_epochs`` or ``max_iters``; return the state.

        A first call (or one after the previous run completed) starts a new run, with ``max_epochs=1``
        by default. After :meth:`interrupt`, or with a larger ``max_epochs`` than a finished run had, it
        resumes where the state stands.

        :param data: an iterable (list, generator, ``DataLoader``) or async iterable, or ``None`` with
            ``epoch_length`` to call the process function with ``batch=None``.
        :param max_epochs: epochs to run to; excludes ``max_iters``.
        :param epoch_length: iterations per epoch; defaults to ``len(data)`` and is required for data
            without a length. Shorter than the data: the next epoch continues the same iterator. Longer:
            the data restarts, firing ``DATALOADER_STOP_ITERATION``.
        :param max_iters: iterations to run to; excludes ``max_epochs``.
        :param prefetch: read up to this many batches ahead, concurrently with the step (a sync iterable
            in a worker thread, an async one in a task). Events, counters and batches stay exactly as
            without it; a loader error surfaces at the iteration that would have consumed it.
        :raises TypeError: for data that is not iterable, or counts that are not integers.
        :raises ValueError: for counts < 1, empty data, data without length and no ``epoch_length``,
            or ``max_epochs`` together with ``max_iters``.
        :raises RuntimeError: if this engine is already running.

        >>> import asyncio
        >>> from ignite_async import Engine
        >>> async def step(engine, batch):
        ...     return batch
        >>> async def batches():
        ...     for i in range(100):
        ...         yield i
        >>> state = asyncio.run(Engine(step).run(batches(), epoch_length=10, max_epochs=3))
        >>> state.iteration, state.output
        (30, 29)
        """
        if self._running:
            raise RuntimeError("run() was called while this engine is already running")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int):
            raise TypeError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be an integer >= 0, got {prefetch}")
        self._prepare_run(data, max_epochs, epoch_length, max_iters)
        self._feed.prefetch = prefetch
        try:
            state = await self._run_in_task_group()
        except BaseException as exc:
            if self._run_generator is None:  # the run ended (not paused): tell who waits for that, and how
                await self._notify_run_end(exc)
            raise
        if self._run_generator is None:
            await self._notify_run_end(None)
        return state

    async def _notify_run_end(self, error: BaseException | None) -> None:
        # Shielded and bounded, like INTERRUPT on cancellation: loggers flush, streams close. Every callback
        # runs; the first failure fails a run that otherwise ended well (a logger's last records refused),
        # and is logged beside the error that ended a run that did not.
        failure: Exception | None = None
        with anyio.move_on_after(self.cancel_grace_period, shield=True):
            for callback in list(self._run_end_callbacks):
                try:
                    await callback(error)
                except Exception as exc:
                    if error is not None or failure is not None:
                        self.logger.exception("An end-of-run callback failed")
                    else:
                        failure = exc
        if failure is not None:
            raise failure

    async def _run_in_task_group(self) -> State:
        if self._run_generator is None:
            self._run_generator = run_body(self)
        self._running = True
        self._background_error = None
        self._tasks_active = 0  # the previous run's task group left no task behind
        self._loop_thread = threading.get_ident()
        self._grace.reset()
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                watching = anyio.CancelScope()
                # Tells shielded fetches when a cancellation arrives that the loop, inside one, cannot see.
                task_group.start_soon(self._grace.watch, self.cancel_grace_period, watching)
                try:
                    await self._feed.close_abandoned()
                    if await drive(self._run_generator):
                        self._run_generator = None
                    else:
                        await self._feed.suspend()  # paused: no reading ahead until resumed
                except BaseException as exc:
                    self._run_generator = None
                    if isinstance(exc, anyio.get_cancelled_exc_class()):
                        raise  # the task group cancels and awaits our tasks, then propagates it
                    # Raised outside the task group, so that it is not wrapped in an ExceptionGroup.
                    error = exc
                    task_group.cancel_scope.cancel()
                finally:
                    watching.cancel()
        except anyio.get_cancelled_exc_class():
            if error is None:
                raise
            # Cancelled from outside while the task group waited for its tasks: the run's own error
            # (e.g. InterruptHandlerError, raised in place of that very cancellation) must not be lost.
        finally:
            self._task_group = None
            self._running = False
        if error is None and self._background_error is not None:
            # A task failed after the loop was done with it (a paused run, or a task started by COMPLETED):
            # report it as the loop would, and leave nothing half-done to resume.
            error = self._background_error
            self._discard_paused_run()
            self._init_iter = None
            await self._feed.release()
            if self._event_handlers.get("EXCEPTION_RAISED"):
                await self._fire_event(Events.EXCEPTION_RAISED, error)
        if error is not None:
            raise error
        return self.state

    def _discard_paused_run(self) -> None:
        run, self._run_generator = self._run_generator, None
        if run is not None:
            run.close()  # a paused run that will not be resumed

    def _rewind(self, batch_in_hand: bool) -> None:
        """Back to the last completed iteration, as a run that ends cut short (cancelled, failed, Ctrl-C)
        leaves it: the next run() redoes the iteration that did not complete, and a one-shot stream gives
        its batch again (``batch_in_hand``: that batch had been taken)."""
        state = self.state
        if batch_in_hand:
            self._feed.hold_for_replay(state.batch)
        state.iteration = self._completed_iteration
        if state.epoch_length:
            state.epoch = state.iteration // state.epoch_length
        self._init_iter = None

    # ------------------------------------------------------------------ concurrency

    def spawn(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> TaskHandle:
        """Start ``async_fn(*args)`` as a task in the engine's own task group and return its handle.

        The task may outlive the handler that started it; the run waits for it before ``COMPLETED``
        (or, when started by a ``COMPLETED`` handler, before :meth:`run` returns), and its failure fails
        the run.

        :raises TypeError: if ``async_fn`` is not an async callable.
        :raises RuntimeError: if the engine is not running.

        >>> import asyncio
        >>> from ignite_async import Engine, Events
        >>> engine = Engine(lambda engine, batch: None)
        >>> async def upload(epoch):
        ...     await asyncio.sleep(0.01)
        ...     print(f"uploaded epoch {epoch}")
        >>> _ = engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.spawn(upload, e.state.epoch))
        >>> _ = asyncio.run(engine.run([1, 2], max_epochs=2))
        uploaded epoch 1
        uploaded epoch 2
        """
        if not is_async_callable(async_fn):
            raise TypeError(f"spawn() needs an async callable (an async def function), got {async_fn!r}")
        check_callable_signature(async_fn, "spawn()'s function", args, {})
        handle = TaskHandle(describe(async_fn))
        self._start_task(handle._run, async_fn, args, name=handle.name)
        return handle

    def subscribe(self, event: Any, *, buffer: int = 100) -> EventStream:
        """A stream of state snapshots at each firing of ``event``, until the run ends.

        A slow consumer never blocks training: past ``buffer`` waiting snapshots the oldest is dropped
        (counted in ``stream.dropped``).

        :raises ValueError: if ``event`` is not registered, or ``buffer < 1``.

        >>> import asyncio
        >>> from ignite_async import Engine, Events
        >>> async def main():
        ...     engine = Engine(lambda e, b: b)
        ...     async with asyncio.TaskGroup() as tg, engine.subscribe(Events.EPOCH_COMPLETED) as stream:
        ...         tg.create_task(engine.run([1, 2], max_epochs=3))
        ...         return [state.epoch async for state in stream]
        >>> asyncio.run(main())
        [1, 2, 3]
        """
        return EventStream(self, event, buffer)

    def statistics(self) -> EngineStatistics:
        """Tasks running now and, per background handler, fired/started/completed/failed/skipped/coalesced
        counts and time spent."""
        stats = EngineStatistics(tasks_running=self._tasks_active)
        for handler in self._background_handlers:
            name, n = handler.stats.name, 2
            while name in stats.background:
                name, n = f"{handler.stats.name}#{n}", n + 1
            stats.background[name] = handler.stats
        return stats

    def _start_task(
        self, async_fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None, kind: str = "task"
    ) -> None:
        if self._task_group is None:
            raise RuntimeError(
                "this engine is not running: tasks can only be started while run() is in progress "
                "(from a handler or the process function)"
            )
        if threading.get_ident() != self._loop_thread:
            raise RuntimeError(
                "tasks can only be started from the event loop's thread, not from a worker thread "
                "(e.g. a sync handler wrapped in background()): make that handler async"
            )
        if self._tracer is not None:  # the task's span, on a lane of its own, says which event started it
            event = None if self.last_event_name is None else _event_key(self.last_event_name)
            async_fn = self._tracer.wrap_task(async_fn, name or describe(async_fn), kind, event)
        self._task_group.start_soon(self._tracked, async_fn, args)
        self._tasks_active += 1  # counted only once it is really started

    async def _tracked(self, async_fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        in_background.set(True)  # this task's own context: the loop's is untouched
        try:
            await async_fn(*args)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:  # any failure of a task fails the run
            if self._background_error is None:
                self.logger.error("A background task failed, failing the run: %r", exc)
                self._background_error = exc
                self._update_stop_requested()
                # Whatever waits for tasks (the drain, backpressure) must stop waiting and fail the run.
                if self._tasks_idle is not None:
                    self._tasks_idle.set()
                    self._tasks_idle = None
                for handler in self._background_handlers:
                    handler.wake_waiters()
        finally:
            self._tasks_active -= 1
            if self._tasks_active == 0 and self._tasks_idle is not None:
                self._tasks_idle.set()
                self._tasks_idle = None

    async def _drain(self) -> None:
        """Wait until every task started so far has finished, or one has failed."""
        while self._tasks_active and self._background_error is None:
            if self._tasks_idle is None:
                self._tasks_idle = anyio.Event()
            await self._tasks_idle.wait()

    def _snapshot_view(self) -> Any:
        # Shallow: counters, output, batch and user fields as they are now; metrics and times copied.
        return _EngineView(self, self.state._copy())

    def last_completed_state(self) -> State | None:
        """A snapshot of the state at the end of the last completed iteration, or ``None`` before the first.

        ``engine.state`` read while a step runs (e.g. by a web request) shows that step's iteration and
        ``output=None``; this shows the iteration that completed last, after its ``ITERATION_COMPLETED``
        handlers: its ``iteration``, ``epoch`` and ``output``, and its run's ``epoch_length``, ``max_epochs``
        and ``max_iters``. ``metrics``, ``times`` and user fields are those of the state now (a shallow copy,
        as for background handlers); ``batch`` is ``None``, so that no batch is kept alive. It never waits,
        and it is safe to call from any task or thread; after a run ends (however it ends) it gives the last
        iteration that completed. The engine only records the counters and output at each iteration's end:
        the copy is made here.

        >>> import asyncio
        >>> from ignite_async import Engine
        >>> engine = Engine(lambda engine, batch: batch * 10)
        >>> engine.last_completed_state() is None
        True
        >>> _ = asyncio.run(engine.run([1, 2, 3]))
        >>> last = engine.last_completed_state()
        >>> last.iteration, last.epoch, last.output
        (3, 1, 30)
        """
        last = self._last_completed
        if last is None:
            return None
        iteration, epoch, output, (epoch_length, max_epochs, max_iters) = last
        return self.state._copy(
            iteration=iteration,
            epoch=epoch,
            output=output,
            batch=None,
            epoch_length=epoch_length,
            max_epochs=max_epochs,
            max_iters=max_iters,
        )

    def _prepare_run(self, data: Any, max_epochs: int | None, epoch_length: int | None, max_iters: int | None) -> None:
        """Validate run()'s arguments and set the state up for a new or a resumed run (pytorch-ignite's rules)."""
        if data is not None:
            _check_data(data, "data")
        for name, value in (
            ("max_epochs", max_epochs),
            ("epoch_length", epoch_length),
            ("max_iters", max_iters),
        ):
            _check_count(name, value)
        if max_epochs is not None and max_iters is not None:
            raise ValueError("max_epochs and max_iters are mutually exclusive: give one of them")
        state = self.state
        # A paused run, or a state with iterations left, is resumed; anything else starts a new run.
        resuming = self._run_generator is not None or not self._is_done(state)
        if max_iters is not None and state.max_epochs is not None and resuming:
            raise ValueError(
                "this engine is resuming a run bounded by max_epochs; set engine.state.max_epochs = None "
                "to start again with max_iters"
            )
        if max_epochs is not None and state.max_iters is not None and resuming:
            raise ValueError(
                "this engine is resuming a run bounded by max_iters; set engine.state.max_iters = None "
                "to start again with max_epochs"
            )
        if max_epochs is not None and state.max_epochs is not None:
            if max_epochs < state.epoch:
                raise ValueError(
                    f"max_epochs={max_epochs} is below the state's epoch {state.epoch}; set "
                    "engine.state.max_epochs = None to start the run again from the beginning"
                )
            state.max_epochs = max_epochs
        if max_iters is not None and state.max_iters is not None:
            if max_iters < state.iteration:
                raise ValueError(
                    f"max_iters={max_iters} is below the state's iteration {state.iteration}; set "
                    "engine.state.max_iters = None to start the run again from the beginning"
                )
            state.max_iters = max_iters

        new_run = (state.max_epochs is None and state.max_iters is None) or (
            self._is_done(state) and self._run_generator is None
        )
        if new_run:
            if epoch_length is None:
                if data is None:
                    epoch_length = state.epoch_length
                    if epoch_length is None:
                        raise ValueError("epoch_length is required when data is None")
                else:
                    epoch_length = _data_length(data)
                    if epoch_length == 0:
                        raise ValueError("data is empty: it has length 0")
                    if epoch_length is None:
                        raise ValueError(
                            f"data of type {type(data).__name__} has no length: pass epoch_length= "
                            "(iterations per epoch)"
                        )
            state.iteration = 0
            state.epoch = 0
            state.max_epochs = 1 if max_iters is None and max_epochs is None else max_epochs
            state.max_iters = max_iters
            state.epoch_length = epoch_length
            self._discard_paused_run()
            # A new run reads the data given to it afresh, not what a paused run's iterator had left.
            self._feed.end_pass()
            self._give_data(data)
            self.logger.info("Engine run starting with max_epochs=%s max_iters=%s.", state.max_epochs, max_iters)
        else:
            if state.epoch_length is not None:
                if epoch_length is not None and epoch_length != state.epoch_length:
                    raise ValueError(
                        f"epoch_length={epoch_length} differs from the resumed state's {state.epoch_length}"
                    )
            else:
                epoch_length = epoch_length if epoch_length is not None else _data_length(data)
                if epoch_length is None:
                    raise ValueError("the state has no epoch_length and the data has no length: pass epoch_length=")
                if epoch_length == 0:
                    raise ValueError("data is empty: it has length 0")
                state.epoch_length = epoch_length
            self.logger.info("Engine run resuming from iteration %s, epoch %s.", state.iteration, state.epoch)
            if self._should_terminate:
                # Resuming a terminated run: its next epoch counts from 0.
                self._init_iter = 0
            if self._feed.iterator is None:
                self._give_data(data)
        # (epoch_length, max_epochs, max_iters) of this run, for last_completed_state(); one tuple per run().
        self._run_bounds = (state.epoch_length, state.max_epochs, state.max_iters)

    def _give_data(self, data: Any) -> None:
        if data is not self.state.dataloader:  # the same data given again may have yielded before
            self._data_given_at = self._last_completed
            # Data that gives nothing in its first epoch is an error (see _loop), unless it may have been used up
            # before it was given (an ended generator, any other iterator): that only warns, as in pytorch-ignite.
            frame = getattr(data, "gi_frame", getattr(data, "ag_frame", False))
            if frame is not False:  # a generator: not ended yet
                self._data_unused = frame is not None
            else:  # a loader, iterated afresh each pass, unlike an iterator
                self._data_unused = not (hasattr(data, "__next__") or hasattr(data, "__anext__"))
        self.state.dataloader = data

    def _setup_dataloader_iter(self, for_next_epoch: bool = False) -> None:
        # Epochs count from 0 for samplers; after terminate_epoch() the new pass is the next epoch's.
        state = self.state
        self._feed.start_pass(state.dataloader, state.epoch_length, state.epoch if for_next_epoch else state.epoch - 1)

    def _setup_engine(self) -> None:
        self._setup_dataloader_iter()
        if self._init_iter is None:
            iteration = self.state.iteration
            if self.state.epoch_length is not None:
                iteration %= self.state.epoch_length
            self._init_iter = iteration
