"""Loggers (pytorch-ignite's pattern): records of engine state, shipped without blocking training."""

from __future__ import annotations

from ignite_async.loggers.base import BaseLogger, LoggerWarning, Record, ThreadedLogger, ThreadedLoggerStatistics
from ignite_async.loggers.http import HTTPLogger, HTTPLoggerError, HTTPLoggerStatistics
from ignite_async.loggers.jsonlines import JSONLinesLogger, read_jsonl
from ignite_async.loggers.mlflow import MLflowCheckpointSaver, MLflowCheckpointStatistics, MLflowLogger
from ignite_async.loggers.tensorboard import (
    GradsHistHandler,
    GradsScalarHandler,
    TensorBoardLogger,
    TensorboardLogger,
    WeightsHistHandler,
    WeightsScalarHandler,
)
from ignite_async.loggers.wandb import WandBLogger

__all__ = [
    "BaseLogger",
    "GradsHistHandler",
    "GradsScalarHandler",
    "HTTPLogger",
    "HTTPLoggerError",
    "HTTPLoggerStatistics",
    "JSONLinesLogger",
    "LoggerWarning",
    "MLflowCheckpointSaver",
    "MLflowCheckpointStatistics",
    "MLflowLogger",
    "Record",
    "TensorBoardLogger",
    "TensorboardLogger",
    "ThreadedLogger",
    "ThreadedLoggerStatistics",
    "WandBLogger",
    "WeightsHistHandler",
    "WeightsScalarHandler",
    "read_jsonl",
]
