"""Stop training when the output holds a NaN or an infinity."""

from __future__ import annotations

import cmath
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ignite_async.engine import Engine

__all__ = ["TerminateOnNan"]


def _all_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        # One reduction on the tensor's device; reading back one bool is the only sync.
        return bool(torch.isfinite(value).all())
    if isinstance(value, numbers.Real):
        return math.isfinite(value)
    if isinstance(value, complex):
        return cmath.isfinite(value)
    if isinstance(value, Mapping):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return all(_all_finite(v) for v in value)
    return True


class TerminateOnNan:
    """Terminate the engine when ``output_transform(state.output)`` holds a NaN or an infinity.

    Numbers and tensors are checked, also inside lists, tuples and dicts (as pytorch-ignite does).

    >>> import asyncio, math
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import TerminateOnNan
    >>> engine = Engine(lambda e, b: math.nan if b == 3 else float(b))
    >>> _ = engine.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())
    >>> asyncio.run(engine.run(range(10))).iteration
    4
    """

    def __init__(self, output_transform: Callable[[Any], Any] = lambda x: x) -> None:
        if not callable(output_transform):
            raise TypeError(f"output_transform must be callable, got {output_transform!r}")
        self._output_transform = output_transform

    def __call__(self, engine: Engine) -> None:
        output = self._output_transform(engine.state.output)
        if not _all_finite(output):
            engine.logger.warning("TerminateOnNan: output %r contains NaN or Inf; stopping", output)
            engine.terminate()
