"""Records as a Weights & Biases run, through the official ``wandb`` client (``pip install 'ignite-async[wandb]'``)."""

from __future__ import annotations

import dataclasses
import inspect
import threading
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ignite_async.engine import Engine
from ignite_async.loggers.base import LoggerWarning, Record, ThreadedLogger, ThreadedLoggerStatistics
from ignite_async.loggers.tensorboard import _check_model_handler, _Histogram, _ModelHandler

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["WandBLogger"]

#: Exit codes given to ``Run.finish``: W&B shows 0 as "Finished" and any other code as "Failed". 1 is what
#: wandb itself uses for an exception (``with wandb.init():`` and its excepthook), 255 what it uses for Ctrl-C.
EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 255


def _exit_code(error: BaseException | None) -> int:
    if error is None:
        return EXIT_COMPLETED
    if isinstance(error, KeyboardInterrupt | anyio.get_cancelled_exc_class()):
        return EXIT_CANCELLED
    return EXIT_FAILED


class WandBLogger(ThreadedLogger):
    """Records as the history of a `Weights & Biases <https://wandb.ai>`_ run: each record is the key
    ``{tag}/{name}`` (learning rates ``lr/group_0``) at W&B step ``step``, as pytorch-ignite's ``WandBLogger``
    logs them. The records of one
    step go in one ``run.log(..., step=step)`` call, made by the logger's writer thread, never by the event
    loop; that thread also starts the W&B run (``wandb.init(project=project, **kwargs)``, which may start
    wandb's service process and, online, talk to the server), at the first record, :meth:`log_params` or
    :meth:`start`. The W&B run stays open across engine runs (a second ``engine.run`` logs to it) and is
    finished by :meth:`close`, with the exit code of the last engine run that ended: 0 (completed or
    terminated; W&B shows "Finished"), 1 (failed) or 255 (cancelled or Ctrl-C), the last two shown as
    "Failed". Leaving ``async with`` on an exception counts as the run failing (or being cancelled).

    W&B steps must increase: a record at a step lower than the last one logged is dropped, as wandb itself
    drops it under pytorch-ignite's ``WandBLogger``; here it is counted in ``statistics().dropped`` and
    reported in a :class:`LoggerWarning`. Records of an evaluator logged at the trainer's step (with
    ``global_step_transform=lambda *_: trainer.state.iteration``) share the trainer's current step.
    :meth:`attach` adds the model handlers of :mod:`ignite_async.loggers.tensorboard` (histograms as
    ``wandb.Histogram``).

    Delivery: :meth:`flush` and the end of a run return once ``run.log`` took every record held, i.e. wandb's
    service process has them; it writes them to the run's local files and, online, uploads them itself.
    :meth:`close` returns once ``run.finish`` did; the service may still be closing the local ``.wandb`` file
    then (it does so shortly after, and at the latest when wandb shuts it down at interpreter exit).

    :param project: the W&B project (``wandb.init``'s ``project``).
    :param flush_timeout: seconds that the end of a run, :meth:`flush` and :meth:`close` wait for writes.
    :param max_pending: the most records that may wait for the writer (None: no bound); beyond it the oldest
        are dropped, counted and reported.
    :param kwargs: passed on to ``wandb.init`` (``entity``, ``name``, ``config``, ``mode``, ``dir``, ``settings``,
        ...); ``init=False`` (as in pytorch-ignite) logs to the W&B run already started with ``wandb.init``.
    :raises ImportError: naming the extra to install if the ``wandb`` package is missing.
    :raises TypeError: for a ``project`` that is not a string, positional arguments after it, a keyword
        argument that ``wandb.init`` does not take, or a ``config`` that is not a mapping.
    :raises ValueError: for a ``flush_timeout`` that is not a finite number > 0.

    >>> import asyncio, tempfile
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.loggers.wandb import WandBLogger
    >>> tmp = tempfile.mkdtemp()  # kept: wandb's service may still be closing the run's files after close()
    >>> async def main():
    ...     engine = Engine(lambda e, b: 0.5 * b)
    ...     async with WandBLogger("demo", mode="offline", dir=tmp, config={"lr": 0.1}) as logger:
    ...         logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train",
    ...                                      output_transform=lambda loss: {"loss": loss})
    ...         await engine.run([1, 2, 3])
    ...         return logger.statistics().written
    >>> asyncio.run(main())
    3
    """

    def __init__(
        self,
        project: str | None = None,
        *args: Any,
        flush_timeout: float = 10.0,
        max_pending: int | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError("WandBLogger needs the wandb package: pip install 'ignite-async[wandb]'") from exc
        if project is not None and not isinstance(project, str):
            raise TypeError(f"project must be a string (the W&B project's name) or None, got {project!r}")
        if args:
            # wandb.init's own positional order starts with entity, not project: by keyword, nothing is ambiguous.
            raise TypeError(
                f"WandBLogger takes only project positionally, got {len(args)} more positional arguments: "
                "pass wandb.init's other arguments by keyword (entity=..., name=..., config=...)"
            )
        init = kwargs.pop("init", True)
        if not isinstance(init, bool):
            raise TypeError(f"init must be True or False, got {init!r}")
        params = inspect.signature(wandb.init).parameters
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(f"WandBLogger got {unknown!r}, which wandb.init does not take; it takes {sorted(params)}")
        if not init and kwargs:
            raise TypeError(f"with init=False the W&B run is yours (wandb.init already called): got {sorted(kwargs)}")
        config = kwargs.pop("config", None)
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict (or None), got {type(config).__name__}")
        super().__init__(flush_timeout=flush_timeout, max_pending=max_pending)
        self._wandb = wandb
        self._init = init
        self._init_kwargs: dict[str, Any] = {"project": project, **kwargs} if project is not None else kwargs
        # Guards what the loop hands the writer: config, the wish for a run, W&B's out-of-order drops.
        self._lock = threading.Lock()
        self._config: dict[str, Any] = dict(config or {})  # everything given, to refuse changed values on the loop
        self._config_new: dict[str, Any] = dict(self._config)  # not sent yet (to wandb.init, then run.config)
        self._wanted = bool(self._config)  # a run is wanted even with no records (config, start())
        self._out_of_order = 0  # records dropped as at a step lower than the last logged
        self._out_of_order_unreported = 0
        self._out_of_order_example = ""
        self._exit_code = EXIT_COMPLETED  # of the last engine run that ended, given to Run.finish at close
        self._last_step: int | None = None  # the highest step handed to the writer (on the loop)
        self._run: Run | None = None  # set by the writer thread

    @property
    def run(self) -> Run | None:
        """The W&B run, once the writer thread started it (after :meth:`start`); None before. Calling its
        methods from the event loop is not ordered with the logger's writes."""
        return self._run

    async def start(self) -> Run:
        """Start the W&B run now (in the writer thread; at most ``flush_timeout`` seconds of waiting) and
        return it, e.g. for ``run.dir``. Idempotent.

        :raises RuntimeError: if the run could not be started in time.
        """
        with self._lock:
            self._wanted = True
        await self.flush()
        if self._run is None:
            raise RuntimeError(f"the W&B run did not start within flush_timeout={self.flush_timeout:g} s")
        return self._run

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Add ``params`` to the run's config (``wandb.init(config=...)`` if the run is not started yet,
        else ``run.config.update`` at the writer's next write). Never waits.

        :raises TypeError: for ``params`` that are not a mapping with string keys.
        :raises ValueError: for a key already given with another value (W&B refuses to change it).
        """
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise TypeError(f"params must be a dict with string keys, got {params!r}")
        with self._lock:
            for key, value in params.items():
                if key in self._config and self._config[key] != value:
                    raise ValueError(
                        f"config {key!r} is already {self._config[key]!r}, cannot change it to {value!r} "
                        "(W&B keeps config values fixed): use another key"
                    )
            self._config.update(params)
            self._config_new.update(params)
            self._wanted = True

    def attach(self, engine: Engine, log_handler: _ModelHandler, event_name: Any) -> None:
        """Run ``log_handler`` (a ``WeightsScalarHandler``, ``GradsScalarHandler``, ``WeightsHistHandler`` or
        ``GradsHistHandler`` of :mod:`ignite_async.loggers.tensorboard`) each time ``event_name`` fires: it
        reads the model on the event loop then, and the writer thread logs what it read.

        :raises TypeError: if ``log_handler`` is not one of those handlers.
        """
        _check_model_handler(log_handler).attach_to(self, engine, event_name)

    def statistics(self) -> ThreadedLoggerStatistics:
        """Records logged, written, dropped (including those at a step lower than the last logged) and pending."""
        stats = super().statistics()
        with self._lock:
            n = self._out_of_order  # never handed to the writer
        return dataclasses.replace(stats, logged=stats.logged + n, dropped=stats.dropped + n)

    # ------------------------------------------------------------------ on the event loop

    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        # The writer logs records in the order they arrive here, so W&B's rule (a step below the last one
        # logged is ignored) is applied here, where the drops can be counted and reported.
        kept: list[Record] = []
        dropped = 0
        example = ""
        for r in records:
            if self._last_step is not None and r.step < self._last_step:
                dropped += 1
                example = example or f"{r.tag}/{r.name} at step {r.step} < {self._last_step}"
            else:
                kept.append(r)
                self._last_step = r.step
        with self._lock:
            self._wanted = self._wanted or bool(records)
            self._out_of_order += dropped
            self._out_of_order_unreported += dropped
            self._out_of_order_example = self._out_of_order_example or example
        await super()._ship(engine, kept)

    async def flush(self) -> None:
        await super().flush()
        self._report_out_of_order()

    async def _on_run_end(self, engine: Engine | None = None, error: BaseException | None = None) -> None:
        self._exit_code = _exit_code(error)  # the last run to end decides (a trainer ends after its evaluators)
        await super()._on_run_end(engine, error)
        self._report_out_of_order()

    async def close(self) -> None:
        """Log what is held and finish the W&B run (``run.finish(exit_code=...)``, see the class), waiting at
        most ``flush_timeout`` seconds; later records are refused (a RuntimeError)."""
        await super().close()
        self._report_out_of_order()

    async def __aexit__(self, *exc_info: object) -> None:
        error = exc_info[1] if len(exc_info) > 1 else None
        if isinstance(error, BaseException):
            self._exit_code = _exit_code(error)  # as wandb's own ``with wandb.init():`` does
        await self.close()

    def _report_out_of_order(self) -> None:
        with self._lock:
            n, self._out_of_order_unreported = self._out_of_order_unreported, 0
            example = self._out_of_order_example
        if n:
            warnings.warn(
                f"WandBLogger: {n} records dropped, at a step lower than the last one logged ({example}); W&B "
                "steps must increase: log an evaluator at the trainer's step with "
                "global_step_transform=lambda *_: trainer.state.iteration",
                LoggerWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ in the writer thread

    def _ensure_run(self) -> Run:
        if self._run is None:
            with self._lock:
                config = dict(self._config_new)
                self._config_new.clear()
            try:
                if self._init:
                    self._run = self._wandb.init(config=config or None, **self._init_kwargs)
                else:
                    run = self._wandb.run
                    if run is None:
                        raise RuntimeError("WandBLogger(init=False) found no W&B run: call wandb.init() first")
                    self._run = run
                    if config:
                        run.config.update(config)  # type: ignore[no-untyped-call]
            except BaseException:
                with self._lock:
                    self._config_new = {**config, **self._config_new}  # for the next try
                raise
        return self._run

    def _write(self, records: list[Record], durable: bool) -> None:
        with self._lock:
            if not (self._wanted or records):
                return  # nothing ever logged: no W&B run to start
        run = self._ensure_run()
        with self._lock:
            config, self._config_new = self._config_new, {}
        if config:
            run.config.update(config)  # type: ignore[no-untyped-call]
        row: dict[str, Any] = {}
        step: int | None = None
        for r in records:  # steps never decrease here (see _ship)
            if step is not None and r.step != step:
                run.log(row, step=step)
                row = {}
            step = r.step
            key = r.key()
            if isinstance(r, _Histogram):
                row[key] = self._wandb.Histogram(r.values)  # type: ignore[arg-type]  # it takes numpy arrays
            else:
                row[key] = r.value
        if row:
            # At the step W&B is on now, a later log at the same step adds to the same row.
            run.log(row, step=step)

    def _release_sink(self) -> None:
        """Nothing: the W&B run stays open for the next engine run (a finished run cannot be logged to
        again); :meth:`close` finishes it."""

    def _close_sink(self) -> None:
        if self._run is not None:
            self._run.finish(exit_code=self._exit_code)
