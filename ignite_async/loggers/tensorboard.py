"""Records as TensorBoard scalars (``pip install ignite-async[tensorboard]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ignite_async.loggers.base import Record, ThreadedLogger

__all__ = ["TensorBoardLogger"]


class TensorBoardLogger(ThreadedLogger):
    """Scalars ``{tag}/{name}`` at ``step`` in TensorBoard event files under ``log_dir``, written by
    ``torch.utils.tensorboard.SummaryWriter`` from a worker thread, never from the event loop.

    :raises ImportError: naming the extra to install if the ``tensorboard`` package is missing.
    """

    def __init__(self, log_dir: str | Path, **writer_kwargs: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package: pip install 'ignite-async[tensorboard]'"
            ) from exc
        super().__init__()
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

    def _close_sink(self) -> None:
        self.writer.close()
