"""A real HTTP server on 127.0.0.1 for logger tests: uvicorn serving a small ASGI app that records what it
receives and injects the faults it is told to, by request number."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

# A fault for a request number: None (answer 200), an int status, ("retry-after", value) (a 429 with that
# Retry-After header), "slow", "drop" (the connection is closed mid-answer), "hang" (never answered).
Fault = Any


@dataclass
class Collector:
    fault_for: Callable[[int], Fault] = lambda n: None
    dedupe: bool = False  # answer 200 to a repeated Idempotency-Key without keeping its body again
    requests: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)  # every body kept after a 200 answer
    keys: list[str] = field(default_factory=list)  # Idempotency-Key of every request, answered or not
    duplicates: int = 0  # requests answered 200 whose key had been kept already (with dedupe)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client gave up mid-body (a cancelled send): nothing arrived, as for a real server
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests += 1
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key", b"").decode()
        self.keys.append(key)
        fault = self.fault_for(self.requests)
        if fault == "slow":
            await asyncio.sleep(0.5)  # longer than the client's timeout: it retries; this one still lands
            self._keep(key, body)
            await _answer(send, 200)
        elif fault == "drop":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionResetError("dropped")  # uvicorn closes the connection mid-response
        elif fault == "hang":
            while (await receive())["type"] != "http.disconnect":  # until the client gives up
                pass
        elif isinstance(fault, tuple):
            await _answer(send, 429, [(b"retry-after", str(fault[1]).encode())])
        elif isinstance(fault, int):
            await _answer(send, fault)
        else:
            self._keep(key, body)
            await _answer(send, 200)

    def _keep(self, key: str, body: bytes) -> None:
        if self.dedupe and key in self._kept:
            self.duplicates += 1
            return
        self.received.append(json.loads(body))
        self._kept.add(key)

    def __post_init__(self) -> None:
        self._kept: set[str] = set()

    def steps(self) -> list[int]:
        """The steps of every record kept, in arrival order."""
        return [r["step"] for body in self.received for r in body["records"]]


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": b"{}"})


@contextmanager
def serve(
    app: Any, path: str = "/records", lifespan: str = "off", graceful_shutdown: float | None = None
) -> Iterator[str]:
    """Serve the ASGI ``app`` on a free port on 127.0.0.1 in a thread; yield its URL; stop it at exit.

    ``graceful_shutdown``: seconds that requests still open at exit (e.g. left hanging) may hold it.
    """
    # Created as IPPROTO_TCP, so that asyncio sets TCP_NODELAY on the connections: otherwise each answer's
    # last small write waits for the client's delayed ACK (Nagle), 40 ms per request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan=lifespan, timeout_graceful_shutdown=graceful_shutdown)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:  # uvicorn offers a flag, not an event, for "listening"
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def refusing() -> Iterator[str]:
    """A URL on 127.0.0.1 where nothing listens (connections are refused): a server that is down.

    The port stays bound, without listening, so that no other process can take it meanwhile.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/records"
    finally:
        sock.close()
