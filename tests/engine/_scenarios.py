"""Differential-testing harness: one scenario description, played on pytorch-ignite 0.5.5 and on ignite_async.

A :class:`Scenario` is plain data (data kind and size, run arguments, handlers on events with filters,
actions to take at given points, what to do after a run returns). :func:`play` builds it on one library
and returns a *trace*: every fired event with ``(epoch, iteration)``, every process-function call with its
batch, every handler call and action, warnings, and how each ``run()`` ended. Two libraries agree on a
scenario when their traces are equal.

pytorch-ignite is the oracle and always runs sync code; ignite_async runs the same scenario with sync or
async process function and handlers, as the scenario says.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.lowlevel
import ignite.engine as ignite_engine

import ignite_async

Trace = list[tuple[Any, ...]]

# ---------------------------------------------------------------- vocabulary

STANDARD_EVENTS = (
    "STARTED",
    "EPOCH_STARTED",
    "GET_BATCH_STARTED",
    "GET_BATCH_COMPLETED",
    "ITERATION_STARTED",
    "ITERATION_COMPLETED",
    "DATALOADER_STOP_ITERATION",
    "EPOCH_COMPLETED",
    "TERMINATE_SINGLE_EPOCH",
    "TERMINATE",
    "INTERRUPT",
    "COMPLETED",
)
# Events with a counter that filters read (State.event_to_attr in both libraries).
FILTERABLE_EVENTS = frozenset((*STANDARD_EVENTS[:6], "EPOCH_COMPLETED", "COMPLETED"))
CUSTOM_EVENT = "CUSTOM_A"

ACTIONS = ("terminate", "terminate_skip", "terminate_epoch", "terminate_epoch_skip", "interrupt", "raise")
ACTION_WEIGHTS = (3, 1, 3, 1, 3, 2)
EXC_MODES = ("swallow", "reraise", "terminate", "interrupt")
# After a run returns, run() again: with no arguments; with the data; with the data and a larger max_epochs
# (or max_iters); with the data and max_epochs (or max_iters) set to ``extra`` (maybe below the state's);
# with the data and an epoch_length one longer (refused when resuming). "switch" (not drawn at random): with the
# data and the other of max_epochs / max_iters than the state has.
RERUNS = ("noargs", "data", "more", "set", "length")
RERUN_WEIGHTS = (3, 3, 3, 1, 1)

# A run whose trace grows past this is stopped: a scenario that loops forever fails instead of hanging.
TRACE_LIMIT = 5000


class ScenarioError(Exception):
    """The exception that the "raise" action raises."""


class TraceLimitError(BaseException):
    """Raised by the harness when a trace grows past :data:`TRACE_LIMIT`; no handler swallows it."""


class IgniteCustomEvents(ignite_engine.EventEnum):
    CUSTOM_A = "custom_a"


class OursCustomEvents(ignite_async.EventEnum):
    CUSTOM_A = "custom_a"


# ---------------------------------------------------------------- scenario description

FilterSpec = tuple[Any, ...]


@dataclass(frozen=True)
class Trigger:
    """Perform ``action`` at the ``k``-th call (``("call", k)``) or when ``(epoch, iteration)`` is
    ``(e, i)`` (``("at", e, i)``). Each trigger fires at most once per engine."""

    when: tuple[Any, ...]
    action: str


@dataclass(frozen=True)
class HandlerSpec:
    label: str
    events: tuple[tuple[str, FilterSpec | None], ...]  # several events are joined with |
    triggers: tuple[Trigger, ...] = ()


@dataclass
class Scenario:
    data_kind: str = "list"  # list | gen (one-shot generator) | iterable (re-iterable, no len) | none
    n: int = 3
    epoch_length: int | None = None
    max_epochs: int | None = None
    max_iters: int | None = None
    handlers: tuple[HandlerSpec, ...] = ()
    process_triggers: tuple[Trigger, ...] = ()
    exc_handler: str | None = None  # None or one of EXC_MODES
    reruns: tuple[str, ...] = ()  # after each run() that returns, the next of these
    extra: int = 1  # how much "more" raises max_epochs / max_iters
    reuse_data: bool = False  # reruns pass the first data object again (an exhausted generator stays so)
    state_dict_resume: bool = False  # at the end, state_dict() -> fresh engine -> load_state_dict -> run
    custom_event: bool = False  # the process function fires CUSTOM_A on every call
    ours_async_process: bool = False
    ours_async_handlers: bool = False
    rerun_after_raise: bool = False  # go on with ``reruns`` after a run() that raised, too


@dataclass(frozen=True)
class Flavour:
    """Which library plays a scenario, and for ignite_async whether to use async callables."""

    library: str  # "ignite" | "ours"
    async_process: bool = False
    async_handlers: bool = False
    prefetch: int = 0  # ours only: run(..., prefetch=N) must not change the trace


IGNITE = Flavour("ignite")


def ours(scenario: Scenario, prefetch: int = 0) -> Flavour:
    return Flavour("ours", scenario.ours_async_process or scenario.custom_event, scenario.ours_async_handlers, prefetch)


# ---------------------------------------------------------------- data


class ReIterable:
    """Iterable again and again, without ``__len__``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Iterator[int]:
        yield from range(self.n)


def _generator(n: int) -> Iterator[int]:
    yield from range(n)


def make_data(scenario: Scenario) -> Any:
    if scenario.data_kind == "list":
        return list(range(scenario.n))
    if scenario.data_kind == "gen":
        return _generator(scenario.n)
    if scenario.data_kind == "iterable":
        return ReIterable(scenario.n)
    return None


# ---------------------------------------------------------------- building one engine


def _custom_filter(modulus: int, remainder: int) -> Callable[[Any, int], bool]:
    def event_filter(engine: Any, event: int) -> bool:
        return event % modulus == remainder

    return event_filter


def make_event(events: Any, custom: Any, name: str, spec: FilterSpec | None) -> Any:
    event = custom[name] if name == CUSTOM_EVENT else events[name]
    if spec is None:
        return event
    kind, *values = spec
    if kind == "every":
        return event(every=values[0])
    if kind == "once":
        once = values[0]
        return event(once=list(once) if isinstance(once, tuple) else once)
    if kind == "before":
        return event(before=values[0])
    if kind == "after":
        return event(after=values[0])
    if kind == "between":
        return event(after=values[0], before=values[1])
    if kind == "every_before":
        return event(every=values[0], before=values[1])
    if kind == "every_after":
        return event(every=values[0], after=values[1])
    if kind == "every_between":
        return event(every=values[0], after=values[1], before=values[2])
    if kind == "custom":
        return event(event_filter=_custom_filter(values[0], values[1]))
    raise AssertionError(f"unknown filter {spec!r}")


def perform(engine: Any, action: str) -> None:
    if action == "terminate":
        engine.terminate()
    elif action == "terminate_skip":
        engine.terminate(skip_completed=True)
    elif action == "terminate_epoch":
        engine.terminate_epoch()
    elif action == "terminate_epoch_skip":
        engine.terminate_epoch(skip_epoch_completed=True)
    elif action == "interrupt":
        engine.interrupt()
    elif action == "raise":
        raise ScenarioError(action)
    else:  # pragma: no cover
        raise AssertionError(f"unknown action {action!r}")


class Actor:
    """Counts the calls of one handler (or the process function) and performs its triggers' actions."""

    def __init__(self, label: str, triggers: tuple[Trigger, ...], trace: Trace) -> None:
        self.label = label
        self.pending = list(triggers)
        self.trace = trace
        self.calls = 0

    def __call__(self, engine: Any) -> None:
        self.calls += 1
        state = engine.state
        due = [
            t
            for t in self.pending
            if (t.when[0] == "call" and t.when[1] == self.calls)
            or (t.when[0] == "at" and (t.when[1], t.when[2]) == (state.epoch, state.iteration))
        ]
        for trigger in due:
            self.pending.remove(trigger)
        for trigger in due:
            self.trace.append(("ACT", self.label, trigger.action))
            perform(engine, trigger.action)


class Player:
    """Plays a scenario on one library, appending to ``trace``."""

    def __init__(self, scenario: Scenario, flavour: Flavour) -> None:
        self.scenario = scenario
        self.flavour = flavour
        self.trace: Trace = []
        self.ignite = flavour.library == "ignite"
        lib: Any = ignite_engine if self.ignite else ignite_async
        self.events = lib.Events
        self.engine_class = lib.Engine
        self.custom = IgniteCustomEvents if self.ignite else OursCustomEvents
        self.engine: Any = None
        self.engines: list[Any] = []
        self.completed = 0  # the oracle's last completed iteration

    # -- recording

    def guard(self) -> None:
        if len(self.trace) > TRACE_LIMIT:
            raise TraceLimitError(f"trace longer than {TRACE_LIMIT}")

    def point(self, engine: Any) -> tuple[int, int]:
        return engine.state.epoch, engine.state.iteration

    def recorder(self, name: str) -> Callable[..., None]:
        def record(engine: Any, iter_counter: int | None = None) -> None:
            self.guard()
            if iter_counter is None:
                self.trace.append((name, *self.point(engine)))
            else:
                self.trace.append((name, *self.point(engine), iter_counter))

        return record

    def show_warning(self, message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        # Both warn UserWarning when the data runs out (the texts differ): a RuntimeWarning here would not match.
        if issubclass(category, UserWarning):
            engine = self.engine
            self.trace.append(("WARN", *(self.point(engine) if engine is not None else (None, None))))

    # -- building

    def build(self) -> Any:
        s = self.scenario
        trace = self.trace
        custom_event = self.custom[CUSTOM_EVENT]
        process_actor = Actor("process", s.process_triggers, trace)

        def before_fire(engine: Any, batch: Any) -> None:
            self.guard()
            trace.append(("PROCESS", *self.point(engine), batch))

        if self.flavour.async_process:

            async def process(engine: Any, batch: Any) -> Any:
                await anyio.lowlevel.checkpoint()
                before_fire(engine, batch)
                if s.custom_event:
                    await engine.fire(custom_event)
                process_actor(engine)
                return batch

            engine = self.engine_class(process)
        else:

            def sync_process(engine: Any, batch: Any) -> Any:
                before_fire(engine, batch)
                if s.custom_event:
                    assert self.ignite, "ignite_async fires custom events from async process functions only"
                    engine.fire_event(custom_event)
                process_actor(engine)
                return batch

            engine = self.engine_class(sync_process)
        self.engines.append(engine)

        if s.custom_event:
            engine.register_events(*self.custom)
        names = [*STANDARD_EVENTS, *([CUSTOM_EVENT] if s.custom_event else [])]
        if self.ignite:  # first on the event: a new run starts with all of its iterations (none) complete
            engine.add_event_handler(self.events.STARTED, self.mark_completed)
        for name in names:
            engine.add_event_handler(make_event(self.events, self.custom, name, None), self.recorder(name))

        for spec in s.handlers:
            events = [make_event(self.events, self.custom, name, f) for name, f in spec.events]
            joined = functools.reduce(operator.or_, events) if len(events) > 1 else events[0]
            engine.add_event_handler(joined, self.handler(spec))

        if s.exc_handler is not None:
            engine.add_event_handler(self.events.EXCEPTION_RAISED, self.exception_handler(s.exc_handler))
        if self.ignite:  # last on the event: the iteration is complete once every handler has run
            engine.add_event_handler(self.events.ITERATION_COMPLETED, self.mark_completed)
        return engine

    def mark_completed(self, engine: Any) -> None:
        self.completed = engine.state.iteration

    def handler(self, spec: HandlerSpec) -> Callable[..., Any]:
        actor = Actor(spec.label, spec.triggers, self.trace)

        def handle(engine: Any, iter_counter: int | None = None) -> None:
            self.guard()
            self.trace.append(("H", spec.label, engine.last_event_name.name, *self.point(engine)))
            actor(engine)

        if not self.flavour.async_handlers:
            return handle

        async def ahandle(engine: Any, iter_counter: int | None = None) -> None:
            await anyio.lowlevel.checkpoint()
            handle(engine, iter_counter)

        return ahandle

    def exception_handler(self, mode: str) -> Callable[..., Any]:
        def on_exception(engine: Any, exc: BaseException) -> None:
            if isinstance(exc, TraceLimitError):
                raise exc
            self.trace.append(("EXC", type(exc).__name__, *self.point(engine), mode))
            if mode == "reraise":
                raise exc
            if mode == "terminate":
                engine.terminate()
            elif mode == "interrupt":
                engine.interrupt()

        if not self.flavour.async_handlers:
            return on_exception

        async def aon_exception(engine: Any, exc: BaseException) -> None:
            await anyio.lowlevel.checkpoint()
            on_exception(engine, exc)

        return aon_exception

    # -- running

    async def run(self, engine: Any, **kwargs: Any) -> Any:
        if not self.ignite:
            return await engine.run(**kwargs, prefetch=self.flavour.prefetch)
        try:
            return engine.run(**kwargs)
        except (ScenarioError, RuntimeError):  # raised inside the run, not by run()'s argument checks
            # A difference on purpose: a failed run of ours rewinds to its last completed iteration, so that
            # the next run redoes the one cut short. The oracle's state is rewound the same way.
            state = engine.state
            state.iteration = self.completed
            if state.epoch_length:
                state.epoch = state.iteration // state.epoch_length
            raise

    def run_kwargs(self, data: Any) -> dict[str, Any]:
        s = self.scenario
        kwargs: dict[str, Any] = {"data": data, "epoch_length": s.epoch_length}
        if s.max_epochs is not None:
            kwargs["max_epochs"] = s.max_epochs
        if s.max_iters is not None:
            kwargs["max_iters"] = s.max_iters
        return kwargs

    def rerun_kwargs(self, engine: Any, rerun: str, first_data: Any) -> dict[str, Any]:
        s = self.scenario
        if rerun == "noargs":
            return {}
        data = first_data if s.reuse_data else make_data(s)
        kwargs: dict[str, Any] = {"data": data, "epoch_length": s.epoch_length}
        # max_epochs / max_iters in the mode the state is in: switching between the two is where the libraries
        # differ (see test_differential.py), so random scenarios do not do it.
        iters_mode = engine.state.max_iters is not None
        if rerun == "more":
            if iters_mode:
                kwargs["max_iters"] = engine.state.max_iters + s.extra
            else:
                kwargs["max_epochs"] = (engine.state.max_epochs or 1) + s.extra
        elif rerun == "set" and iters_mode:
            kwargs["max_iters"] = 2 * s.extra
        elif rerun == "set":
            kwargs["max_epochs"] = s.extra
        elif rerun == "length":
            kwargs["epoch_length"] = (s.epoch_length or s.n) + 1
        elif rerun == "switch" and iters_mode:
            kwargs["max_epochs"] = s.extra
        elif rerun == "switch":
            kwargs["max_iters"] = 2 * s.extra
        return kwargs

    async def drive(self, engine: Any, loaded: bool = False) -> bool:
        """The first run, then a rerun per entry of ``reruns`` while runs return; False if one raised.

        The first run of an engine that loaded a state dict gets only the data: it runs as loaded.
        """
        data = make_data(self.scenario)
        kwargs = {"data": data, "epoch_length": self.scenario.epoch_length} if loaded else self.run_kwargs(data)
        reruns = list(self.scenario.reruns)
        while True:
            self.trace.append(("RUN", tuple(sorted((k, v) for k, v in kwargs.items() if k != "data"))))
            try:
                state = await self.run(engine, **kwargs)
            except (Exception, TraceLimitError) as exc:
                self.trace.append(("RAISED", type(exc).__name__, *self.point(engine)))
                if not (self.scenario.rerun_after_raise and reruns) or isinstance(exc, TraceLimitError):
                    return False
            else:
                self.trace.append(("RETURNED", *self.point(engine), state is engine.state))
                if not reruns:
                    return True
            kwargs = self.rerun_kwargs(engine, reruns.pop(0), data)

    async def play(self) -> Trace:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = self.show_warning
            self.engine = engine = self.build()
            await self.drive(engine)
            if self.scenario.state_dict_resume:
                state_dict = engine.state_dict()
                self.trace.append(("STATE_DICT", tuple(state_dict.items())))
                self.engine = fresh = self.build()
                try:
                    fresh.load_state_dict(state_dict)
                except Exception as exc:
                    self.trace.append(("LOAD_RAISED", type(exc).__name__))
                else:
                    self.trace.append(("LOADED", *self.point(fresh)))
                    await self.drive(fresh, loaded=True)
        trace = list(self.trace)
        self.close()
        return trace

    def close(self) -> None:
        """Close ignite's paused runs now: closed by garbage collection instead, they fire EXCEPTION_RAISED
        on an engine that is gone and print "Exception ignored" noise."""
        for engine in self.engines:
            run = getattr(engine, "_internal_run_generator", None)
            if run is not None:
                engine._internal_run_generator = None
                with contextlib.suppress(BaseException):
                    run.close()


async def play(scenario: Scenario, flavour: Flavour) -> Trace:
    return await Player(scenario, flavour).play()


async def play_both(scenario: Scenario) -> tuple[Trace, Trace]:
    """(ignite's trace, ours) for ``scenario``."""
    return await play(scenario, IGNITE), await play(scenario, ours(scenario))


def explain(ref: Trace, got: Trace, scenario: Scenario, context: int = 6) -> str:
    """A readable account of where two traces part."""
    first = next((i for i, (a, b) in enumerate(zip(ref, got, strict=False)) if a != b), min(len(ref), len(got)))
    lo = max(0, first - context)
    lines = [f"traces differ at entry {first} (ignite has {len(ref)} entries, ours {len(got)})", repr(scenario)]
    lines.append("ignite:")
    lines += [f"  {'>' if i == first else ' '} {i}: {e}" for i, e in enumerate(ref[lo : first + context], lo)]
    lines.append("ours:")
    lines += [f"  {'>' if i == first else ' '} {i}: {e}" for i, e in enumerate(got[lo : first + context], lo)]
    return "\n".join(lines)


# ---------------------------------------------------------------- random scenarios


FILTER_KINDS = (
    "every",
    "once",
    "once_list",
    "before",
    "after",
    "between",
    "every_before",
    "every_after",
    "every_between",
    "custom",
)


def random_filter(rng: random.Random) -> FilterSpec:
    kind = rng.choice(FILTER_KINDS)
    if kind == "every":
        return ("every", rng.randint(1, 4))
    if kind == "once":
        return ("once", rng.randint(1, 10))
    if kind == "once_list":
        return ("once", tuple(sorted(rng.sample(range(1, 13), rng.randint(2, 4)))))
    if kind == "before":
        return ("before", rng.randint(2, 10))  # before <= 1 never passes: ignite_async refuses it
    if kind == "after":
        return ("after", rng.randint(0, 8))
    after = rng.randint(0, 6)
    before = after + rng.randint(2, 8)  # ignite_async rejects windows with no value strictly inside
    if kind == "between":
        return ("between", after, before)
    if kind == "every_before":
        return ("every_before", rng.randint(2, 4), before)
    if kind == "every_after":
        return ("every_after", rng.randint(2, 4), after)
    if kind == "every_between":
        return ("every_between", rng.randint(2, 3), after, before)
    modulus = rng.randint(2, 4)
    return ("custom", modulus, rng.randrange(modulus))


def random_trigger(rng: random.Random, epochs: int, epoch_length: int) -> Trigger:
    action = rng.choices(ACTIONS, ACTION_WEIGHTS)[0]
    if rng.random() < 0.7:
        return Trigger(("call", rng.randint(1, 6)), action)
    epoch = rng.randint(0, epochs)
    iteration = rng.randint(max(0, (epoch - 1) * epoch_length), epoch * epoch_length)
    return Trigger(("at", epoch, iteration), action)


def random_triggers(rng: random.Random, epochs: int, epoch_length: int) -> tuple[Trigger, ...]:
    count = rng.choices((0, 1, 2), (2, 5, 3))[0]
    return tuple(random_trigger(rng, epochs, epoch_length) for _ in range(count))


def random_scenario(rng: random.Random) -> Scenario:
    data_kind = rng.choice(["list"] * 4 + ["gen"] * 2 + ["iterable"] * 2 + ["none"])
    n = rng.randint(1, 7)
    epoch_length = None if data_kind == "list" and rng.random() < 0.5 else rng.randint(1, 8)
    max_epochs = max_iters = None
    if rng.random() < 0.75:
        max_epochs = rng.choice([None, 1, 2, 2, 3, 3, 4])
    else:
        max_iters = rng.randint(1, 12)
        if data_kind == "gen":
            # An exhausted one-shot generator never reaches max_iters: both libraries loop forever.
            data_kind = "iterable"
    length = epoch_length or n
    epochs = max_epochs or (math.ceil(max_iters / length) if max_iters else 1)

    custom_event = rng.random() < 0.15
    event_names = [*STANDARD_EVENTS, *([CUSTOM_EVENT] * 2 if custom_event else [])]
    handlers = []
    for index in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        count = 1 if rng.random() < 0.75 else rng.randint(2, 3)
        events = []
        for name in rng.sample(event_names, count):
            spec = random_filter(rng) if name in FILTERABLE_EVENTS and rng.random() < 0.5 else None
            events.append((name, spec))
        handlers.append(HandlerSpec(f"h{index}", tuple(events), random_triggers(rng, epochs, length)))

    return Scenario(
        data_kind=data_kind,
        n=n,
        epoch_length=epoch_length,
        max_epochs=max_epochs,
        max_iters=max_iters,
        handlers=tuple(handlers),
        process_triggers=random_triggers(rng, epochs, length),
        exc_handler=rng.choices([None, *EXC_MODES], (8, 5, 3, 2, 2))[0],
        reruns=tuple(rng.choices(RERUNS, RERUN_WEIGHTS, k=rng.choices((0, 1, 2, 3), (3, 3, 2, 1))[0])),
        extra=rng.randint(1, 3),
        reuse_data=rng.random() < 0.5,
        state_dict_resume=rng.random() < 0.3,
        custom_event=custom_event,
        ours_async_process=rng.random() < 0.5,
        ours_async_handlers=rng.random() < 0.5,
    )


def random_scenarios(seed: int, count: int) -> list[Scenario]:
    rng = random.Random(seed)
    return [random_scenario(rng) for _ in range(count)]
