"""HTTPLogger against a real uvicorn server on 127.0.0.1 that injects faults."""

from __future__ import annotations

from typing import Any

import anyio.lowlevel
import pytest

from ignite_async import Engine, Events
from ignite_async.loggers import HTTPLogger, HTTPLoggerError
from tests.loggers._http_server import Collector, serve

pytestmark = pytest.mark.anyio


async def step(engine: Engine, batch: int) -> float:
    await anyio.lowlevel.checkpoint()
    return float(batch)


def faults(n: int) -> Any:
    if n % 3 == 0:
        return 503
    if n % 5 == 0:
        return ("retry-after", 0.02)
    if n % 7 == 0:
        return "slow"
    if n % 11 == 0:
        return "drop"
    return None


async def test_every_record_arrives_despite_faults_and_duplicates_share_a_key() -> None:
    app = Collector(fault_for=faults)
    with serve(app) as url:
        engine = Engine(step)
        async with HTTPLogger(url, batch_size=50, flush_interval=0.05, timeout=0.2, backoff=0.01) as logger:
            logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
            await engine.run(range(2000))
        stats = logger.statistics()
    batches: dict[str, Any] = {}
    for body in app.received:
        batches.setdefault(body["batch"], body)  # the server's dedupe by Idempotency-Key
    steps = sorted(r["step"] for body in batches.values() for r in body["records"])
    assert steps == list(range(1, 2001))  # every record, exactly once after dropping repeated keys
    assert len(app.received) > len(batches)  # slow answers made the client retry batches that had landed
    assert set(app.keys) == set(batches)  # every request carried its batch's key, the same on each retry
    assert all(body["run"] == logger.run_id for body in batches.values())
    assert (stats.sent, stats.dropped, stats.pending) == (2000, 0, 0)
    assert stats.retried >= app.requests - len(batches) - 1


async def test_a_refusing_server_fails_the_run_naming_status_and_url() -> None:
    app = Collector(fault_for=lambda n: 401)
    with serve(app) as url:
        engine = Engine(step)
        logger = HTTPLogger(url, batch_size=10, flush_interval=0.05)
        logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
        with pytest.raises(HTTPLoggerError, match=rf"{url} answered 401"):
            await engine.run(range(100_000))
        await logger.close()
        assert engine.state.iteration < 100_000  # it failed promptly, not at the end
        assert app.requests == 1  # a 401 is not retried


async def test_on_error_warn_counts_and_training_completes() -> None:
    app = Collector(fault_for=lambda n: 400)
    with serve(app) as url:
        engine = Engine(step)
        async with HTTPLogger(url, batch_size=10, flush_interval=0.05, on_error="warn") as logger:
            logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
            with pytest.warns(UserWarning, match="answered 400"):
                state = await engine.run(range(30))
    assert state.iteration == 30
    assert logger.statistics().dropped == 30


async def test_drop_oldest_bounds_the_buffer_and_counts() -> None:
    app = Collector(fault_for=lambda n: "slow" if n == 1 else None)
    with serve(app) as url:
        engine = Engine(step)
        async with HTTPLogger(
            url, batch_size=5, max_buffer=20, when_full="drop_oldest", flush_interval=0.01, timeout=5.0
        ) as logger:
            logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
            await engine.run(range(500))
        stats = logger.statistics()
    assert stats.dropped > 0
    assert stats.sent + stats.dropped == 500


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        HTTPLogger("ftp://example.org/x")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        HTTPLogger("http://127.0.0.1:1/x", batch_size=0)
    with pytest.raises(ValueError, match="max_buffer must be an integer >= 1"):
        HTTPLogger("http://127.0.0.1:1/x", max_buffer=0)
    with pytest.raises(ValueError, match="when_full must be"):
        HTTPLogger("http://127.0.0.1:1/x", when_full="block")  # type: ignore[arg-type]
