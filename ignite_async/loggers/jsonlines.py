"""Records as JSON lines in a file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ignite_async.loggers.base import Record, ThreadedLogger

__all__ = ["JSONLinesLogger", "read_jsonl"]


class JSONLinesLogger(ThreadedLogger):
    """One JSON object per line (``tag``, ``name``, ``step``, ``value``, ``time``), appended to ``path``.

    Writes happen in the logger's writer thread, one at a time and in order; each takes every record
    collected so far, and the event loop never waits for one. Each write is whole lines, flushed; a crash
    can leave at most the last line partial, which :func:`read_jsonl` skips. Flushed (and fsynced) when a
    run ends and when the logger is closed, waiting at most ``flush_timeout`` seconds. The file is open only
    while a run logs to it: closed when the last such run ends, reopened (appending) by the next write.

    :param path: the file, appended to; its directory is created.
    :param flush_timeout: seconds that the end of a run, :meth:`flush` and :meth:`close` wait for writes.
    :raises OSError: naming the directory if it cannot be created.
    :raises ValueError: for a ``flush_timeout`` that is not a finite number > 0.

    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.loggers import JSONLinesLogger, read_jsonl
    >>> path = Path(tempfile.mkdtemp()) / "run" / "metrics.jsonl"
    >>> async def main():
    ...     engine = Engine(lambda e, b: 0.5 * b)
    ...     async with JSONLinesLogger(path) as logger:
    ...         logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train",
    ...                                      output_transform=lambda loss: {"loss": loss})
    ...         await engine.run([1, 2, 3])
    >>> asyncio.run(main())
    >>> [(r["step"], r["value"]) for r in read_jsonl(path)]
    [(1, 0.5), (2, 1.0), (3, 1.5)]
    """

    def __init__(self, path: str | Path, *, flush_timeout: float = 10.0) -> None:
        super().__init__(flush_timeout=flush_timeout)
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create the directory for {self.path}: {exc.strerror}") from exc
        self._file: IO[str] | None = None  # opened by a write, closed when no run logs to it

    def _write(self, records: list[Record], durable: bool) -> None:
        if records and self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in _release_sink()
        if self._file is None:
            return
        if records:
            self._file.write("".join(json.dumps(r.as_dict()) + "\n" for r in records))
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())

    def _release_sink(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _close_sink(self) -> None:
        self._release_sink()


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines file, skipping a partial last line left by a crash."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # the last line, cut short: skip it
                return
            raise ValueError(f"{path}: line {i + 1} is not JSON") from None
