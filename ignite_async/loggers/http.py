"""Records POSTed to an HTTP endpoint in batches, with retries, without ever stalling training."""

from __future__ import annotations

import collections
import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
import uuid
import warnings
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx

from ignite_async._threads import run_sync
from ignite_async.engine import Engine, Events
from ignite_async.loggers.base import BaseLogger, LoggerWarning, Record, check_seconds

__all__ = ["HTTPLogger", "HTTPLoggerError", "HTTPLoggerStatistics"]

_RETRYABLE = frozenset({408, 429})
_WARN_EVERY = 30.0  # seconds between two warnings about dropped records: one per outage, not one per batch


class HTTPLoggerError(RuntimeError):
    """The endpoint refused a batch with a status that means misconfiguration (401, 403, 404, 413...), or
    :meth:`HTTPLogger.resend_spool` could not deliver the spool."""


@dataclass
class HTTPLoggerStatistics:
    """Counts of an :class:`HTTPLogger`'s records, with ``sent + dropped + pending == logged`` at every moment.

    ``logged``: records the handlers collected; ``sent``: acknowledged by the server; ``dropped``: given up
    (buffer full, outage, refusal, end-of-run flush out of time); ``pending``: held or in flight;
    ``retried``: requests sent again; ``spooled``: of the dropped records, those saved to ``spool_path``.
    """

    sent: int = 0
    retried: int = 0
    dropped: int = 0
    pending: int = 0
    logged: int = 0
    spooled: int = 0


class _Batch:
    """Records sent together under one key, the same on every attempt (also after being cut off)."""

    __slots__ = ("done", "key", "records")

    def __init__(self, key: str, records: list[Record]) -> None:
        self.key = key
        self.records = records
        self.done = False  # sent or dropped: counted


class HTTPLogger(BaseLogger):
    """POST records as JSON ``{"run", "batch", "records": [{"tag", "name", "step", "value", "time"}]}``.

    Batches of up to ``batch_size`` records are sent by a background task of the engine, as soon as they are
    full or ``flush_interval`` seconds after their first record, and at once when the run ends. Each batch
    has an ``Idempotency-Key`` header equal to its ``batch`` id, unique to the batch (it holds a random
    part drawn per logger, so a resumed run's keys do not repeat the first run's) and the same on every
    retry, so the server can drop duplicates.

    A metrics outage never fails nor freezes training: connection errors, timeouts, 408, 429 and 5xx are
    retried (exponential backoff with jitter, honouring ``Retry-After``, both capped at ``max_backoff``), and
    a batch still failing after ``max_retries`` retries is dropped. Only refusals that mean misconfiguration
    (any other 4xx: 400, 401, 403, 404, 413...) fail the run with an :class:`HTTPLoggerError` naming the
    status (or only warn, with ``on_error="warn"``). At most ``max_buffer`` records wait; past that,
    ``"drop_oldest"`` drops the oldest, and ``"wait"`` holds the training loop back for at most
    ``flush_timeout`` seconds, then drops the oldest until the server accepts a batch again. The end of a
    run sends what is held for at most ``flush_timeout`` seconds and drops the rest. Every drop is counted
    in :meth:`statistics` and reported in a :class:`~ignite_async.loggers.LoggerWarning` (at most one every
    30 s, plus one at the end of a run that dropped records). With ``spool_path``, dropped records are also
    appended there, to be sent later with :meth:`resend_spool`. Messages never show the URL's credentials
    or query string.

    :param url: the endpoint, http:// or https://.
    :param run_id: the ``run`` field of every batch (a random id by default).
    :param batch_size: records per request, at most.
    :param flush_interval: seconds a partial batch waits for more records before it is sent.
    :param max_buffer: records held at most (not counting the batch in flight).
    :param when_full: ``"drop_oldest"`` (the default) or ``"wait"`` (bounded backpressure, see above).
    :param timeout: seconds per request (connect, read, write).
    :param max_retries: retries of a batch before it is dropped.
    :param headers: extra request headers, e.g. ``{"Authorization": "Bearer ..."}``.
    :param on_error: ``"raise"`` (fail the run) or ``"warn"``, for refusals that mean misconfiguration.
    :param backoff: seconds before the first retry, doubled at each one (with jitter).
    :param max_backoff: seconds between retries at most, ``Retry-After`` included.
    :param flush_timeout: seconds that the end of a run, :meth:`flush`, :meth:`close`, and a ``"wait"``
        for buffer space may take at most.
    :param spool_path: a JSON-lines file to which dropped records are appended, one batch per line.
    :raises ValueError: for a URL that is not http(s), counts < 1, durations that are not finite numbers
        > 0 (``backoff`` and ``flush_interval`` may be 0), or unknown modes.
    """

    def __init__(
        self,
        url: str,
        *,
        run_id: str | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        when_full: Literal["wait", "drop_oldest"] = "drop_oldest",
        timeout: float = 10.0,
        max_retries: int = 8,
        headers: dict[str, str] | None = None,
        on_error: Literal["raise", "warn"] = "raise",
        backoff: float = 0.1,
        max_backoff: float = 10.0,
        flush_timeout: float = 10.0,
        spool_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an http:// or https:// URL, got {_redact(str(url))!r}")
        for name, value in (("batch_size", batch_size), ("max_buffer", max_buffer)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if when_full not in ("wait", "drop_oldest"):
            raise ValueError(f"when_full must be 'wait' or 'drop_oldest', got {when_full!r}")
        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.url = url
        self.run_id = run_id or uuid.uuid4().hex
        self.batch_size = batch_size
        self.flush_interval = check_seconds("flush_interval", flush_interval, zero_ok=True)
        self.max_buffer = max_buffer
        self.when_full = when_full
        self.timeout = check_seconds("timeout", timeout)
        self.max_retries = max_retries
        self.headers = dict(headers or {})
        self.on_error = on_error
        self.backoff = check_seconds("backoff", backoff, zero_ok=True)
        self.max_backoff = check_seconds("max_backoff", max_backoff)
        self.flush_timeout = check_seconds("flush_timeout", flush_timeout)
        self.spool_path = Path(spool_path) if spool_path is not None else None
        self.safe_url = _redact(url)
        self._secrets = _secrets_of(url)
        if self._secrets:
            _redactor.loggers.add(self)  # httpx logs every request's URL

        self._instance = uuid.uuid4().hex[:16]  # makes keys unique across processes and restarts
        self._batches = 0
        self._buffer: collections.deque[Record] = collections.deque()
        self._requeued: collections.deque[_Batch] = collections.deque()  # cut off: sent first, same key
        self._requeued_records = 0
        self._in_flight = 0
        self._waiting = 0  # records of _ship calls waiting for buffer space
        self._stats = HTTPLoggerStatistics()
        self._busy = False  # one send at a time, so that batches go out in order
        self._idle: anyio.Event | None = None
        self._sender_host: Engine | None = None  # the engine whose task group runs the sender
        self._filled: anyio.Event | None = None  # set when a batch is full (or the run is ending)
        self._space: anyio.Event | None = None  # set when records leave the buffer
        self._stalled = False  # a "wait" for space timed out: drop instead, until a batch is sent again
        self._deadline = math.inf  # the run is ending: sending stops at this (anyio) time
        self._post_scope: anyio.CancelScope | None = None
        self._refused: str | None = None  # set once the server refused with on_error="raise": stop sending
        self._last_problem = ""
        self._client: httpx.AsyncClient | None = None
        self._unreported = 0  # dropped records not yet in a warning
        self._reason = ""
        self._warned_at = -math.inf
        self._to_spool: list[_Batch] = []  # dropped batches, under their keys
        self._spool_loose: list[Record] = []  # dropped records that were in no batch yet
        self._spool_lock = threading.Lock()
        self._spooling = False

    def statistics(self) -> HTTPLoggerStatistics:
        """Counts of records logged, sent, dropped (and of those, spooled) and pending, and of retries."""
        self._stats.pending = self._held() + self._in_flight + self._waiting
        return HTTPLoggerStatistics(**vars(self._stats))

    def _held(self) -> int:
        return len(self._buffer) + self._requeued_records

    def _scrub(self, text: str) -> str:
        text = text.replace(self.url, self.safe_url)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _redact_urls_in(text)

    # ------------------------------------------------------------------ taking records (on the loop)

    def _watch(self, engine: Engine) -> None:
        super()._watch(engine)
        # The sender hurries once the run is ending, even when the last records were logged earlier.
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._check_ending)
        engine.add_event_handler(Events.TERMINATE, self._check_ending)

    def _check_ending(self, engine: Engine) -> None:
        if engine is self._sender_host and _ending(engine):
            self._start_deadline()
            self._wake(self._filled)

    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        self._stats.logged += len(records)
        self._waiting += len(records)
        taken = 0
        try:
            for record in records:
                if self._held() >= self.max_buffer:
                    await self._make_room(engine)
                self._buffer.append(record)
                self._waiting -= 1
                taken += 1
        finally:
            if taken < len(records):  # cancelled while waiting for space
                self._waiting -= len(records) - taken
                self._lose(records[taken:], None, "interrupted while waiting for buffer space")
        if len(self._buffer) >= self.batch_size or _ending(engine):
            self._wake(self._filled)
        self._ensure_sender(engine)
        if len(self._spool_loose) >= self.batch_size and not self._spooling and _can_start_tasks(engine):
            self._spooling = True
            engine._start_task(self._spool_task)

    async def _make_room(self, engine: Engine) -> None:
        while self._held() >= self.max_buffer:
            self._ensure_sender(engine)
            if self.when_full == "drop_oldest" or self._stalled or self._sender_host is None:
                self._drop_oldest()
                continue
            if self._space is None:
                self._space = anyio.Event()
            with anyio.move_on_after(self.flush_timeout) as scope:
                await self._space.wait()  # "wait": bounded backpressure on the training loop
            if scope.cancelled_caught:
                self._stalled = True
                self._report(0, f"no buffer space for {self.flush_timeout:g} s ({self._last_problem})", force=True)

    def _drop_oldest(self) -> None:
        if self._requeued:  # oldest of all; dropped whole, since its key may already be on the server
            batch = self._requeued.popleft()
            self._requeued_records -= len(batch.records)
            self._lose(batch.records, batch.key, "the buffer is full")
        else:
            self._lose([self._buffer.popleft()], None, "the buffer is full")

    def _ensure_sender(self, engine: Engine) -> None:
        if self._sender_host is not None or not self._held():
            return
        # In the outermost run (a trainer, not the evaluator it runs), so that no evaluation waits for it.
        hosts = [e for e in list(self._watched) if e._running and _can_start_tasks(e)]
        if not hosts:
            return  # outside a run, the end-of-run flush sends it
        host = min(hosts, key=lambda e: e._run_started_at or math.inf)
        if not _ending(host):
            self._deadline = math.inf  # a new or resumed run
        self._sender_host = host
        host._start_task(self._send_loop, host)

    @staticmethod
    def _wake(event: anyio.Event | None) -> None:
        if event is not None:
            event.set()

    def _start_deadline(self) -> None:
        if self._deadline == math.inf:
            self._deadline = anyio.current_time() + self.flush_timeout
        if self._post_scope is not None:
            self._post_scope.deadline = min(self._post_scope.deadline, self._deadline)

    # ------------------------------------------------------------------ sending

    async def _send_loop(self, engine: Engine) -> None:
        try:
            while self._held():
                if _ending(engine):
                    self._start_deadline()
                elif len(self._buffer) < self.batch_size and not self._requeued:
                    self._filled = anyio.Event()
                    with anyio.move_on_after(self.flush_interval):
                        await self._filled.wait()
                    self._filled = None
                    if _ending(engine):
                        self._start_deadline()
                if anyio.current_time() >= self._deadline or not await self._send_next(self._deadline):
                    return  # out of time: the end-of-run flush counts what is left
                if self._to_spool or self._spool_loose:
                    await self._write_spool()
        finally:
            self._sender_host = None

    async def _acquire(self, deadline: float) -> bool:
        with anyio.CancelScope(deadline=deadline):
            while self._busy:
                if self._idle is None:
                    self._idle = anyio.Event()
                await self._idle.wait()
            self._busy = True
            return True
        return False

    def _release(self) -> None:
        self._busy = False
        self._wake(self._idle)
        self._idle = None

    async def _send_next(self, deadline: float) -> bool:
        """Send the next batch, or put it back in front if cut off; False if the deadline came first."""
        if not await self._acquire(deadline):
            return False
        try:
            if self._requeued:
                batch = self._requeued.popleft()
                self._requeued_records -= len(batch.records)
            elif self._buffer:
                records = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
                batch = _Batch(self._new_key(), records)
            else:
                return True
            self._in_flight += len(batch.records)  # with no await since it left the buffer: always counted
            self._wake(self._space)
            self._space = None
            try:
                with anyio.CancelScope(deadline=deadline) as scope:
                    self._post_scope = scope
                    await self._post(batch)
            finally:
                self._post_scope = None
                self._in_flight -= len(batch.records)
                if not batch.done:  # cut off (cancelled, or out of time): in front again, in order
                    self._requeued.appendleft(batch)
                    self._requeued_records += len(batch.records)
        finally:
            self._release()
        return True

    def _new_key(self) -> str:
        self._batches += 1
        return f"{self.run_id}-{self._instance}-{self._batches}"

    async def _post(self, batch: _Batch) -> None:
        if self._refused is not None:
            batch.done = True
            self._lose(batch.records, batch.key, f"not sent: {self._refused}")
            return
        body = {"run": self.run_id, "batch": batch.key, "records": [r.as_dict() for r in batch.records]}
        outcome, message = await self._deliver(body, batch.key, count_retries=True)
        batch.done = True
        if outcome == "sent":
            self._stats.sent += len(batch.records)
            self._stalled = False
        elif outcome == "refused":
            self._lose(batch.records, batch.key, message, refusal=True)
            if self.on_error == "raise":
                self._refused = message
                raise HTTPLoggerError(message)
        else:
            self._stalled = True  # an outage: "wait" would only hold training back, so drop until it ends
            self._lose(batch.records, batch.key, message)

    async def _deliver(
        self, body: dict[str, Any], key: str, count_retries: bool
    ) -> tuple[Literal["sent", "refused", "failed"], str]:
        headers = {**self.headers, "Idempotency-Key": key}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        client = self._client
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt and count_retries:
                self._stats.retried += 1
            delay: float | None = None
            try:
                response = await client.post(self.url, json=body, headers=headers)
            except httpx.RequestError as exc:  # connection refused or dropped, timeouts, bad encodings
                problem = self._scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            else:
                if response.is_success:
                    return "sent", ""
                status = f"{response.status_code} {response.reason_phrase}"
                if response.status_code not in _RETRYABLE and response.status_code < 500:
                    return "refused", f"{self.safe_url} answered {status}: not retried"
                problem = status
                delay = _retry_after(response.headers.get("Retry-After"))
            self._last_problem = problem
            if attempt < self.max_retries:
                if delay is None:  # jitter spreads the retries of many clients out
                    delay = self.backoff * 2 ** min(attempt, 64) * (0.5 + random.random())
                await anyio.sleep(min(delay, self.max_backoff))
        return "failed", f"{self.safe_url} still failing after {self.max_retries} retries ({problem})"

    # ------------------------------------------------------------------ losing records

    def _lose(
        self, records: list[Record], key: str | None, reason: str, refusal: bool = False, report: bool = True
    ) -> None:
        """Count ``records`` as dropped (spool them), and report it unless the run fails with the reason."""
        if not records:
            return
        self._stats.dropped += len(records)
        if self.spool_path is not None:
            if key is not None:  # a batch that may have reached the server: spooled under its key
                self._to_spool.append(_Batch(key, records))
            else:
                self._spool_loose += records
        if report and not (refusal and self.on_error == "raise"):
            self._report(len(records), reason)

    def _report(self, count: int, reason: str, force: bool = False) -> None:
        """A warning about dropped records, at most one every _WARN_EVERY seconds unless ``force``."""
        self._unreported += count
        self._reason = reason or self._reason
        now = time.monotonic()
        if not force and now - self._warned_at < _WARN_EVERY:
            return
        self._warned_at = now
        count, self._unreported = self._unreported, 0
        spooled = f", appended to {self.spool_path}" if self.spool_path is not None else ""
        what = f"{count} records dropped{spooled}" if count else "records are being dropped"
        warnings.warn(
            f"HTTPLogger: {what} ({self._reason}); {self._stats.dropped} of {self._stats.logged} dropped so far",
            LoggerWarning,
            stacklevel=2,
        )

    # ------------------------------------------------------------------ flushing

    async def flush(self) -> None:
        """Send every record held now (in the caller's task), for at most ``flush_timeout`` seconds; what is
        not sent by then stays pending."""
        await self._flush(final=False)

    async def _on_interrupt(self, engine: Engine) -> None:
        if engine is self._sender_host:
            self._start_deadline()  # paused: the sender must be done when the task group closes
            self._wake(self._filled)
        await super()._on_interrupt(engine)

    async def _on_run_end(self, engine: Engine | None = None, error: BaseException | None = None) -> None:
        if engine is not None and self._another_run_is_on(engine):
            return  # e.g. an evaluator inside a trainer: the trainer's run sends it
        try:
            await self.close()  # a later run opens a new client: no connection outlives a run
        finally:
            self._deadline = math.inf
            self._stalled = False  # the next run may wait for space again

    async def close(self) -> None:
        """Send what is held for at most ``flush_timeout`` seconds, drop (and report) the rest, and close
        the connections."""
        try:
            await self._flush(final=True)
        finally:
            client, self._client = self._client, None
            if client is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(max(1.0, self.timeout)):
                    await client.aclose()

    async def _flush(self, final: bool) -> None:
        deadline = min(self._deadline, anyio.current_time() + self.flush_timeout)
        try:
            while self._held() and anyio.current_time() < deadline:
                if not await self._send_next(deadline):
                    break
        finally:
            if final and self._held():
                why = (
                    "was cancelled"
                    if anyio.current_time() < deadline
                    else f"ran out of time ({self.flush_timeout:g} s)"
                )
                problem = f": {self._last_problem}" if self._last_problem else ""
                reason = f"the end-of-run flush {why}{problem}"
                left = self._held()
                while self._requeued:
                    batch = self._requeued.popleft()
                    self._requeued_records -= len(batch.records)
                    self._lose(batch.records, batch.key, reason, report=False)
                self._lose(list(self._buffer), None, reason, report=False)
                self._buffer.clear()
                if not self._refused or self.on_error != "raise":
                    self._unreported += left
                    self._reason = reason
            if final:
                if self._to_spool or self._spool_loose:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(self.flush_timeout):
                        await self._write_spool()
                if self._unreported:
                    self._report(0, "", force=True)

    # ------------------------------------------------------------------ the spool

    async def _spool_task(self) -> None:
        try:
            await self._write_spool()
        finally:
            self._spooling = False

    async def _write_spool(self) -> None:
        batches, self._to_spool = self._to_spool, []
        loose, self._spool_loose = self._spool_loose, []
        batches += [
            _Batch(self._new_key(), loose[i : i + self.batch_size]) for i in range(0, len(loose), self.batch_size)
        ]
        if not batches or self.spool_path is None:
            return
        lines = "".join(
            json.dumps({"run": self.run_id, "batch": b.key, "records": [r.as_dict() for r in b.records]}) + "\n"
            for b in batches
        )
        try:
            await run_sync(self._append_spool, lines, grace=self.flush_timeout, name="ignite_async-spool")
        except OSError as exc:
            count = sum(len(b.records) for b in batches)
            warnings.warn(f"HTTPLogger: {count} dropped records not spooled: {exc}", LoggerWarning, stacklevel=2)
        else:
            self._stats.spooled += sum(len(b.records) for b in batches)

    def _append_spool(self, lines: str) -> None:
        assert self.spool_path is not None
        with self._spool_lock:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.spool_path, "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())

    async def resend_spool(self) -> int:
        """POST every batch saved in ``spool_path``, with its original ``Idempotency-Key`` (a server that
        dedupes keeps each record once), removing each from the file once acknowledged.

        :return: the number of records sent.
        :raises HTTPLoggerError: if the server refuses a batch or stays down; what was not sent stays spooled.
        :raises ValueError: if the logger has no ``spool_path``.
        """
        if self.spool_path is None:
            raise ValueError("this HTTPLogger has no spool_path to resend from")
        bodies = await run_sync(self._read_spool, grace=self.flush_timeout, name="ignite_async-spool")
        sent_keys: set[str] = set()
        sent = 0
        try:
            for body in bodies:
                outcome, message = await self._deliver(body, str(body["batch"]), count_retries=False)
                if outcome != "sent":
                    raise HTTPLoggerError(f"resending {self.spool_path}: {message}")
                sent_keys.add(str(body["batch"]))
                sent += len(body["records"])
        finally:
            with anyio.CancelScope(shield=True):
                await run_sync(self._remove_from_spool, sent_keys, grace=self.flush_timeout, name="ignite_async-spool")
        return sent

    def _read_spool(self) -> list[dict[str, Any]]:
        assert self.spool_path is not None
        with self._spool_lock:
            try:
                lines = self.spool_path.read_text(encoding="utf-8").split("\n")
            except FileNotFoundError:
                return []
        bodies = []
        for line in lines:
            try:
                bodies.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # an empty line, or one cut short by a crash
        return bodies

    def _remove_from_spool(self, keys: set[str]) -> None:
        assert self.spool_path is not None
        if not keys:
            return
        with self._spool_lock:
            try:
                lines = self.spool_path.read_text(encoding="utf-8").split("\n")
            except FileNotFoundError:
                return
            kept = [line for line in lines if line and _key_of(line) not in keys]
            if not kept:
                self.spool_path.unlink()
                return
            temporary = self.spool_path.with_name(self.spool_path.name + ".tmp")
            with open(temporary, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in kept))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.spool_path)


def _key_of(line: str) -> str | None:
    try:
        return str(json.loads(line)["batch"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def _ending(engine: Engine) -> bool:
    """Whether ``engine``'s run is on its way out (done, terminating, pausing, cancelled or failing)."""
    state = engine.state
    # Not Engine._is_done, which is also true throughout the last epoch.
    if state.max_iters is not None:
        last = state.iteration >= state.max_iters
    elif state.max_epochs is not None and state.epoch_length is not None:
        last = state.iteration >= state.epoch_length * state.max_epochs
    else:
        last = False
    return bool(
        last
        or engine._should_terminate
        or engine._should_interrupt
        or engine._cancelling
        or engine._background_error is not None
    )


def _can_start_tasks(engine: Engine) -> bool:
    return engine._task_group is not None and not engine._cancelling


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value; None for a missing, negative, non-finite or unparsable one."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _redact(url: str) -> str:
    """``url`` without credentials and query string (either may hold a token)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    _, at, host = parts.netloc.rpartition("@")
    netloc = f"***@{host}" if at else host
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


# Any URL's credentials and query, in whatever encoding a message shows it (httpx percent-encodes them).
_URL_USERINFO = re.compile(r"(?i)\b(https?://)[^\s/@]+@")
_URL_QUERY = re.compile(r"(?i)\b(https?://[^\s?#\"']*)[?#][^\s\"']*")


def _redact_urls_in(text: str) -> str:
    """``text`` with every http(s) URL's credentials and query string replaced by ``***``."""
    return _URL_QUERY.sub(r"\1?***", _URL_USERINFO.sub(r"\1***@", text))


def _secrets_of(url: str) -> list[str]:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    found = [userinfo, userinfo.partition(":")[2], parts.query, parts.fragment]
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)  # the longest first: no partial leftovers


class _Redactor(logging.Filter):
    """Removes HTTPLoggers' credentials and query strings from httpx's log lines (which show each URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.loggers: weakref.WeakSet[HTTPLogger] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        loggers = list(self.loggers)
        if loggers:
            message = original = record.getMessage()
            for logger in loggers:
                message = logger._scrub(message)
            if message != original:
                record.msg, record.args = message, None
        return True


_redactor = _Redactor()
logging.getLogger("httpx").addFilter(_redactor)
