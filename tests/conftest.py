"""Shared fixtures: every async test runs on both anyio backends (asyncio and trio)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ignite_async import Engine, Events


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def record_events(engine: Engine, trace: list[tuple[str, int, int]], events: Any = None) -> None:
    """Append ``(event name, epoch, iteration)`` to ``trace`` at every firing of ``events``.

    EXCEPTION_RAISED is left out by default, because attaching a handler there changes what run() does.
    """
    skip = {"EXCEPTION_RAISED", "TERMINATE_SINGLE_EPOCH"}
    for event in events if events is not None else [e for e in Events if e.name not in skip]:
        engine.add_event_handler(event, _recorder(event.name, trace))


def _recorder(name: str, trace: list[tuple[str, int, int]]) -> Callable[[Engine], None]:
    def record(engine: Engine) -> None:
        trace.append((name, engine.state.epoch, engine.state.iteration))

    return record


@pytest.fixture
def trace() -> list[tuple[str, int, int]]:
    return []


class Clock:
    """A clock the test drives, to monkeypatch in place of time.monotonic or perf_counter."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
