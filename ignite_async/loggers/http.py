"""Records POSTed to an HTTP endpoint in batches, with retries, without ever stalling training."""

from __future__ import annotations

import collections
import random
import uuid
import warnings
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import anyio
import httpx

from ignite_async.engine import Engine
from ignite_async.loggers.base import BaseLogger, Record

__all__ = ["HTTPLogger", "HTTPLoggerError", "HTTPLoggerStatistics"]

_RETRYABLE = frozenset({408, 429})


class HTTPLoggerError(RuntimeError):
    """The endpoint refused a batch (a non-retryable status), or kept failing past ``max_retries``."""


@dataclass
class HTTPLoggerStatistics:
    """Records ``sent`` (acknowledged), ``dropped`` (buffer full, or given up), ``pending`` (not yet sent);
    ``retried``: requests sent again."""

    sent: int = 0
    retried: int = 0
    dropped: int = 0
    pending: int = 0


class HTTPLogger(BaseLogger):
    """POST records as JSON ``{"run", "batch", "records": [{"tag", "name", "step", "value", "time"}]}``.

    Batches of up to ``batch_size`` records are sent by a background task of the engine, as soon as they are
    full or ``flush_interval`` seconds after their first record, so a slow or failing server never stalls the
    training step. Each batch has an ``Idempotency-Key`` header equal to its ``batch`` id, the same on every
    retry, so the server can drop duplicates. Connection errors, timeouts, 408, 429 and 5xx are retried with
    exponential backoff and jitter, honouring ``Retry-After``. Any other error status fails the run with an
    :class:`HTTPLoggerError` naming it and the URL (or only warns, with ``on_error="warn"``). At most
    ``max_buffer`` records wait: beyond, ``when_full="wait"`` holds the training loop back, and
    ``"drop_oldest"`` drops (and counts) the oldest.

    :raises ValueError: for a URL that is not http(s), ``batch_size`` or ``max_buffer`` < 1, or unknown modes.
    """

    def __init__(
        self,
        url: str,
        *,
        run_id: str | None = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        when_full: Literal["wait", "drop_oldest"] = "wait",
        timeout: float = 10.0,
        max_retries: int = 8,
        headers: dict[str, str] | None = None,
        on_error: Literal["raise", "warn"] = "raise",
        backoff: float = 0.1,
    ) -> None:
        super().__init__()
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
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
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.when_full = when_full
        self.timeout = timeout
        self.max_retries = max_retries
        self.headers = dict(headers or {})
        self.on_error = on_error
        self.backoff = backoff
        self._buffer: collections.deque[Record] = collections.deque()
        self._stats = HTTPLoggerStatistics()
        self._batches = 0
        self._in_flight = 0
        self._sending = False
        self._filled: anyio.Event | None = None  # set when a batch is full (or a flush wants everything)
        self._space: anyio.Event | None = None  # set when records leave the buffer
        self._flushing = False
        self._refused: str | None = None  # set once the server refused with on_error="raise": stop sending
        self._client: httpx.AsyncClient | None = None

    def statistics(self) -> HTTPLoggerStatistics:
        """Counts of records sent, retried requests, records dropped and records pending."""
        self._stats.pending = len(self._buffer) + self._in_flight
        return HTTPLoggerStatistics(**vars(self._stats))

    # ------------------------------------------------------------------ taking records (on the loop)

    async def _ship(self, engine: Engine, records: list[Record]) -> None:
        for record in records:
            while len(self._buffer) >= self.max_buffer:
                if self.when_full == "drop_oldest":
                    self._buffer.popleft()
                    self._stats.dropped += 1
                    continue
                self._space = anyio.Event()  # "wait": backpressure on the training loop
                if not self._sending:
                    self._start_sender(engine)
                await self._space.wait()
            self._buffer.append(record)
        if len(self._buffer) >= self.batch_size:
            self._wake(self._filled)
        if not self._sending:
            self._start_sender(engine)

    def _start_sender(self, engine: Engine) -> None:
        if engine._task_group is None or engine._cancelling:
            return  # outside a run: the end-of-run flush sends it
        self._sending = True
        engine._start_task(self._send_loop)

    @staticmethod
    def _wake(event: anyio.Event | None) -> None:
        if event is not None:
            event.set()

    # ------------------------------------------------------------------ sending (a background task)

    async def _send_loop(self) -> None:
        try:
            while self._buffer:
                if len(self._buffer) < self.batch_size and not self._flushing:
                    self._filled = anyio.Event()
                    with anyio.move_on_after(self.flush_interval):
                        await self._filled.wait()
                await self._send_one_batch()
        finally:
            self._sending = False

    async def _send_one_batch(self) -> None:
        batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
        self._wake(self._space)
        self._in_flight += len(batch)
        try:
            await self._post(batch)
        finally:
            self._in_flight -= len(batch)

    async def _post(self, batch: list[Record]) -> None:
        if self._refused is not None:
            self._stats.dropped += len(batch)  # the run already failed with that error
            return
        self._batches += 1
        batch_id = f"{self.run_id}-{self._batches}"
        body = {"run": self.run_id, "batch": batch_id, "records": [r.as_dict() for r in batch]}
        headers = {**self.headers, "Idempotency-Key": batch_id}
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._stats.retried += 1
            delay: float | None = None
            try:
                response = await self._client.post(self.url, json=body, headers=headers)
            except httpx.TransportError as exc:  # connection refused or dropped, timeouts
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self._stats.sent += len(batch)
                    return
                if response.status_code not in _RETRYABLE and response.status_code < 500:
                    self._give_up(
                        batch, f"{self.url} answered {response.status_code} {response.reason_phrase}: not retried"
                    )
                    return
                problem = f"{response.status_code} {response.reason_phrase}"
                delay = _retry_after(response)
            if attempt < self.max_retries:
                backoff = self.backoff * 2**attempt * (0.5 + random.random())  # jitter spreads retries out
                await anyio.sleep(delay if delay is not None else backoff)
        self._give_up(batch, f"{self.url} still failing after {self.max_retries} retries ({problem})")

    def _give_up(self, batch: list[Record], message: str) -> None:
        self._stats.dropped += len(batch)
        if self.on_error == "raise":
            self._refused = message
            raise HTTPLoggerError(message)
        warnings.warn(f"HTTPLogger: {message}; {self._stats.dropped} records dropped so far", stacklevel=1)

    # ------------------------------------------------------------------ flushing

    async def flush(self) -> None:
        """Send every record held now (in the caller's task), waiting out retries."""
        self._flushing = True
        self._wake(self._filled)
        try:
            while self._buffer:
                await self._send_one_batch()
        finally:
            self._flushing = False

    async def _on_run_end(self) -> None:
        await self.close()  # a later run opens a new client: no connection outlives a run

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            if self._client is not None:
                await self._client.aclose()
                self._client = None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the backoff
