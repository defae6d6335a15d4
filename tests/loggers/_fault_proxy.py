"""A real HTTP/1.1 reverse proxy on 127.0.0.1 that injects faults between a client and a real upstream server.

Faults are adjusted while it runs: added latency per request; the connection closed without an answer for the
next N requests or a seeded fraction of them, either *before* forwarding (the upstream never saw it) or *after*
forwarding (the upstream applied it, the client never heard: the case that tests idempotency); a 503 answer
for the next N or a fraction; and a ``down`` switch (every connection closed at once, as a server that went
away). It counts what it did with every request, and can keep the bodies it forwarded.

Example (against any upstream URL)::

    with FaultProxy("http://127.0.0.1:5000") as proxy:
        proxy.latency = 0.2
        proxy.drop_next(2, after_forwarding=True)
        proxy.fail_next(1)
        ...  # point the client at proxy.url
        print(proxy.stats())
"""

from __future__ import annotations

import contextlib
import http.server
import random
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal

import httpx

# Headers that belong to one hop, not to the request or answer (RFC 9110 7.6.1), and those the proxy recomputes.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "accept-encoding",
    "content-encoding",
}

Fate = Literal["forward", "drop_before", "drop_after", "fail", "refuse"]


@dataclass(frozen=True)
class ProxyStats:
    """What the proxy did with the requests it read so far.

    ``requests``: requests read (counted before their latency; new connections refused while down are not);
    ``forwarded``: sent to the upstream (``answered + dropped_after`` + upstream errors);
    ``answered``: the upstream's answer relayed to the client; ``dropped_before`` / ``dropped_after``:
    connection closed without an answer, before / after forwarding; ``failed``: answered with the fault status
    (503) without forwarding; ``refused``: connections or requests closed at once while ``down``;
    ``upstream_errors``: forwarding failed (answered 502).
    """

    requests: int = 0
    forwarded: int = 0
    answered: int = 0
    dropped_before: int = 0
    dropped_after: int = 0
    failed: int = 0
    refused: int = 0
    upstream_errors: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_before + self.dropped_after


@dataclass(frozen=True)
class ForwardedRequest:
    """A request the proxy forwarded (kept with ``record_bodies=True``)."""

    method: str
    path: str
    body: bytes
    fate: Fate


class FaultProxy:
    """A reverse proxy in front of ``upstream`` on a free port of 127.0.0.1, served by threads (one per
    connection) until :meth:`stop` or the end of its ``with`` block.

    :param upstream: the base URL of the real server (``http://host:port``); request paths are appended to it.
    :param seed: seed of the RNG that picks the requests hit by the fractional faults (reproducible runs).
    :param record_bodies: keep every forwarded request in :attr:`forwarded`.
    :param upstream_timeout: seconds the proxy waits for the upstream (bounded, so that no thread hangs).
    """

    def __init__(
        self, upstream: str, *, seed: int = 0, record_bodies: bool = False, upstream_timeout: float = 30.0
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.record_bodies = record_bodies
        self._lock = threading.Condition()
        self._rng = random.Random(seed)
        self._stats = ProxyStats()
        self.forwarded: list[ForwardedRequest] = []
        self._latency = 0.0
        self._down = False
        self._drop_next = 0
        self._drop_next_after = False
        self._drop_fraction = 0.0
        self._drop_fraction_after = False
        self._fail_next = 0
        self._fail_fraction = 0.0
        self._fail_status = 503
        self._faulty_path: str | None = None
        self._stopping = threading.Event()
        self._client = httpx.Client(timeout=upstream_timeout, follow_redirects=False)
        self._server = _Server(self)
        self._thread: threading.Thread | None = None
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    # ------------------------------------------------------------------ faults, adjustable while it runs

    @property
    def latency(self) -> float:
        """Seconds added to every request read, before its fate is decided (0 by default)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds!r}")
        self._latency = float(seconds)

    @property
    def down(self) -> bool:
        """While True, every new connection and every request is closed at once, unread and unanswered."""
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = bool(value)

    @property
    def faulty_path(self) -> str | None:
        """When set, only requests whose path contains it meet the faults (drops, failures); the others
        are forwarded (still with the latency, and refused while down). None (the default): every request."""
        return self._faulty_path

    @faulty_path.setter
    def faulty_path(self, value: str | None) -> None:
        self._faulty_path = value

    def drop_next(self, n: int, *, after_forwarding: bool = False) -> None:
        """Close the connection without an answer for the next ``n`` requests, before forwarding them or
        after the upstream answered them (its answer is thrown away)."""
        with self._lock:
            self._drop_next, self._drop_next_after = _count(n), after_forwarding

    def drop_fraction(self, p: float, *, after_forwarding: bool = False) -> None:
        """Close the connection without an answer for a fraction ``p`` of the requests (picked by the seeded
        RNG), before or after forwarding them."""
        with self._lock:
            self._drop_fraction, self._drop_fraction_after = _fraction(p), after_forwarding

    def fail_next(self, n: int, *, status: int = 503) -> None:
        """Answer the next ``n`` requests with ``status`` without forwarding them."""
        with self._lock:
            self._fail_next, self._fail_status = _count(n), status

    def fail_fraction(self, p: float, *, status: int = 503) -> None:
        """Answer a fraction ``p`` of the requests (seeded RNG) with ``status`` without forwarding them."""
        with self._lock:
            self._fail_fraction, self._fail_status = _fraction(p), status

    def clear(self) -> None:
        """No faults from now on (the counters stay)."""
        with self._lock:
            self._latency = 0.0
            self._down = False
            self._drop_next = self._fail_next = 0
            self._drop_fraction = self._fail_fraction = 0.0

    # ------------------------------------------------------------------ what happened

    def stats(self) -> ProxyStats:
        with self._lock:
            return self._stats

    def wait_for(self, predicate: Callable[[ProxyStats], bool], timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until ``predicate(stats)`` holds; whether it does."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self._stats), timeout)

    # ------------------------------------------------------------------ running

    def start(self) -> FaultProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests being handled are cut short (latency waits end at once)."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()  # returns once serve_forever has (within its poll interval)
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()  # handler threads are daemons: not joined
        self._client.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ for the handler threads

    def _count_event(self, **increments: int) -> None:
        with self._lock:
            values = {name: getattr(self._stats, name) + n for name, n in increments.items()}
            self._stats = replace(self._stats, **values)
            self._lock.notify_all()

    def _decide(self, path: str) -> Fate:
        """The fate of a request for ``path`` just read (after its latency)."""
        with self._lock:
            if self._down:
                return "refuse"
            if self._faulty_path is not None and self._faulty_path not in path:
                return "forward"
            if self._drop_next > 0:
                self._drop_next -= 1
                return "drop_after" if self._drop_next_after else "drop_before"
            if self._fail_next > 0:
                self._fail_next -= 1
                return "fail"
            # Both draws always made, so that a given seed picks the same requests whatever the other fraction.
            drop, fail = self._rng.random(), self._rng.random()
            if drop < self._drop_fraction:
                return "drop_after" if self._drop_fraction_after else "drop_before"
            if fail < self._fail_fraction:
                return "fail"
            return "forward"

    def _delay(self) -> None:
        if self._latency > 0:
            self._stopping.wait(self._latency)

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> httpx.Response:
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        kept.append(("Accept-Encoding", "identity"))  # relayed byte for byte, no re-encoding here
        return self._client.request(method, self.upstream + path, headers=kept, content=body)

    def _keep(self, method: str, path: str, body: bytes, fate: Fate) -> None:
        if self.record_bodies:
            with self._lock:
                self.forwarded.append(ForwardedRequest(method, path, body, fate))


def _count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    return n


def _fraction(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a fraction in [0, 1], got {p!r}")
    return float(p)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    block_on_close = False

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # A new connection while down: closed unread (the client sees a reset or an empty answer).
        if self.proxy.down:
            self.proxy._count_event(refused=1)
            return False
        return True

    def server_bind(self) -> None:
        # No getfqdn() of 127.0.0.1 (HTTPServer's default), which may wait on a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive connections, as a real tracking server offers
    server: _Server
    timeout = 60  # an idle keep-alive connection is closed after this, so that no handler thread waits forever

    def setup(self) -> None:
        super().setup()
        # Answers are small writes: without TCP_NODELAY each would wait for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _drop(self) -> None:
        # Closed without a byte of answer, as a server or network that died mid-request.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        proxy._count_event(requests=1)
        if proxy.down:
            proxy._count_event(refused=1)
            self._drop()
            return
        proxy._delay()
        fate = proxy._decide(self.path)
        if fate == "refuse" or proxy._stopping.is_set():
            proxy._count_event(refused=1)
            self._drop()
            return
        if fate == "drop_before":
            proxy._count_event(dropped_before=1)
            self._drop()
            return
        if fate == "fail":
            proxy._count_event(failed=1)
            self._answer(proxy._fail_status, [("Content-Type", "application/json")], b'{"error": "fault proxy"}')
            return
        try:
            response = proxy._forward(self.command, self.path, list(self.headers.items()), body)
        except httpx.HTTPError as exc:
            proxy._count_event(forwarded=1, upstream_errors=1)
            self._answer(502, [("Content-Type", "text/plain")], f"upstream error: {exc!r}".encode())
            return
        proxy._keep(self.command, self.path, body, fate)
        if fate == "drop_after":
            proxy._count_event(forwarded=1, dropped_after=1)
            self._drop()
            return
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        proxy._count_event(forwarded=1, answered=1)  # before the answer: a client that has it sees it counted
        self._answer(response.status_code, headers, response.content)

    def _answer(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.send_response_only(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle
