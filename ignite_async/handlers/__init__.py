"""Handlers for training: early stopping, NaN guards, timers (pytorch-ignite's ``ignite.handlers``)."""

from __future__ import annotations

from ignite_async.handlers.early_stopping import EarlyStopping
from ignite_async.handlers.terminate_on_nan import TerminateOnNan
from ignite_async.handlers.timer import Timer

__all__ = ["EarlyStopping", "TerminateOnNan", "Timer"]
