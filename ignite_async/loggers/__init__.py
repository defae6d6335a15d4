"""Loggers (pytorch-ignite's pattern): records of engine state, shipped without blocking training."""

from __future__ import annotations

from ignite_async.loggers.base import BaseLogger, Record
from ignite_async.loggers.jsonlines import JSONLinesLogger, read_jsonl

__all__ = ["BaseLogger", "JSONLinesLogger", "Record", "read_jsonl"]
