"""Records as TensorBoard scalars and histograms (``pip install ignite-async[tensorboard]``)."""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ignite_async.engine import Engine
from ignite_async.loggers.base import Record, ThreadedLogger

__all__ = [
    "GradsHistHandler",
    "GradsScalarHandler",
    "TensorBoardLogger",
    "TensorboardLogger",
    "WeightsHistHandler",
    "WeightsScalarHandler",
]

Whitelist = Sequence[str] | Callable[[str, nn.Parameter], bool] | None


@dataclass(frozen=True, eq=False)
class _Histogram(Record):
    """A histogram record: ``values`` (a CPU copy taken at the firing); ``value`` is their count."""

    values: np.ndarray[Any, Any]


class TensorBoardLogger(ThreadedLogger):
    """Scalars ``{tag}/{name}`` (learning rates as ``lr/group_0``: pytorch-ignite's tags) at ``step`` in
    TensorBoard event files under ``log_dir``, written by
    ``torch.utils.tensorboard.SummaryWriter`` from the logger's writer thread, never from the event loop.
    The event file is closed when the last run that logs to it ends; a later run writes a new one in
    ``log_dir`` (TensorBoard reads them all). :meth:`attach` adds the model handlers
    (:class:`WeightsScalarHandler`, :class:`GradsScalarHandler`, :class:`WeightsHistHandler`,
    :class:`GradsHistHandler`). Also importable as ``TensorboardLogger``, pytorch-ignite's spelling.

    :param log_dir: the directory of the event files; created if missing.
    :param flush_timeout: seconds that the end of a run, :meth:`flush` and :meth:`close` wait for writes.
    :param writer_kwargs: passed on to ``SummaryWriter``.
    :raises ImportError: naming the extra to install if the ``tensorboard`` package is missing.
    :raises ValueError: for a ``flush_timeout`` that is not a finite number > 0.
    """

    def __init__(self, log_dir: str | Path, *, flush_timeout: float = 10.0, **writer_kwargs: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package: pip install 'ignite-async[tensorboard]'"
            ) from exc
        super().__init__(flush_timeout=flush_timeout)
        self.log_dir = Path(log_dir)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create log directory {self.log_dir}: {exc.strerror}") from exc
        self.writer = SummaryWriter(log_dir=str(self.log_dir), **writer_kwargs)

    def attach(self, engine: Engine, log_handler: _ModelHandler, event_name: Any) -> None:
        """Run ``log_handler`` (a :class:`WeightsScalarHandler`, :class:`GradsScalarHandler`,
        :class:`WeightsHistHandler` or :class:`GradsHistHandler`) each time ``event_name`` fires: it reads the
        model on the event loop then, and the writer thread writes what it read.

        :raises TypeError: if ``log_handler`` is not one of those handlers.
        """
        _check_model_handler(log_handler).attach_to(self, engine, event_name)

    def _write(self, records: list[Record], durable: bool) -> None:
        for r in records:
            if isinstance(r, _Histogram):
                self.writer.add_histogram(r.key(), r.values, global_step=r.step, walltime=r.time)
            else:
                self.writer.add_scalar(r.key(), r.value, global_step=r.step, walltime=r.time)
        self.writer.flush()

    def _release_sink(self) -> None:
        self.writer.close()  # SummaryWriter opens a new event file at its next write

    def _close_sink(self) -> None:
        self.writer.close()


TensorboardLogger = TensorBoardLogger


class _ModelHandler(ABC):
    """The parameters of ``model`` that ``whitelist`` selects (chosen once, at construction), read at each firing."""

    def __init__(self, model: nn.Module, tag: str | None = None, whitelist: Whitelist = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if tag is not None and not isinstance(tag, str):
            raise TypeError(f"tag must be a string or None, got {tag!r}")
        params = list(model.named_parameters())
        if whitelist is None:
            chosen = params
        elif callable(whitelist):
            chosen = [(n, p) for n, p in params if whitelist(n, p)]
        elif isinstance(whitelist, str) or not all(isinstance(w, str) for w in whitelist):
            raise TypeError(f"whitelist must be a list of names, a callable or None, got {whitelist!r}")
        else:
            prefixes = tuple(whitelist)
            chosen = [(n, p) for n, p in params if n.startswith(prefixes)]
        self.model = model
        self.tag = tag
        self.weights: tuple[tuple[str, nn.Parameter], ...] = tuple(chosen)

    _kind: str  # the tag's first part: "weights", "grads_norm", ...

    def _collect(self, engine: Engine) -> list[Record]:
        at = ThreadedLogger._records(engine, "", [("", 0.0)], None)[0]  # this firing's step and time
        tag = f"{self.tag}/{self._kind}" if self.tag else self._kind
        out: list[Record] = []
        for name, param in self.weights:
            tensor = self._tensor(param)
            if tensor is not None:
                out.append(self._record(tag, name.replace(".", "/"), tensor, at))
        return out

    @abstractmethod
    def _tensor(self, param: nn.Parameter) -> torch.Tensor | None:
        """The tensor to log for ``param`` (None: nothing to log now)."""

    @abstractmethod
    def _record(self, tag: str, name: str, tensor: torch.Tensor, at: Record) -> Record:
        """The record of ``tensor``, at the step and time of ``at``."""

    def attach_to(self, logger: ThreadedLogger, engine: Engine, event_name: Any) -> None:
        """Collect with this handler on the event loop each time ``event_name`` fires; ``logger`` writes it."""
        logger._attach(engine, event_name, self._collect)


def _check_model_handler(log_handler: object) -> _ModelHandler:
    if not isinstance(log_handler, _ModelHandler):
        raise TypeError(
            "log_handler must be a WeightsScalarHandler, GradsScalarHandler, WeightsHistHandler or "
            f"GradsHistHandler, got {log_handler!r}"
        )
    return log_handler


class _ScalarHandler(_ModelHandler):
    def __init__(
        self,
        model: nn.Module,
        reduction: Callable[[torch.Tensor], float | torch.Tensor] = torch.norm,
        tag: str | None = None,
        whitelist: Whitelist = None,
    ) -> None:
        super().__init__(model, tag=tag, whitelist=whitelist)
        if not callable(reduction):
            raise TypeError(f"reduction must be callable, got {reduction!r}")
        probe = reduction(torch.ones(4, 2))
        if not (isinstance(probe, numbers.Number) or (isinstance(probe, torch.Tensor) and probe.ndim == 0)):
            raise TypeError(f"reduction must return a number or a 0-d tensor, got {type(probe).__name__}")
        self.reduction = reduction
        self._kind = f"{self._what}_{getattr(reduction, '__name__', type(reduction).__name__)}"

    _what: str

    def _record(self, tag: str, name: str, tensor: torch.Tensor, at: Record) -> Record:
        value = self.reduction(tensor)
        value = value.item() if isinstance(value, torch.Tensor) else value  # a device sync for a GPU model
        return Record(tag, name, at.step, float(value), at.time)


class _HistHandler(_ModelHandler):
    _what: str

    def __init__(self, model: nn.Module, tag: str | None = None, whitelist: Whitelist = None) -> None:
        super().__init__(model, tag=tag, whitelist=whitelist)
        self._kind = self._what

    def _record(self, tag: str, name: str, tensor: torch.Tensor, at: Record) -> Record:
        values = tensor.detach().to("cpu", copy=True).numpy()  # the values now, not when the writer gets to it
        return _Histogram(tag, name, at.step, float(values.size), at.time, values)


class WeightsScalarHandler(_ScalarHandler):
    """Log ``reduction`` of each parameter of ``model`` that ``whitelist`` selects, as the scalar
    ``{tag}/weights_{reduction.__name__}/{name}`` (the dots of the name made ``/``), at the step of the event
    it is attached to with :meth:`TensorBoardLogger.attach`. The reduction runs on the event loop when the
    event fires; the writer thread writes the value. Reading the value back forces a device sync for a model
    on a GPU (as in pytorch-ignite).

    :param model: the model.
    :param reduction: a tensor to a number or a 0-d tensor; ``torch.norm`` by default (tag ``weights_norm``).
    :param tag: a prefix of the tags, e.g. ``"generator"``.
    :param whitelist: names of submodules or parameters (prefixes of the fully qualified names), or a
        callable ``(name, parameter) -> bool``; all parameters if None. Chosen once, at construction.
    :raises TypeError: for a ``model`` that is no ``torch.nn.Module``, a ``reduction`` that is not callable
        or does not return a scalar, or a ``whitelist`` that is neither names nor a callable.

    >>> import anyio, tempfile
    >>> from torch import nn
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.loggers import TensorBoardLogger, WeightsScalarHandler
    >>> model = nn.Linear(2, 1)
    >>> async def main(log_dir):
    ...     engine = Engine(lambda e, b: None)
    ...     async with TensorBoardLogger(log_dir) as logger:
    ...         handler = WeightsScalarHandler(model, whitelist=["bias"])
    ...         logger.attach(engine, log_handler=handler, event_name=Events.ITERATION_COMPLETED)
    ...         await engine.run(range(2))
    ...         return logger.statistics().written
    >>> with tempfile.TemporaryDirectory() as log_dir:
    ...     anyio.run(main, log_dir)
    2
    """

    _what = "weights"

    def _tensor(self, param: nn.Parameter) -> torch.Tensor | None:
        return param.data


class GradsScalarHandler(_ScalarHandler):
    """Log ``reduction`` of the gradient of each parameter of ``model`` that ``whitelist`` selects, as the
    scalar ``{tag}/grads_{reduction.__name__}/{name}``; a parameter without a gradient is skipped. Otherwise
    as :class:`WeightsScalarHandler` (same arguments and errors; a device sync for a model on a GPU).
    """

    _what = "grads"

    def _tensor(self, param: nn.Parameter) -> torch.Tensor | None:
        return param.grad


class WeightsHistHandler(_HistHandler):
    """Log each parameter of ``model`` that ``whitelist`` selects as the histogram ``{tag}/weights/{name}``
    (the dots of the name made ``/``), at the step of the event it is attached to with
    :meth:`TensorBoardLogger.attach`. A CPU copy of the values is taken on the event loop when the event
    fires; the writer thread makes and writes the histogram.

    :param model: the model.
    :param tag: a prefix of the tags.
    :param whitelist: as for :class:`WeightsScalarHandler`.
    :raises TypeError: for a ``model`` that is no ``torch.nn.Module`` or a ``whitelist`` that is neither
        names nor a callable.
    """

    _what = "weights"

    def _tensor(self, param: nn.Parameter) -> torch.Tensor | None:
        return param.data


class GradsHistHandler(_HistHandler):
    """Log the gradient of each parameter of ``model`` that ``whitelist`` selects as the histogram
    ``{tag}/grads/{name}``; a parameter without a gradient is skipped. Otherwise as
    :class:`WeightsHistHandler`.
    """

    _what = "grads"

    def _tensor(self, param: nn.Parameter) -> torch.Tensor | None:
        return param.grad
