"""The fault proxy itself, in front of a tiny real upstream (http.server in a thread): it does what it says."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.loggers._fault_proxy import FaultProxy


class _Upstream(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _Echo)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers 201 with ``<method> <path> <body>`` and a header of its own; keeps every body it received."""

    protocol_version = "HTTP/1.1"
    server: _Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _echo(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.bodies.append(body)
        content = f"{self.command} {self.path} ".encode() + body
        self.send_response_only(201)
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _echo


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[FaultProxy]:
    with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}", record_bodies=True) as proxy:
        yield proxy


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=5) as client:
        yield client


def test_forwards_method_path_body_status_and_headers(
    upstream: _Upstream, proxy: FaultProxy, client: httpx.Client
) -> None:
    response = client.post("/api/2.0/x?a=1", content=b"payload")
    assert (response.status_code, response.content) == (201, b"POST /api/2.0/x?a=1 payload")
    assert response.headers["x-upstream"] == "yes"
    assert client.get("/again").content == b"GET /again "  # the same keep-alive connection, again
    assert upstream.bodies == [b"payload", b""]
    assert [(r.method, r.path, r.body) for r in proxy.forwarded] == [
        ("POST", "/api/2.0/x?a=1", b"payload"),
        ("GET", "/again", b""),
    ]
    stats = proxy.stats()
    assert (stats.requests, stats.forwarded, stats.answered, stats.dropped, stats.failed) == (2, 2, 2, 0, 0)


def test_latency_is_added_to_every_request(proxy: FaultProxy, client: httpx.Client) -> None:
    proxy.latency = 0.2
    for _ in range(2):
        started = time.perf_counter()
        assert client.get("/").status_code == 201
        assert time.perf_counter() - started >= 0.2
    proxy.latency = 0
    started = time.perf_counter()
    client.get("/")
    assert time.perf_counter() - started < 0.2


def test_drop_before_forwarding_never_reaches_the_upstream(
    upstream: _Upstream, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.drop_next(2)
    for _ in range(2):
        with pytest.raises(httpx.TransportError):  # closed without an answer
            client.post("/", content=b"lost")
    assert client.post("/", content=b"kept").status_code == 201  # a new connection: the faults are used up
    assert upstream.bodies == [b"kept"]
    stats = proxy.stats()
    assert (stats.requests, stats.dropped_before, stats.dropped_after, stats.forwarded) == (3, 2, 0, 1)


def test_drop_after_forwarding_reaches_the_upstream_but_not_the_client(
    upstream: _Upstream, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.drop_next(1, after_forwarding=True)
    with pytest.raises(httpx.TransportError):
        client.post("/", content=b"applied")
    assert upstream.bodies == [b"applied"]  # the server applied it; the client never heard
    assert [r.fate for r in proxy.forwarded] == ["drop_after"]
    stats = proxy.stats()
    assert (stats.forwarded, stats.dropped_after, stats.answered) == (1, 1, 0)


def test_503_for_the_next_n_requests_is_answered_without_forwarding(
    upstream: _Upstream, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.fail_next(2)
    assert [client.post("/", content=b"x").status_code for _ in range(3)] == [503, 503, 201]
    assert upstream.bodies == [b"x"]
    assert proxy.stats().failed == 2


def test_fractions_are_seeded_and_about_right(upstream: _Upstream) -> None:
    def pattern(seed: int) -> list[int | str]:
        with (
            FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}", seed=seed) as proxy,
            httpx.Client(base_url=proxy.url, timeout=5) as client,
        ):
            proxy.fail_fraction(0.3)
            proxy.drop_fraction(0.2)
            out: list[int | str] = []
            for _ in range(60):
                try:
                    out.append(client.get("/").status_code)
                except httpx.TransportError:
                    out.append("drop")
            stats = proxy.stats()
            assert stats.failed == out.count(503)
            assert stats.dropped_before == out.count("drop")
            return out

    first = pattern(1)
    assert first == pattern(1)  # the same seed picks the same requests
    assert 3 <= first.count("drop") <= 24
    assert 3 <= first.count(503) <= 30
    assert first.count(201) == 60 - first.count("drop") - first.count(503)


def test_down_closes_every_connection_until_it_is_up_again(
    upstream: _Upstream, proxy: FaultProxy, client: httpx.Client
) -> None:
    assert client.get("/").status_code == 201  # a keep-alive connection is open
    proxy.down = True
    for _ in range(3):
        with pytest.raises(httpx.TransportError):
            client.get("/")
    stats = proxy.stats()
    assert stats.refused == 3
    assert stats.forwarded == 1
    proxy.down = False
    assert client.get("/").status_code == 201
    assert len(upstream.bodies) == 2


def test_wait_for_is_bounded(proxy: FaultProxy, client: httpx.Client) -> None:
    started = time.monotonic()
    assert not proxy.wait_for(lambda s: s.requests >= 1, timeout=0.1)
    assert time.monotonic() - started < 5
    client.get("/")
    assert proxy.wait_for(lambda s: s.answered >= 1, timeout=5)


def test_stop_ends_a_latency_wait_and_closes_the_port(upstream: _Upstream) -> None:
    proxy = FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}").start()
    proxy.latency = 30
    errors: list[BaseException] = []

    def slow_request() -> None:
        try:
            httpx.get(proxy.url + "/", timeout=20)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow_request, daemon=True)
    thread.start()
    assert proxy.wait_for(lambda s: s.requests >= 1, timeout=10)  # it waits out its latency now
    started = time.monotonic()
    proxy.stop()
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert time.monotonic() - started < 15  # nothing waited out the 30 s
    with pytest.raises(httpx.ConnectError):
        httpx.get(proxy.url + "/", timeout=2)


def test_bad_fault_settings_are_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="n must be"):
        proxy.drop_next(-1)
    with pytest.raises(ValueError, match="fraction"):
        proxy.fail_fraction(1.5)
    with pytest.raises(ValueError, match="latency"):
        proxy.latency = -1


def test_faulty_path_limits_the_faults_to_matching_requests(
    upstream: _Upstream, proxy: FaultProxy, client: httpx.Client
) -> None:
    proxy.faulty_path = "/log-batch"
    proxy.fail_next(1)
    assert client.post("/create-run", content=b"a").status_code == 201  # not matching: forwarded
    assert client.post("/runs/log-batch", content=b"b").status_code == 503
    assert client.post("/runs/log-batch", content=b"c").status_code == 201
    assert upstream.bodies == [b"a", b"c"]


def test_a_chunked_request_body_is_forwarded_whole(upstream: _Upstream, client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first,"
        yield b"second"

    assert client.post("/", content=chunks()).content == b"POST / first,second"  # sent with chunked encoding
    assert upstream.bodies == [b"first,second"]
