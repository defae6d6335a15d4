"""The logger pattern of pytorch-ignite: handlers that turn engine state into records, shipped in the background.

Handlers run on the event loop and only collect :class:`Record` objects (tag, name, step, value, time);
a logger ships them without blocking the training step, and flushes what it holds when a run ends
(however it ends) and when it is closed.
"""

from __future__ import annotations

import numbers
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import anyio.to_thread
import torch

from ignite_async.distributed.comm import get_rank
from ignite_async.engine import Engine, Events
from ignite_async.engine.background import BackgroundHandler

__all__ = ["BaseLogger", "Record", "ThreadedLogger"]


@dataclass(frozen=True)
class Record:
    """One logged value."""

    tag: str
    name: str
    step: int
    value: float
    time: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _values(name: str, value: Any) -> list[tuple[str, float]]:
    """``(name, float)`` pairs for a number, a 0-d tensor, or a 1-d tensor (one per element, ``name/i``)."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            return [(name, float(value.item()))]
        if value.ndim == 1:
            return [(f"{name}/{i}", float(v)) for i, v in enumerate(value.tolist())]
        raise TypeError(f"cannot log {name!r}: a tensor of shape {tuple(value.shape)} (only 0-d and 1-d)")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"cannot log {name!r}: {value!r} is not a number")
    return [(name, float(value))]


class BaseLogger(ABC):
    """Collects records from handlers attached to engines; subclasses ship them (:meth:`_ship`)."""

    def __init__(self) -> None:
        self._watched: set[int] = set()

    # ------------------------------------------------------------------ attaching

    def attach_output_handler(
        self,
        engine: Engine,
        event_name: Any,
        tag: str,
        metric_names: Sequence[str] | str | None = None,
        output_transform: Callable[[Any], Any] | None = None,
        global_step_transform: Callable[[Engine, Any], int] | None = None,
    ) -> None:
        """Log ``engine.state.metrics`` (``metric_names``, or ``"all"``) and/or ``output_transform(output)``.

        :raises KeyError: at the first firing, naming metrics that are not in ``engine.state.metrics``.
        """
        if not isinstance(tag, str):
            raise TypeError(f"tag must be a string, got {tag!r}")
        if metric_names not in (None, "all") and (
            isinstance(metric_names, str) or not isinstance(metric_names, Sequence)
        ):
            raise TypeError(f"metric_names must be a list of names or 'all', got {metric_names!r}")
        if metric_names is None and output_transform is None:
            raise ValueError("give metric_names or output_transform: there is nothing to log otherwise")
        for fn, what in ((output_transform, "output_transform"), (global_step_transform, "global_step_transform")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what} must be callable, got {fn!r}")

        def collect(engine: Engine) -> list[Record]:
            values: list[tuple[str, float]] = []
            metrics = engine.state.metrics
            if metric_names == "all":
                names: Sequence[str] = list(metrics)
            else:
                names = list(metric_names or [])
                missing = [n for n in names if n not in metrics]
                if missing:
                    raise KeyError(f"{tag}: metrics {missing} are not in engine.state.metrics {sorted(metrics)}")
            for name in names:
                values += _values(name, metrics[name])
            if output_transform is not None:
                out = output_transform(engine.state.output)
                for name, value in (out if isinstance(out, dict) else {"output": out}).items():
                    values += _values(str(name), value)
            return self._records(engine, tag, values, global_step_transform)

        self._attach(engine, event_name, collect)

    def attach_opt_params_handler(
        self,
        engine: Engine,
        event_name: Any,
        optimizer: torch.optim.Optimizer,
        param_name: str = "lr",
        tag: str | None = None,
    ) -> None:
        """Log ``param_name`` of each of ``optimizer``'s param groups (``name/group{i}``)."""
        if not isinstance(getattr(optimizer, "param_groups", None), Sequence):
            raise TypeError(f"optimizer must have param_groups, got {type(optimizer).__name__}")
        prefix = f"{tag}/" if tag else ""

        def collect(engine: Engine) -> list[Record]:
            values = [
                (f"{prefix}{param_name}/group{i}", float(group[param_name]))
                for i, group in enumerate(optimizer.param_groups)
            ]
            return self._records(engine, "optimizer", values, None)

        self._attach(engine, event_name, collect)

    def _attach(self, engine: Engine, event_name: Any, collect: Callable[[Engine], list[Record]]) -> None:
        async def log(engine: Engine) -> None:
            await self._ship(engine, collect(engine))

        log.__qualname__ = f"{type(self).__name__}.log"
        if get_rank() != 0:
            return  # in a distributed job only rank 0 logs: one copy of each record, written once
        engine.add_event_handler(event_name, log)
        if id(engine) not in self._watched:
            self._watched.add(id(engine))
            engine._run_end_callbacks.append(self._on_run_end)  # completed, terminated, failed, cancelled
            engine.add_event_handler(Events.INTERRUPT, self.flush)  # paused: what was logged is out

    @staticmethod
    def _records(
        engine: Engine,
        tag: str,
        values: list[tuple[str, float]],
        global_step_transform: Callable[[Engine, Any], int] | None,
    ) -> list[Record]:
        event = engine.last_event_name
        if global_step_transform is not None:
            step = int(global_step_transform(engine, event))
        else:
            attr = engine._event_to_attr.get(getattr(event, "name", str(event)), "iteration")
            step = int(getattr(engine.state, attr))
        now = time.time()
        return [Record(tag, name, step, value, now) for name, value in values]

    # ------------------------------------------------------------------ shipping

    @abstractmethod
    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        """Take ``records`` (on the event loop); send or write them without blocking the training step."""

    async def _on_run_end(self) -> None:
        """When a run ends, however it ends: send or write everything held."""
        await self.flush()

    @abstractmethod
    async def flush(self) -> None:
        """Send or write everything held; return once it is done."""

    async def close(self) -> None:
        await self.flush()

    async def __aenter__(self) -> BaseLogger:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class ThreadedLogger(BaseLogger):
    """A logger whose sink is written from a worker thread: one write at a time, each taking every record
    collected so far (so nothing is lost and the loop never waits). Subclasses write and close the sink."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: list[Record] = []
        self._closed = False
        self._writer = BackgroundHandler(self._drain, limit=1, when_busy="latest")

    @abstractmethod
    def _write(self, records: list[Record], durable: bool) -> None:
        """Write ``records`` to the sink (in a worker thread); with ``durable``, make it survive a crash."""

    @abstractmethod
    def _close_sink(self) -> None:
        """Release the sink (in a worker thread)."""

    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        with self._lock:
            self._pending += records
        if engine._task_group is not None and not engine._cancelling:
            await self._writer.submit(engine, (), {})
        else:
            await anyio.to_thread.run_sync(self._drain)

    def _drain(self, durable: bool = False) -> None:
        with self._lock:
            records, self._pending = self._pending, []
            if self._closed:
                if records:
                    raise RuntimeError(f"{type(self).__name__} is closed: {len(records)} records not written")
                return
            self._write(records, durable)

    async def flush(self) -> None:
        await anyio.to_thread.run_sync(self._drain, True)

    async def close(self) -> None:
        await self.flush()
        with self._lock:
            if not self._closed:
                self._closed = True
                await anyio.to_thread.run_sync(self._close_sink)
