"""HTTPLogger against a real uvicorn server on 127.0.0.1 that injects faults."""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.lowlevel
import pytest

from ignite_async import Engine, Events
from ignite_async.loggers import HTTPLogger, HTTPLoggerError, LoggerWarning
from tests.loggers._http_server import Collector, refusing, serve

pytestmark = pytest.mark.anyio


async def step(engine: Engine, batch: int) -> float:
    await anyio.lowlevel.checkpoint()
    return float(batch)


def attach(logger: HTTPLogger, engine: Engine, event: Any = Events.ITERATION_COMPLETED) -> None:
    logger.attach_output_handler(engine, event, "train", output_transform=lambda x: x)


@contextmanager
def lost_records() -> Iterator[list[warnings.WarningMessage]]:
    """Records the LoggerWarnings (which the test configuration would turn into errors)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught  # type: ignore[misc]
    caught[:] = [w for w in caught if issubclass(w.category, LoggerWarning)]


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
            attach(logger, engine)
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
    assert (stats.sent, stats.dropped, stats.pending, stats.logged) == (2000, 0, 0, 2000)
    assert stats.retried >= app.requests - len(batches) - 1


async def test_a_resumed_run_with_the_same_run_id_keeps_every_record_on_a_deduping_server() -> None:
    app = Collector(dedupe=True)
    with serve(app) as url:
        for _ in range(2):  # the first run, then its resumption by a new process: a new logger, the same run_id
            engine = Engine(step)
            async with HTTPLogger(url, run_id="run-7", batch_size=10, flush_interval=0.05) as logger:
                attach(logger, engine)
                with anyio.fail_after(20):
                    await engine.run(range(50))
            assert logger.statistics().sent == 50
    assert app.duplicates == 0
    assert sorted(app.steps()) == sorted(list(range(1, 51)) * 2)
    keys = [body["batch"] for body in app.received]
    assert len(set(keys)) == len(keys)
    assert all(key.startswith("run-7-") for key in keys)
    assert len({key.rsplit("-", 1)[0] for key in keys}) == 2  # a random part per logger, then a counter


async def paced_step(engine: Engine, batch: int) -> float:
    await anyio.sleep(0.0005)  # a few hundred records before the cancellation, not a full buffer
    return float(batch)


async def cancelled_run(url: str, rng: random.Random, server: str, app: Collector) -> None:
    """One run cancelled at a random moment; the counts add up whenever they are looked at."""
    engine = Engine(paced_step)
    logger = HTTPLogger(
        url,
        batch_size=rng.randint(1, 30),
        flush_interval=0.01,
        timeout=2.0,
        backoff=0.005,
        max_backoff=0.02,
        flush_timeout=10.0 if server == "up" else 0.3,
    )
    attach(logger, engine)
    broken: list[Any] = []

    def check() -> None:
        s = logger.statistics()
        if s.sent + s.dropped + s.pending != s.logged:
            broken.append(s)

    engine.add_event_handler(Events.ITERATION_COMPLETED, check)
    running = True

    async def watch() -> None:  # looks at every scheduling point of the run, its flush included
        while running:
            check()
            await anyio.lowlevel.checkpoint()

    with lost_records() as lost, anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with anyio.move_on_after(rng.uniform(0.01, 0.3)) as scope:
                await engine.run(range(10**7))
            running = False
    assert scope.cancelled_caught
    check()
    assert broken == []
    stats = logger.statistics()
    assert stats.logged > 0
    assert stats.pending == 0  # the end-of-run flush sent or dropped everything
    if server == "up":
        assert (stats.sent, stats.dropped) == (stats.logged, 0)
        steps = [r["step"] for b in app.received if b["run"] == logger.run_id for r in b["records"]]
        assert sorted(steps) == list(range(1, stats.logged + 1))  # each record once, none lost
        assert lost == []
    else:
        assert (stats.sent, stats.dropped) == (0, stats.logged)
        assert 1 <= len(lost) <= 2  # during the run at most once (rate-limited), and at its end
        assert f"{stats.logged} of {stats.logged} dropped so far" in str(lost[-1].message)
    await logger.close()


def test_the_test_server_keeps_nothing_of_a_request_cut_off_mid_body() -> None:
    # A cancelled send can close the connection mid-body; the deduping server must not then take the resend
    # (same key) for a duplicate: that would count records as sent that it never kept.
    import http.client
    import socket

    app = Collector(dedupe=True)
    body = b'{"run": "r", "batch": "k", "records": [{"step": 1}]}'
    with serve(app) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as cut_off:
            head = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k\r\n"
            cut_off.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        deadline = time.monotonic() + 10
        resend = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        resend.request("POST", parts.path or "/", body, {"Idempotency-Key": "k"})
        assert resend.getresponse().status == 200
        resend.close()
        assert time.monotonic() < deadline
    assert app.steps() == [1]
    assert app.duplicates == 0


@pytest.mark.parametrize("server", ["up", "down"])
async def test_cancelled_at_random_moments_every_record_is_counted_at_every_moment(server: str) -> None:
    rng = random.Random(20240611)
    # Up: a deduping server, with slow answers so that cancellations often cut a request in flight.
    app = Collector(dedupe=True, fault_for=lambda n: "slow" if n % 10 == 0 else None)
    with serve(app) if server == "up" else refusing() as url:
        for _trial in range(5):
            await cancelled_run(url, rng, server, app)


async def test_retry_after_is_capped_and_nonsense_backs_off_normally() -> None:
    in_a_day = format_datetime(datetime.now(UTC) + timedelta(days=1), usegmt=True)
    values = ["inf", "3600", in_a_day, "-5", "nan", "soon"]
    app = Collector(fault_for=lambda n: ("retry-after", values[n - 1]) if n <= len(values) else None)
    with serve(app) as url:
        engine = Engine(step)
        # A long flush_interval: the end of the run sends the 5 records as one batch.
        logger = HTTPLogger(url, flush_interval=60.0, backoff=0.01, max_backoff=0.25, max_retries=10)
        attach(logger, engine)
        started = time.perf_counter()
        with anyio.fail_after(20):
            await engine.run(range(5))
        elapsed = time.perf_counter() - started
        await logger.close()
    assert app.steps() == [1, 2, 3, 4, 5]
    assert app.requests == len(values) + 1
    assert logger.statistics().retried == len(values)
    # 3600 s and the date in a day were honoured up to max_backoff (2 x 0.25 s), "inf" and the others got
    # the normal, short backoff.
    assert 0.45 <= elapsed < 5


async def test_the_exponential_backoff_is_capped_at_max_backoff() -> None:
    app = Collector(fault_for=lambda n: 503 if n <= 6 else None)
    with serve(app) as url:
        engine = Engine(step)
        logger = HTTPLogger(url, flush_interval=0.01, backoff=2.0, max_backoff=0.05, max_retries=10)
        attach(logger, engine)
        started = time.perf_counter()
        with anyio.fail_after(20):
            await engine.run(range(3))
        elapsed = time.perf_counter() - started
        await logger.close()
    assert app.steps() == [1, 2, 3]
    assert elapsed < 5  # uncapped, 6 retries from 2 s would wait more than 60 s


async def test_a_server_down_at_the_end_of_the_run_costs_flush_timeout_not_the_run() -> None:
    with refusing() as url:
        engine = Engine(step)
        logger = HTTPLogger(url, batch_size=10, flush_timeout=1.0)  # the default retries take about 28 s
        attach(logger, engine)
        started = time.perf_counter()
        with lost_records() as lost, anyio.fail_after(20):
            state = await engine.run(range(50))
        elapsed = time.perf_counter() - started
    assert state.iteration == 50
    assert 0.8 <= elapsed < 6
    stats = logger.statistics()
    assert (stats.sent, stats.dropped, stats.pending, stats.logged) == (0, 50, 0, 50)
    assert len(lost) == 1
    assert "50 records dropped (the end-of-run flush ran out of time (1 s): ConnectError" in str(lost[0].message)


async def test_a_server_that_never_answers_holds_the_run_for_flush_timeout_only() -> None:
    app = Collector(fault_for=lambda n: "hang")
    with serve(app, graceful_shutdown=2) as url:
        engine = Engine(step)
        logger = HTTPLogger(url, batch_size=10, timeout=60.0, flush_timeout=1.0)
        attach(logger, engine)
        started = time.perf_counter()
        with lost_records() as lost, anyio.fail_after(20):
            state = await engine.run(range(30))
        elapsed = time.perf_counter() - started
    assert state.iteration == 30
    assert 0.8 <= elapsed < 6
    stats = logger.statistics()
    assert (stats.sent, stats.dropped, stats.pending) == (0, 30, 0)
    assert app.requests >= 1
    assert [str(w.message).split(" (")[0] for w in lost] == ["HTTPLogger: 30 records dropped"]


async def test_when_full_wait_holds_training_back_only_until_the_outage_is_clear() -> None:
    assert HTTPLogger("http://127.0.0.1:1/x").when_full == "drop_oldest"  # the default never waits
    with refusing() as url:
        engine = Engine(step)
        logger = HTTPLogger(
            url, when_full="wait", max_buffer=20, batch_size=10, flush_timeout=0.5, backoff=0.01, max_backoff=0.05
        )
        attach(logger, engine)
        started = time.perf_counter()
        with lost_records() as lost, anyio.fail_after(30):
            state = await engine.run(range(500))
        elapsed = time.perf_counter() - started
    assert state.iteration == 500
    assert elapsed < 8  # a first batch given up, then dropping: not 50 batches' worth of retries
    stats = logger.statistics()
    assert (stats.sent, stats.dropped, stats.pending, stats.logged) == (0, 500, 0, 500)
    assert lost


async def test_an_outage_never_fails_training_and_warnings_are_rate_limited() -> None:
    app = Collector(fault_for=lambda n: 503)
    with serve(app) as url:
        engine = Engine(step)
        logger = HTTPLogger(url, batch_size=1, flush_interval=0.0, max_retries=0, flush_timeout=5.0)
        attach(logger, engine)
        with lost_records() as lost, anyio.fail_after(30):
            state = await engine.run(range(300))
        await logger.close()
    assert state.iteration == 300
    stats = logger.statistics()
    assert (stats.sent, stats.dropped, stats.pending, stats.logged) == (0, 300, 0, 300)
    assert app.requests == 300  # one batch per record, each tried and dropped
    assert 1 <= len(lost) <= 2  # the first drop, then one at the end for the rest: not one per batch
    assert "503 Service Unavailable" in str(lost[0].message)
    assert "300 of 300 dropped so far" in str(lost[-1].message)


async def test_evaluations_inside_a_training_run_never_wait_for_a_server_that_is_down() -> None:
    with refusing() as url:
        trainer, evaluator = Engine(step), Engine(step)
        logger = HTTPLogger(url, flush_timeout=1.0)
        # The evaluator logs first (the trainer only at its epochs' ends): the sender must still be the trainer's.
        logger.attach_output_handler(evaluator, Events.ITERATION_COMPLETED, "val", output_transform=lambda x: x)
        logger.attach_output_handler(trainer, Events.EPOCH_COMPLETED, "train", output_transform=lambda x: x)
        evaluation_times: list[float] = []

        @trainer.on(Events.EPOCH_COMPLETED)
        async def evaluate() -> None:
            started = time.perf_counter()
            await evaluator.run(range(10))
            evaluation_times.append(time.perf_counter() - started)

        with lost_records() as lost, anyio.fail_after(30):
            await trainer.run(range(5), max_epochs=4)
    assert len(evaluation_times) == 4
    assert max(evaluation_times) < 0.5  # each would otherwise wait flush_timeout (1 s) for its records
    stats = logger.statistics()
    assert (stats.sent, stats.dropped, stats.pending, stats.logged) == (0, 44, 0, 44)
    assert lost


@pytest.mark.parametrize("status", [401, 403, 422])
async def test_a_refusing_server_fails_the_run_naming_status_and_url(status: int) -> None:
    app = Collector(fault_for=lambda n: status)
    with serve(app) as url:
        engine = Engine(step)
        logger = HTTPLogger(url, batch_size=10, flush_interval=0.05)
        attach(logger, engine)
        with pytest.raises(HTTPLoggerError, match=rf"{url} answered {status}"):
            await engine.run(range(100_000))
        await logger.close()
        assert engine.state.iteration < 100_000  # it failed promptly, not at the end
        assert app.requests == 1  # a refusal is not retried
    stats = logger.statistics()
    assert stats.sent + stats.dropped + stats.pending == stats.logged
    assert (stats.sent, stats.pending) == (0, 0)


async def test_on_error_warn_counts_and_training_completes() -> None:
    app = Collector(fault_for=lambda n: 400)
    with serve(app) as url:
        engine = Engine(step)
        async with HTTPLogger(url, batch_size=10, flush_interval=0.05, on_error="warn") as logger:
            attach(logger, engine)
            with pytest.warns(LoggerWarning, match="answered 400"):
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
            attach(logger, engine)
            with pytest.warns(LoggerWarning, match="the buffer is full"):
                await engine.run(range(500))
        stats = logger.statistics()
    assert stats.dropped > 0
    assert stats.sent + stats.dropped == stats.logged == 500
    assert sorted(app.steps()) == sorted(set(app.steps()))  # no record twice


@pytest.mark.parametrize("event", ["every iteration", "at the first epoch only"])
async def test_the_last_partial_batch_is_sent_as_soon_as_the_run_ends(event: str) -> None:
    app = Collector()
    with serve(app) as url:
        engine = Engine(step)
        logger = HTTPLogger(url, batch_size=1000, flush_interval=60.0)
        if event == "every iteration":
            attach(logger, engine)
        else:  # nothing is logged when the run ends
            logger.attach_output_handler(engine, Events.EPOCH_STARTED(once=1), "train", output_transform=lambda _: 1.0)
        started = time.perf_counter()
        with anyio.fail_after(20):
            await engine.run(range(20), max_epochs=2)
        elapsed = time.perf_counter() - started
        received = app.steps()  # before close(): sent by the run's end
        await logger.close()
    assert elapsed < 5  # not flush_interval (60 s)
    assert received == (list(range(1, 41)) if event == "every iteration" else [1])


async def test_credentials_and_query_strings_appear_in_no_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = ("hunter2", "t0ken-xyz")

    def with_secrets(url: str) -> str:
        return f"http://alice:hunter2@127.0.0.1:{urlsplit(url).port}/x?token=t0ken-xyz"

    messages: list[str] = []
    app = Collector(fault_for=lambda n: 401)
    with serve(app) as base:  # a refusal: the exception that fails the run
        engine = Engine(step)
        logger = HTTPLogger(with_secrets(base), batch_size=5, flush_interval=0.01)
        attach(logger, engine)
        with pytest.raises(HTTPLoggerError) as refused:
            await engine.run(range(100))
        await logger.close()
    messages += [str(refused.value), repr(refused.value)]
    with refusing() as base:  # an outage: the warnings
        engine = Engine(step)
        logger = HTTPLogger(with_secrets(base), max_retries=1, backoff=0.01, flush_timeout=0.5)
        attach(logger, engine)
        with lost_records() as lost:
            await engine.run(range(20))
    messages += [str(w.message) for w in lost]
    with pytest.raises(ValueError, match="http:// or https://") as bad:
        HTTPLogger("ftp://alice:hunter2@example.org/x?token=t0ken-xyz")
    messages += [str(bad.value), caplog.text, *(r.getMessage() for r in caplog.records)]
    assert lost
    assert any("HTTP Request: POST http://***@127.0.0.1" in m for m in messages)  # httpx's log line, scrubbed
    assert any("http://***@127.0.0.1" in m and "/x?***" in m for m in messages)
    assert [m for m in messages if any(s in m for s in secrets)] == []


@pytest.mark.parametrize(
    ("userinfo", "query", "secrets"),
    [
        ("u:p@ss", "token=plain", ("p@ss", "p%40ss", "plain")),  # an '@' in the password
        ("alice:päss", "token=tökén", ("päss", "p%C3%A4ss", "tökén", "t%C3%B6k%C3%A9n")),  # non-ASCII
        ("alice:pw", 'token=a"b', ('a"b', "a%22b")),  # a quote in the query
    ],
)
async def test_httpx_log_lines_show_no_secret_in_any_encoding(
    caplog: pytest.LogCaptureFixture, userinfo: str, query: str, secrets: tuple[str, ...]
) -> None:
    # httpx logs each request's URL percent-encoded, which a search for the secrets as given misses.
    caplog.set_level(logging.DEBUG)
    with serve(Collector(fault_for=lambda n: 401)) as base:
        engine = Engine(step)
        logger = HTTPLogger(f"http://{userinfo}@127.0.0.1:{urlsplit(base).port}/x?{query}", batch_size=5)
        attach(logger, engine)
        with pytest.raises(HTTPLoggerError) as refused:
            await engine.run(range(10))
        await logger.close()
    messages = [str(refused.value), caplog.text, *(r.getMessage() for r in caplog.records)]
    assert any("HTTP Request: POST http://***@127.0.0.1" in m and "/x?***" in m for m in messages)
    assert [m for m in messages if any(s in m for s in secrets)] == []


async def test_records_dropped_in_an_outage_are_spooled_and_resent_later(tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "unsent.jsonl"
    with refusing() as url:
        engine = Engine(step)
        logger = HTTPLogger(
            url, run_id="r1", batch_size=7, max_retries=1, backoff=0.01, flush_timeout=0.5, spool_path=spool
        )
        attach(logger, engine)
        with lost_records() as lost:
            await engine.run(range(50))
    stats = logger.statistics()
    assert (stats.dropped, stats.spooled) == (50, 50)
    assert "appended to" in str(lost[-1].message)
    # The server comes back, but fails again part-way through the resend: what was not sent stays spooled.
    app = Collector(dedupe=True, fault_for=lambda n: 503 if n == 4 else None)
    with serve(app) as url:
        later = HTTPLogger(url, run_id="r1", max_retries=0, spool_path=spool)
        with pytest.raises(HTTPLoggerError, match="503"):
            await later.resend_spool()
        assert spool.exists()
        assert await later.resend_spool() > 0
        assert not spool.exists()
        assert await later.resend_spool() == 0
        await later.close()
    assert sorted(app.steps()) == list(range(1, 51))  # every record once, under its original key
    assert {body["run"] for body in app.received} == {"r1"}


def test_bad_arguments() -> None:
    url = "http://127.0.0.1:1/x"
    with pytest.raises(ValueError, match="http:// or https://"):
        HTTPLogger("ftp://example.org/x")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        HTTPLogger(url, batch_size=0)
    with pytest.raises(ValueError, match="max_buffer must be an integer >= 1"):
        HTTPLogger(url, max_buffer=0)
    with pytest.raises(ValueError, match="when_full must be"):
        HTTPLogger(url, when_full="block")  # type: ignore[arg-type]
    for value in (0, -1.0, float("inf"), float("nan"), "10"):
        with pytest.raises(ValueError, match="flush_timeout must be"):
            HTTPLogger(url, flush_timeout=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_backoff must be > 0 seconds"):
        HTTPLogger(url, max_backoff=0)
    with pytest.raises(ValueError, match="timeout must be > 0 seconds"):
        HTTPLogger(url, timeout=0)
    with pytest.raises(ValueError, match="flush_interval must be >= 0 seconds"):
        HTTPLogger(url, flush_interval=-1)
    with pytest.raises(ValueError, match="no spool_path"):
        anyio.run(HTTPLogger(url).resend_spool)
