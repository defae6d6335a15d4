"""Records as MLflow metrics, sent by the official client from a writer thread (``pip install 'ignite-async[mlflow]'``).

The run is created at the first watched run's STARTED, metrics go in ``log_batch`` requests (atomic on the
server) retried with backoff on transient errors, params and tags with them, and the run's final status
(FINISHED, FAILED, KILLED) follows how the training run ended. :class:`MLflowCheckpointSaver` uploads
checkpoints as the run's artifacts, in step with ``n_saved``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from ignite_async._threads import run_sync
from ignite_async.engine import Engine, Events
from ignite_async.handlers.checkpoint import BaseSaveHandler
from ignite_async.loggers.base import Record, ThreadedLogger, check_seconds

__all__ = ["MLflowCheckpointSaver", "MLflowCheckpointStatistics", "MLflowLogger"]

_BATCH = 1000  # MLflow's limit of metrics per log_batch request
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED"}


def _redact(uri: str | None) -> str:
    """``uri`` without a password (``user:***@host``)."""
    if not uri:
        return "<default tracking URI>"
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (from the MLflow client) may pass if the same request is sent again."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    if isinstance(error, MlflowException):
        if error.error_code in _TRANSIENT_CODES:
            return True
        text = str(error)
        # rest_utils wraps exhausted urllib3 retries and timeouts in a plain MlflowException (INTERNAL_ERROR)
        return any(s in text for s in ("Max retries exceeded", "timed out", "Connection refused", "status code 5"))
    return False


class MLflowLogger(ThreadedLogger):
    """Metrics in an MLflow run, sent with ``MlflowClient.log_batch`` (at most 1000 per request) from the
    logger's writer thread. That thread also creates the run, at its first write after a watched engine's
    STARTED (or :meth:`start` does, when awaited), in experiment ``experiment`` (created if missing), so that
    training never waits for the tracker; its status is set to FINISHED, FAILED or KILLED when the run of the
    watched engines ends.

    Per-request bounds: unless set by the user, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` is set to 0 and
    ``MLFLOW_HTTP_REQUEST_TIMEOUT`` to ``timeout`` for this process when the logger is created, so that
    this logger's own retries (``max_retries``, exponential backoff with jitter) are the ones that count.

    :param tracking_uri: the tracking server (``http://host:port``) or store; MLflow's default if None.
    :param experiment: the experiment's name; MLflow's default experiment if None.
    :param run_name: the run's name.
    :param run_id: an existing run to log to instead of creating one.
    :param tags: tags of the run.
    :param on_error: ``"raise"`` (refused records or an unreachable server fail the run) or ``"warn"`` (they
        are dropped with a :class:`~ignite_async.loggers.LoggerWarning`).
    :param flush_timeout: seconds that the end of a run, :meth:`flush` and :meth:`close` wait for writes.
    :param max_pending: the most records that may wait for the server (None: no bound); beyond it the oldest
        are dropped, counted and reported.
    :param flush_interval: the least seconds between two ``log_batch`` requests (records collected meanwhile
        go together; the end of a run and :meth:`flush` do not wait for it): fewer requests for the server.
    :param max_retries: attempts after the first for a transient error (connection, timeout, 5xx, 429); then
        the batch is dropped, counted and reported.
    :param backoff: the first retry's delay in seconds, doubled each time, up to ``max_backoff``.
    :param timeout: seconds per request, and for creating the run.
    :raises ImportError: naming ``pip install 'ignite-async[mlflow]'`` if MLflow is missing.
    :raises TypeError: for an ``experiment`` that is not a string.
    :raises ValueError: for a bad ``on_error`` or number of seconds.
    """

    _write_batch_size = _BATCH

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        run_name: str | None = None,
        *,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        on_error: str = "raise",
        flush_timeout: float = 10.0,
        max_pending: int | None = 100_000,
        flush_interval: float = 1.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 5.0,
        timeout: float = 10.0,
    ) -> None:
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            raise ImportError("MLflowLogger needs the MLflow client: pip install 'ignite-async[mlflow]'") from exc
        if experiment is not None and not isinstance(experiment, str):
            raise TypeError(f"experiment must be the experiment's name (a str) or None, got {experiment!r}")
        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        super().__init__(flush_timeout=flush_timeout, max_pending=max_pending)
        self.timeout = check_seconds("timeout", timeout)
        self._write_interval = check_seconds("flush_interval", flush_interval, zero_ok=True)
        self.backoff = check_seconds("backoff", backoff, zero_ok=True)
        self.max_backoff = check_seconds("max_backoff", max_backoff, zero_ok=True)
        self.max_retries = max_retries
        self.on_error = on_error
        # MLflow reads these at each request; the user's own settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(self.timeout))))
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.run_id: str | None = run_id
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._params: dict[str, str] = {}
        self._status = "FINISHED"
        self._run_lock = threading.Lock()
        self._restart = False  # set at STARTED: the next write (re)starts the MLflow run
        self._savers: list[MLflowCheckpointSaver] = []

    # ------------------------------------------------------------------ the run

    async def start(self) -> str:
        """Create the MLflow run now (or set an adopted one RUNNING); return its id.

        :raises ConnectionError: naming the (redacted) tracking URI if it cannot be reached within ``timeout``.
        """
        with anyio.fail_after(self.timeout + 1.0):
            try:
                return await run_sync(self._ensure_run, name="ignite_async-mlflow-start")
            except Exception as exc:
                raise ConnectionError(
                    f"MLflowLogger cannot start a run at {_redact(self.tracking_uri)}: {exc}; check that the "
                    "tracking server runs and the URI is right"
                ) from exc

    def _ensure_run(self) -> str:
        # In a worker thread: the writer, start()'s, or a checkpoint saver's. One of them creates the run.
        with self._run_lock:
            if self.run_id is None:
                exp_id = None
                if self.experiment is not None:
                    exp = self.client.get_experiment_by_name(self.experiment)
                    exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
                run = self.client.create_run(exp_id or "0", run_name=self.run_name, tags=self.tags)
                self.run_id = run.info.run_id
            elif self._restart:
                self.client.update_run(self.run_id, status="RUNNING")
            self._restart = False
            return self.run_id

    def _watch(self, engine: Engine) -> None:
        super()._watch(engine)
        engine.add_event_handler(Events.STARTED, self._on_started)

    def _on_started(self, engine: Engine) -> None:
        if self._another_run_is_on(engine):
            return  # an evaluator inside the trainer's run
        self._status = "RUNNING"
        # The writer thread creates the run (or sets an adopted one RUNNING) at its next write: training never
        # waits for the tracker, whose failure reaches the loop at the next record or flush.
        self._restart = True

    async def _on_run_end(self, engine: Engine | None = None, error: BaseException | None = None) -> None:
        if engine is None or not self._another_run_is_on(engine):
            if error is None:
                self._status = "FINISHED"
            elif isinstance(error, (anyio.get_cancelled_exc_class(), KeyboardInterrupt)):
                self._status = "KILLED"
            else:
                self._status = "FAILED"
        await super()._on_run_end(engine, error)

    def attach(self, engine: Engine, log_handler: Any, event_name: Any) -> None:
        """Run a :class:`~ignite_async.loggers.WeightsScalarHandler` or
        :class:`~ignite_async.loggers.GradsScalarHandler` each time ``event_name`` fires.

        :raises TypeError: for a histogram handler (MLflow has no histograms) or anything else.
        """
        from ignite_async.loggers.tensorboard import _check_model_handler, _HistHandler

        if isinstance(log_handler, _HistHandler):
            raise TypeError(
                f"MLflow has no histograms: {type(log_handler).__name__} cannot log to MLflowLogger; use "
                "WeightsScalarHandler or GradsScalarHandler (or TensorBoardLogger for histograms)"
            )
        _check_model_handler(log_handler).attach_to(self, engine, event_name)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue ``params`` (nested dicts flattened with ``.`` keys); the writer thread sends them."""
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping, got {type(params).__name__}")
        with self._cond:
            self._params.update(_flatten(params))

    # ------------------------------------------------------------------ in the writer thread

    def _write(self, records: list[Record], durable: bool) -> None:
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException

        with self._cond:
            params = dict(self._params)  # removed once sent: a failed request resends them
        if not records and not params:
            return
        try:
            run_id = self._ensure_run() if self.run_id is None or self._restart else self.run_id
        except Exception as exc:
            where = f"MLflowLogger cannot start a run at {_redact(self.tracking_uri)}: {exc}"
            if is_transient(exc):
                raise ConnectionError(f"{where}; check that the tracking server runs and the URI is right") from exc
            raise ValueError(f"{where}; check the experiment and run arguments") from exc
        # The same entities on every attempt (one batch of at most 1000, the store's limit): the server
        # keeps one row per (key, timestamp, step, value), so a resend after a lost answer adds nothing.
        metrics = [Metric(r.key(" "), r.value, int(r.time * 1000), r.step) for r in records]
        try:
            self.client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
        except MlflowException as exc:
            if is_transient(exc):
                raise
            names = sorted({m.key for m in metrics})[:5]
            raise ValueError(
                f"MLflow refused the metrics {names} (among {len(metrics)}) or params {sorted(params)[:5]}: {exc}"
            ) from exc
        with self._cond:
            for key in params:
                if self._params.get(key) == params[key]:
                    del self._params[key]

    def _on_write_error(self, error: BaseException, attempt: int) -> float | Literal["drop", "raise"]:
        delay = self._retry_delay(error, attempt)
        if delay is not None:
            return delay
        # A refusal, or a run that could never be created (a wrong URI), is the user's to hear of; an
        # outage that outlasted the retries costs the batch, counted and warned about.
        if self.on_error == "raise" and (not is_transient(error) or self.run_id is None):
            return "raise"
        return "drop"

    def _retry_delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before sending again after ``error`` (exponential backoff with jitter), or None
        when it is not transient or ``max_retries`` are spent."""
        if attempt >= self.max_retries or not is_transient(error):
            return None
        return float(min(self.max_backoff, self.backoff * 2.0**attempt) * random.uniform(0.5, 1.0))

    def _retrying(self, call: Callable[[], Any], on_retry: Callable[[], None] | None = None) -> Any:
        """``call()`` with this logger's retry policy, for requests other than records (the run's status,
        artifacts)."""
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                delay = self._retry_delay(exc, attempt)
                if delay is None:
                    raise
                if on_retry is not None:
                    on_retry()
                time.sleep(delay)
                attempt += 1

    def _release_sink(self) -> None:
        for saver in self._savers:
            left = saver.wait(self.flush_timeout)
            if left:
                self._report(f"{left} checkpoint uploads not done within flush_timeout={self.flush_timeout:g} s")
        run_id = self.run_id
        if run_id is not None:
            self._retrying(functools.partial(self.client.set_terminated, run_id, status=self._status))

    def _close_sink(self) -> None:
        if self.run_id is not None and self._status == "RUNNING":
            self._status = "FINISHED"
            self._release_sink()


@dataclass
class MLflowCheckpointStatistics:
    """Uploads of an :class:`MLflowCheckpointSaver`: ``uploaded``, ``retried``, ``failed``, ``pending``."""

    uploaded: int = 0
    retried: int = 0
    failed: int = 0
    pending: int = 0


class MLflowCheckpointSaver(BaseSaveHandler):
    """Save checkpoints through ``local`` (durable on disk), then upload each file to the run's artifacts
    under ``artifact_path`` in a worker thread of its own; :meth:`remove` removes the file and (once its upload
    is done) the artifact, so the artifacts follow ``n_saved``. The logger waits for pending uploads (at most
    its ``flush_timeout``) when it releases or closes its run.

    :param logger: the :class:`MLflowLogger` whose run gets the artifacts.
    :param local: a :class:`~ignite_async.handlers.DiskSaver` (or a save handler with a ``dirname``).
    :param artifact_path: the artifacts' directory in the run.
    :raises TypeError: for a ``logger`` that is no MLflowLogger, or a ``local`` without ``dirname``.
    """

    def __init__(self, logger: MLflowLogger, local: BaseSaveHandler, artifact_path: str = "checkpoints") -> None:
        if not isinstance(logger, MLflowLogger):
            raise TypeError(f"logger must be an MLflowLogger, got {type(logger).__name__}")
        if not isinstance(getattr(local, "dirname", None), Path):
            raise TypeError(f"local must be a DiskSaver (a save handler with a dirname), got {type(local).__name__}")
        self.logger = logger
        self.local = local
        self._dirname: Path = getattr(local, "dirname")  # noqa: B009 - checked above
        self._staging = self._dirname / ".mlflow-uploads"  # hidden: DiskSaver.existing() skips it
        self.artifact_path = artifact_path
        self.keeps_references = local.keeps_references
        self._jobs: queue.Queue[tuple[str, str]] = queue.Queue()
        self._lock = threading.Condition()
        self._stats = MLflowCheckpointStatistics()
        self._thread: threading.Thread | None = None
        self._queued_uploads: set[str] = set()  # uploads not started yet
        self._cancelled: set[str] = set()  # of those, removed meanwhile
        logger._savers.append(self)

    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        self.local(checkpoint, filename, metadata)
        # A hard link to upload from: `remove` may delete the file while its upload runs.
        staging = self._staging / filename
        staging.parent.mkdir(exist_ok=True)
        staging.unlink(missing_ok=True)
        os.link(self._dirname / filename, staging)
        self._submit("upload", filename)

    def remove(self, filename: str) -> None:
        with self._lock:
            # Removed before its upload started: neither upload nor delete it (an upload would find no file).
            if filename in self._queued_uploads:
                self._cancelled.add(filename)
                self.local.remove(filename)
                return
        self.local.remove(filename)
        self._submit("delete", filename)

    def existing(self) -> list[str]:
        return self.local.existing()

    def claim(self, basename: str) -> None:
        self.local.claim(basename)

    def close(self) -> None:
        close = getattr(self.local, "close", None)
        if callable(close):
            close()

    def statistics(self) -> MLflowCheckpointStatistics:
        """Uploads done, retried, failed and pending."""
        with self._lock:
            return dataclasses.replace(self._stats)

    def _submit(self, what: str, filename: str) -> None:
        with self._lock:
            self._stats.pending += 1
            if what == "upload":
                self._queued_uploads.add(filename)
            self._jobs.put((what, filename))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ignite_async-mlflow-uploads", daemon=True)
                self._thread.start()

    def wait(self, timeout: float) -> int:
        """Wait at most ``timeout`` seconds for the pending uploads; return how many are still pending."""
        with self._lock:
            self._lock.wait_for(lambda: self._stats.pending == 0, timeout)
            return self._stats.pending

    def _run(self) -> None:
        # Jobs in order, so that a delete follows its file's upload.
        while True:
            try:
                what, filename = self._jobs.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            with self._lock:
                skip = what == "upload" and filename in self._cancelled
                if what == "upload":
                    self._queued_uploads.discard(filename)
                    self._cancelled.discard(filename)
                if skip:
                    (self._staging / filename).unlink(missing_ok=True)
                    self._stats.pending -= 1
                    self._lock.notify_all()
                    continue
            ok = True
            try:
                self.logger._retrying(functools.partial(self._do, what, filename), on_retry=self._count_retry)
            except Exception as exc:
                ok = False
                (self._staging / filename).unlink(missing_ok=True)  # given up: free the disk
                self.logger._report(f"MLflowCheckpointSaver: {what} of {filename} failed: {exc}")
            with self._lock:
                self._stats.pending -= 1
                if what == "upload":
                    if ok:
                        self._stats.uploaded += 1
                    else:
                        self._stats.failed += 1
                self._lock.notify_all()

    def _count_retry(self) -> None:
        with self._lock:
            self._stats.retried += 1

    def _do(self, what: str, filename: str) -> None:
        run_id = self.logger.run_id or self.logger._ensure_run()
        if what == "upload":
            path = self._staging / filename
            self.logger.client.log_artifact(run_id, str(path), self.artifact_path)  # retried with the link kept
            path.unlink(missing_ok=True)
        else:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            uri = self.logger.client.get_run(run_id).info.artifact_uri
            get_artifact_repository(uri, tracking_uri=self.logger.tracking_uri).delete_artifacts(  # type: ignore[no-untyped-call]
                f"{self.artifact_path}/{filename}"
            )
