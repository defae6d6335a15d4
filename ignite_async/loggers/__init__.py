"""Loggers (pytorch-ignite's pattern): records of engine state, shipped without blocking training."""

from __future__ import annotations

from ignite_async.loggers.base import BaseLogger, Record, ThreadedLogger
from ignite_async.loggers.http import HTTPLogger, HTTPLoggerError, HTTPLoggerStatistics
from ignite_async.loggers.jsonlines import JSONLinesLogger, read_jsonl
from ignite_async.loggers.tensorboard import TensorBoardLogger

__all__ = [
    "BaseLogger",
    "HTTPLogger",
    "HTTPLoggerError",
    "HTTPLoggerStatistics",
    "JSONLinesLogger",
    "Record",
    "TensorBoardLogger",
    "ThreadedLogger",
    "read_jsonl",
]
