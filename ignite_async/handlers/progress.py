"""A progress bar on rich: per epoch, with rate, ETA, the output and chosen metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ignite_async.distributed.comm import get_rank
from ignite_async.engine import Engine, Events
from ignite_async.metrics.metric import select_metrics

__all__ = ["ProgressBar"]

# One live display per console: bars of engines running at once (a trainer and its evaluator) stack in it.
_displays: dict[int, tuple[Progress, int]] = {}


def _acquire(console: Console) -> Progress:
    progress, users = _displays.get(id(console), (None, 0))
    if progress is None:
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[postfix]}"),
            console=console,
            auto_refresh=False,  # drawn from the handler at a bounded rate: no thread to stop if a run fails
            transient=False,
        )
        progress.start()
    _displays[id(console)] = (progress, users + 1)
    return progress


def _release(console: Console, task: TaskID | None) -> None:
    progress, users = _displays[id(console)]
    if users == 1:
        progress.stop()  # the last bar stays on screen
        del _displays[id(console)]
    else:
        if task is not None:
            progress.remove_task(task)  # a nested bar (an evaluator's) goes when its run is done
        _displays[id(console)] = (progress, users - 1)


def _format(values: Mapping[str, Any]) -> str:
    parts = []
    for name, value in values.items():
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        parts.append(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


class ProgressBar:
    """Show each epoch's progress: iterations done, rate, elapsed time and ETA, the output and metrics.

    On a terminal the bar redraws at most ``refresh_per_second`` times a second, whatever the iteration rate;
    bars of engines running at the same time, such as an evaluator run from a trainer's handler, stack in one
    display. When the console is not a terminal (a log file, CI), it prints one line per epoch instead. It
    attaches no ``EXCEPTION_RAISED`` handler, so it never changes how a run fails.

    >>> import asyncio, io
    >>> from rich.console import Console
    >>> from ignite_async import Engine
    >>> from ignite_async.handlers import ProgressBar
    >>> engine = Engine(lambda e, b: 0.5)
    >>> console = Console(file=io.StringIO(), force_terminal=False, width=100)
    >>> ProgressBar(console=console).attach(engine, output_transform=lambda out: {"loss": out})
    >>> _ = asyncio.run(engine.run(range(3), max_epochs=2))
    >>> print(console.file.getvalue().strip())
    Epoch [1/2] 3/3 iterations ... loss=0.5
    Epoch [2/2] 3/3 iterations ... loss=0.5
    """

    def __init__(
        self, description: str = "Epoch", console: Console | None = None, refresh_per_second: float = 4.0
    ) -> None:
        if refresh_per_second <= 0:
            raise ValueError(f"refresh_per_second must be > 0, got {refresh_per_second!r}")
        self.description = description
        self.console = console or Console()
        self.refresh_per_second = refresh_per_second
        self._interval = 1.0 / refresh_per_second
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._next_update = 0.0
        self._epoch_started = 0.0

    def attach(
        self,
        engine: Engine,
        metric_names: Sequence[str] | str | None = None,
        output_transform: Callable[[Any], Any] | None = None,
        event_name: Any = Events.ITERATION_COMPLETED,
        closing_event_name: Any = Events.EPOCH_COMPLETED,
    ) -> None:
        """Show progress on ``event_name``, close the epoch's bar on ``closing_event_name``.

        :param metric_names: names in ``engine.state.metrics`` to show, or ``"all"``.
        :param output_transform: ``f(output)`` -> a number or a dict of them to show.
        """
        if metric_names is not None and metric_names != "all" and not isinstance(metric_names, (list, tuple)):
            raise TypeError(f"metric_names must be a list of names or 'all', got {metric_names!r}")
        self._metric_names = metric_names
        self._missing_warned: set[str] = set()  # metric names warned about as missing
        self._output_transform = output_transform
        if get_rank() != 0:
            return  # in a distributed job only rank 0 draws: one bar, not one per process
        engine.add_event_handler(Events.EPOCH_STARTED, self._open)
        engine.add_event_handler(event_name, self._advance)
        engine.add_event_handler(closing_event_name, self._close)
        engine.add_event_handler(Events.COMPLETED | Events.TERMINATE, self._stop)

    def log_message(self, message: str) -> None:
        """Print ``message`` above the bars, as pytorch-ignite's ``ProgressBar.log_message`` does.

        On a terminal it goes through the live display's console, which prints it above the bars and redraws
        them beneath it, so a bar is never torn; elsewhere it is a plain line. The message is text, not rich
        markup: ``"[x]"`` is printed as it is.

        >>> import io
        >>> from rich.console import Console
        >>> from ignite_async.handlers import ProgressBar
        >>> bar = ProgressBar(console=Console(file=io.StringIO(), force_terminal=False))
        >>> bar.log_message("[checkpoint] saved")
        >>> bar.console.file.getvalue()
        '[checkpoint] saved\\n'
        """
        console = self._progress.console if self._progress is not None else self.console
        console.print(Text(str(message)), soft_wrap=True)

    def _postfix(self, engine: Engine) -> str:
        shown = select_metrics(
            engine.state.metrics, self._metric_names, self._missing_warned, f"ProgressBar({self.description!r})"
        )
        if self._output_transform is not None and engine.state.output is not None:
            out = self._output_transform(engine.state.output)
            shown.update(out if isinstance(out, Mapping) else {"output": out})
        return _format(shown)

    def _label(self, engine: Engine) -> str:
        total = f"/{engine.state.max_epochs}" if engine.state.max_epochs else ""
        return f"{self.description} [{engine.state.epoch}{total}]"

    def _done_in_epoch(self, engine: Engine) -> int:
        length = engine.state.epoch_length or 0
        return engine.state.iteration - (engine.state.epoch - 1) * length if length else engine.state.iteration

    def _open(self, engine: Engine) -> None:
        self._epoch_started = time.monotonic()
        if not self.console.is_terminal:
            return
        if self._progress is None:
            self._progress = _acquire(self.console)
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(self._label(engine), total=engine.state.epoch_length, rate="", postfix="")

    def _advance(self, engine: Engine) -> None:
        now = time.monotonic()
        if now < self._next_update or self._progress is None or self._task is None:
            return  # bounded: the loop never waits for drawing
        self._next_update = now + self._interval
        done = self._done_in_epoch(engine)
        rate = done / (now - self._epoch_started) if now > self._epoch_started else 0.0
        self._progress.update(self._task, completed=done, rate=f"{rate:.1f} it/s", postfix=self._postfix(engine))
        self._progress.refresh()

    def _close(self, engine: Engine) -> None:
        done = self._done_in_epoch(engine)
        elapsed = time.monotonic() - self._epoch_started
        rate = f"{done / elapsed:.1f} it/s" if elapsed > 0 else ""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, rate=rate, postfix=self._postfix(engine))
            self._progress.refresh()
            self._next_update = 0.0
            return
        postfix = self._postfix(engine)
        line = f"{self._label(engine)} {done}/{engine.state.epoch_length} iterations {elapsed:.1f}s {rate}"
        self.console.print(line + (f" {postfix}" if postfix else ""), highlight=False, soft_wrap=True)

    def _stop(self, engine: Engine) -> None:
        if self._progress is not None:
            _release(self.console, self._task)
            self._progress = None
            self._task = None
