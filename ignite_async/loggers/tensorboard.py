"""Records as TensorBoard scalars (``pip install ignite-async[tensorboard]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ignite_async.loggers.base import Record, ThreadedLogger

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(ThreadedLogger):
    """Scalars ``{tag}/{name}`` at ``step`` in TensorBoard event files under ``log_dir``, written by
    ``torch.utils.tensorboard.SummaryWriter`` from the logger's writer thread, never from the event loop.
    The event file is closed when the last run that logs to it ends; a later run writes a new one in
    ``log_dir`` (TensorBoard reads them all).

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

    def _write(self, records: list[Record], durable: bool) -> None:
        for r in records:
            self.writer.add_scalar(f"{r.tag}/{r.name}", r.value, global_step=r.step, walltime=r.time)
        self.writer.flush()

    def _release_sink(self) -> None:
        self.writer.close()  # SummaryWriter opens a new event file at its next write

    def _close_sink(self) -> None:
        self.writer.close()
