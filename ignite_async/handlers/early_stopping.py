"""Stop training when a score stops improving."""

from __future__ import annotations

import logging
import numbers
import warnings
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

    Semantics, arguments and log records are pytorch-ignite 0.5.5's: the first score sets the best; a score
    improves when it beats the best by more than ``threshold`` (``mode="max"``: higher is better). Without
    ``cumulative`` the best also creeps up with non-improving scores; with it, it moves only on improvements.
    Each firing without improvement logs ``EarlyStopping: counter / patience`` at DEBUG on :attr:`logger`, the
    one that stops logs ``EarlyStopping: Stop training`` at INFO. Attach it to an evaluator's ``COMPLETED``
    (:meth:`attach` does, and resets it when the trainer starts).

    :param patience: firings without improvement before terminating, an integer >= 1.
    :param score_function: ``f(engine) -> number``.
    :param trainer: the engine to terminate.
    :param threshold: the smallest change that counts as an improvement, >= 0.
    :param cumulative: measure the change from the last improvement rather than from the best so far.
    :param threshold_mode: ``"abs"`` (best ± threshold) or ``"rel"`` (best * (1 ± threshold)).
    :param mode: ``"max"`` or ``"min"``.
    :param min_delta: deprecated name of ``threshold`` (a ``DeprecationWarning``, as in 0.5.5); given, it wins.
    :param min_delta_mode: deprecated name of ``threshold_mode``.
    :param cumulative_delta: deprecated name of ``cumulative``.
    :raises ValueError: for ``patience < 1``, a negative ``threshold`` or an unknown mode.
    :raises TypeError: if ``score_function`` is not callable, ``trainer`` not an Engine, ``cumulative`` not a
        bool.

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
        threshold: float = 0.0,
        cumulative: bool = False,
        threshold_mode: Literal["abs", "rel"] = "abs",
        mode: Literal["min", "max"] = "max",
        # Deprecated names, as pytorch-ignite 0.5.5 keeps them
        min_delta: float | None = None,
        min_delta_mode: Literal["abs", "rel"] | None = None,
        cumulative_delta: bool | None = None,
    ) -> None:
        if not callable(score_function):
            raise TypeError(f"score_function must be callable, got {score_function!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        if not isinstance(trainer, Engine):
            raise TypeError(f"trainer must be an ignite_async Engine, got {type(trainer).__name__}")
        if min_delta is not None:
            _deprecated("min_delta", "threshold")
            threshold = min_delta
        if min_delta_mode is not None:
            _deprecated("min_delta_mode", "threshold_mode")
            threshold_mode = min_delta_mode
        if cumulative_delta is not None:
            _deprecated("cumulative_delta", "cumulative")
            cumulative = cumulative_delta
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or threshold < 0:
            raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")
        if not isinstance(cumulative, bool):
            raise TypeError(f"cumulative must be a bool, got {cumulative!r}")
        if threshold_mode not in ("abs", "rel"):
            raise ValueError(f"threshold_mode must be 'abs' or 'rel', got {threshold_mode!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience: int = patience
        self.score_function: Callable[[Engine], Any] = score_function
        self.trainer: Engine = trainer
        self.threshold: float = float(threshold)
        self.cumulative: bool = cumulative
        self.threshold_mode: str = threshold_mode
        self.mode: str = mode
        self.counter: int = 0
        self.best_score: float | None = None
        #: pytorch-ignite's logger name, under this package: ``ignite_async.handlers.early_stopping.EarlyStopping``.
        self.logger: logging.Logger = logging.getLogger(f"{__name__}.{type(self).__name__}")

    # The deprecated attribute names of pytorch-ignite 0.5.5, warning as its do.
    @property
    def min_delta(self) -> float:
        _deprecated("min_delta", "threshold")
        return self.threshold

    @min_delta.setter
    def min_delta(self, value: float) -> None:
        _deprecated("min_delta", "threshold")
        self.threshold = value

    @property
    def min_delta_mode(self) -> str:
        _deprecated("min_delta_mode", "threshold_mode")
        return self.threshold_mode

    @min_delta_mode.setter
    def min_delta_mode(self, value: str) -> None:
        _deprecated("min_delta_mode", "threshold_mode")
        self.threshold_mode = value

    @property
    def cumulative_delta(self) -> bool:
        _deprecated("cumulative_delta", "cumulative")
        return self.cumulative

    @cumulative_delta.setter
    def cumulative_delta(self, value: bool) -> None:
        _deprecated("cumulative_delta", "cumulative")
        self.cumulative = value

    def __call__(self, engine: Engine) -> None:
        score = as_score(self.score_function(engine), self.score_function)
        if self.best_score is None:
            self.best_score = score
            return
        delta = -self.threshold if self.mode == "min" else self.threshold
        bar = self.best_score + delta if self.threshold_mode == "abs" else self.best_score * (1 + delta)
        improved = score > bar if self.mode == "max" else score < bar
        if improved:
            self.best_score = score
            self.counter = 0
            return
        if not self.cumulative:
            self.best_score = max(score, self.best_score) if self.mode == "max" else min(score, self.best_score)
        self.counter += 1
        self.logger.debug("EarlyStopping: %i / %i", self.counter, self.patience)
        if self.counter >= self.patience:
            self.logger.info("EarlyStopping: Stop training")
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
        """``counter``, ``best_score`` and ``threshold_mode``, as pytorch-ignite 0.5.5's."""
        return OrderedDict(
            [("counter", self.counter), ("best_score", self.best_score), ("threshold_mode", self.threshold_mode)]
        )

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s values; one without ``threshold_mode`` (saved before 0.5.5) keeps the
        handler's own.

        :raises TypeError: if ``state_dict`` is not a mapping.
        :raises ValueError: naming the keys it lacks, or an unknown ``threshold_mode``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        missing = [k for k in ("counter", "best_score") if k not in state_dict]
        if missing:
            raise ValueError(f"EarlyStopping state_dict lacks {missing}")
        threshold_mode = state_dict.get("threshold_mode", self.threshold_mode)
        if threshold_mode not in ("abs", "rel"):
            raise ValueError(f"state_dict's threshold_mode must be 'abs' or 'rel', got {threshold_mode!r}")
        self.counter = int(state_dict["counter"])
        self.best_score = state_dict["best_score"]
        self.threshold_mode = threshold_mode


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old!r} is deprecated and will be removed in a future version. Please use {new!r} instead.",
        DeprecationWarning,
        stacklevel=3,
    )
