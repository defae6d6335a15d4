"""Stop training when a score stops improving."""

from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ignite_async.engine import Engine, Events

__all__ = ["EarlyStopping"]


def as_score(value: Any, source: Callable[..., Any]) -> float:
    """``value`` as a float, or a TypeError naming ``source``: scores must be real numbers."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:  # a 0-d tensor or numpy scalar
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"score function {getattr(source, '__qualname__', source)!r} returned {value!r}: need a number")
    return float(value)


class EarlyStopping:
    """Terminate ``trainer`` after ``patience`` firings without an improvement of ``score_function(engine)``.

    Semantics are pytorch-ignite's: the first score sets the best; a score improves when it beats the best by
    more than ``min_delta`` (``mode="max"``: higher is better). Without ``cumulative_delta`` the best also
    creeps up with non-improving scores; with it, it moves only on improvements. Attach it to an evaluator's
    ``COMPLETED`` (:meth:`attach` does, and resets it when the trainer starts).

    :param patience: firings without improvement before terminating, >= 1.
    :param score_function: ``f(engine) -> number``.
    :param trainer: the engine to terminate.
    :param min_delta: the smallest change that counts as an improvement (``threshold`` in pytorch-ignite 0.5.5).
    :param cumulative_delta: measure the change from the last improvement rather than the last score.
    :param mode: ``"max"`` or ``"min"``.
    :param min_delta_mode: ``"abs"`` (best ± min_delta) or ``"rel"`` (best * (1 ± min_delta)).
    :raises ValueError: for ``patience < 1``, a negative ``min_delta`` or an unknown mode.
    :raises TypeError: if ``score_function`` is not callable or ``trainer`` not an Engine.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.handlers import EarlyStopping
    >>> scores = iter([0.5, 0.6, 0.6, 0.55, 0.9])
    >>> trainer, evaluator = Engine(lambda e, b: None), Engine(lambda e, b: None)
    >>> stopper = EarlyStopping(patience=2, score_function=lambda e: next(scores), trainer=trainer)
    >>> stopper.attach(evaluator, reset_engine=trainer)
    >>> @trainer.on(Events.EPOCH_COMPLETED)
    ... async def validate(engine):
    ...     await evaluator.run([0])
    >>> asyncio.run(trainer.run([0], max_epochs=10)).epoch  # 0.6 was not beaten twice
    4
    """

    def __init__(
        self,
        patience: int,
        score_function: Callable[[Engine], Any],
        trainer: Engine,
        min_delta: float = 0.0,
        cumulative_delta: bool = False,
        *,
        mode: Literal["min", "max"] = "max",
        min_delta_mode: Literal["abs", "rel"] = "abs",
    ) -> None:
        if not callable(score_function):
            raise TypeError(f"score_function must be callable, got {score_function!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if not isinstance(trainer, Engine):
            raise TypeError(f"trainer must be an ignite_async Engine, got {type(trainer).__name__}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or min_delta < 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if min_delta_mode not in ("abs", "rel"):
            raise ValueError(f"min_delta_mode must be 'abs' or 'rel', got {min_delta_mode!r}")
        self.patience: int = patience
        self.score_function: Callable[[Engine], Any] = score_function
        self.trainer: Engine = trainer
        self.min_delta: float = float(min_delta)
        self.cumulative_delta: bool = cumulative_delta
        self.mode: str = mode
        self.min_delta_mode: str = min_delta_mode
        self.counter: int = 0
        self.best_score: float | None = None

    def __call__(self, engine: Engine) -> None:
        score = as_score(self.score_function(engine), self.score_function)
        if self.best_score is None:
            self.best_score = score
            return
        delta = -self.min_delta if self.mode == "min" else self.min_delta
        bar = self.best_score + delta if self.min_delta_mode == "abs" else self.best_score * (1 + delta)
        improved = score > bar if self.mode == "max" else score < bar
        if improved:
            self.best_score = score
            self.counter = 0
            return
        if not self.cumulative_delta:
            self.best_score = max(score, self.best_score) if self.mode == "max" else min(score, self.best_score)
        self.counter += 1
        if self.counter >= self.patience:
            self.trainer.logger.info("EarlyStopping: no improvement in %d firings, stopping", self.counter)
            self.trainer.terminate()

    def reset(self) -> None:
        """Forget the best score and the count (a new training run)."""
        self.counter = 0
        self.best_score = None

    def attach(
        self,
        engine: Engine,
        event: Any = Events.COMPLETED,
        reset_engine: Engine | None = None,
        reset_event: Any = Events.STARTED,
    ) -> None:
        """Check the score on ``engine``'s ``event`` and reset on ``reset_engine``'s (default: ``engine``)."""
        engine.add_event_handler(event, self)
        (reset_engine or engine).add_event_handler(reset_event, self.reset)

    def state_dict(self) -> OrderedDict[str, Any]:
        return OrderedDict([("counter", self.counter), ("best_score", self.best_score)])

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        missing = [k for k in ("counter", "best_score") if k not in state_dict]
        if missing:
            raise ValueError(f"EarlyStopping state_dict lacks {missing}")
        self.counter = int(state_dict["counter"])
        self.best_score = state_dict["best_score"]
