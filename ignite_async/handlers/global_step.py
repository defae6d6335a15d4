"""Log one engine's records at another engine's step (pytorch-ignite's ``global_step_from_engine``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ignite_async.engine import Engine

__all__ = ["global_step_from_engine"]


def global_step_from_engine(
    engine: Engine, custom_event_name: Any = None, fallback_attr: str = "epoch"
) -> Callable[[Any, Any], int]:
    """A ``global_step_transform`` for loggers that reads the step from ``engine`` (typically the trainer).

    The returned function ``(engine_, event_name) -> int`` ignores the engine it is called with (an
    evaluator, say) and returns ``engine.state.get_event_attrib_value(event)``: the trainer's epoch for
    epoch events, its iteration for iteration events. ``event`` is ``custom_event_name`` if given, or else
    the event the logger fired on. An event that counts nothing (a custom event registered without
    ``event_to_attr``) gives ``engine.state.<fallback_attr>``.

    :param engine: the engine whose counters give the step.
    :param custom_event_name: the event whose counter to read, whatever the logger fired on; None for that event.
    :param fallback_attr: the state attribute read for an event that counts nothing.
    :return: a function usable as ``global_step_transform``.
    :raises TypeError: for an ``engine`` that is not an ignite_async ``Engine``, or a ``fallback_attr`` that is
        not a string (at the call, rather than at the first logged record).

    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import global_step_from_engine
    >>> trainer, evaluator = Engine(lambda e, b: None), Engine(lambda e, b: None)
    >>> trainer.state.epoch, trainer.state.iteration = 3, 120
    >>> global_step_from_engine(trainer)(evaluator, Events.EPOCH_COMPLETED)
    3
    >>> global_step_from_engine(trainer, Events.ITERATION_COMPLETED)(evaluator, Events.COMPLETED)
    120

    With a logger, the evaluator's records are logged at the trainer's epoch::

        logger.attach_output_handler(evaluator, Events.COMPLETED, "validation", metric_names="all",
                                     global_step_transform=global_step_from_engine(trainer))
    """
    if not isinstance(engine, Engine):
        raise TypeError(
            f"engine must be the ignite_async Engine whose counters give the step (the trainer), got "
            f"{type(engine).__module__}.{type(engine).__name__}"
        )
    if not isinstance(fallback_attr, str):
        raise TypeError(f"fallback_attr must be the name (str) of a state attribute, got {fallback_attr!r}")

    def global_step(_: Any, event_name: Any) -> int:
        event = event_name if custom_event_name is None else custom_event_name
        try:
            return engine.state.get_event_attrib_value(event)
        except RuntimeError:  # the event counts nothing
            value: int = getattr(engine.state, fallback_attr)
            return value

    return global_step
