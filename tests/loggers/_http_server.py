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

# A fault for a request number: None (answer 200), an int status, ("retry-after", seconds), "slow", "drop".
Fault = Any


@dataclass
class Collector:
    fault_for: Callable[[int], Fault] = lambda n: None
    requests: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)  # every body that got a 200 answer
    keys: list[str] = field(default_factory=list)  # Idempotency-Key of every request, answered or not

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests += 1
        headers = dict(scope["headers"])
        self.keys.append(headers.get(b"idempotency-key", b"").decode())
        fault = self.fault_for(self.requests)
        if fault == "slow":
            await asyncio.sleep(0.5)  # longer than the client's timeout: it retries; this one still lands
            self.received.append(json.loads(body))
            await _answer(send, 200)
        elif fault == "drop":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionResetError("dropped")  # uvicorn closes the connection mid-response
        elif isinstance(fault, tuple):
            await _answer(send, 429, [(b"retry-after", str(fault[1]).encode())])
        elif isinstance(fault, int):
            await _answer(send, fault)
        else:
            self.received.append(json.loads(body))
            await _answer(send, 200)


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": b"{}"})


@contextmanager
def serve(app: Any, path: str = "/records", lifespan: str = "off") -> Iterator[str]:
    """Serve the ASGI ``app`` on a free port on 127.0.0.1 in a thread; yield its URL; stop it at exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan=lifespan)
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
