"""MLflowLogger through a fault proxy in front of a real ``mlflow server``: 200 ms per request, connections dropped
before and after the server applied a batch, 503s, the server down for a while. Nothing is lost, nothing is
duplicated, and the training loop is never held up by the tracker."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import anyio
import pytest
from mlflow import MlflowClient

from ignite_async import Engine, Events
from ignite_async.loggers.mlflow import MLflowLogger
from tests.loggers._fault_proxy import FaultProxy

pytestmark = pytest.mark.anyio

LOG_BATCH = "/runs/log-batch"
ITERATIONS = 240
STEP_SLEEP = 0.01  # the step's "work": the run lasts a few seconds, so that faults land on several batches
LATENCY = 0.2


@pytest.fixture
def proxy(mlflow_server: str) -> Iterator[FaultProxy]:
    with FaultProxy(mlflow_server, seed=14, record_bodies=True) as proxy:
        proxy.latency = LATENCY
        proxy.faulty_path = LOG_BATCH  # setup requests (experiment, run) only slow; the metric batches also fail
        yield proxy


def loss(iteration: int) -> float:
    return 1.0 / iteration + iteration * 1e-3  # distinct values, exact in float64 as sent and stored


def history(tracking_uri: str, run_name: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the run named ``run_name``, as (step, value) sorted by step, read from the server itself."""
    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"attributes.run_name = '{run_name}'"
    )
    assert len(runs) == 1, f"{len(runs)} runs named {run_name!r}"  # a retried create-run made no second run
    run_id = runs[0].info.run_id
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in runs[0].data.metrics
    }


async def train(logger: MLflowLogger, proxy: FaultProxy) -> list[float]:
    """The run, with faults switched on at given iterations; the loop's gaps between iterations (seconds)."""
    engine = Engine(step)
    logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"loss": x})
    faults = {
        60: lambda: proxy.fail_next(2),  # two 503s
        100: lambda: proxy.drop_next(1),  # a batch lost on the way: the server never saw it
        130: lambda: proxy.drop_next(2, after_forwarding=True),  # applied, but the answer lost: resent
        160: lambda: setattr(proxy, "down", True),  # the server goes away, until it refused a request
        ITERATIONS - 10: lambda: setattr(proxy, "down", False),  # (at the latest)
    }
    stamps: list[float] = []

    @engine.on(Events.ITERATION_COMPLETED)
    def stamp(engine: Engine) -> None:
        stamps.append(time.perf_counter())
        if engine.state.iteration in faults:
            faults[engine.state.iteration]()
        if proxy.down and proxy.stats().refused >= 1:
            proxy.down = False  # back up

    await engine.run(range(1, ITERATIONS + 1))
    return [b - a for a, b in itertools.pairwise(stamps)]


async def step(engine: Engine, batch: int) -> float:
    await anyio.sleep(STEP_SLEEP)
    return loss(batch)


async def test_nothing_lost_nothing_duplicated_and_training_not_held_up(mlflow_server: str, proxy: FaultProxy) -> None:
    run_name = f"faults-{uuid.uuid4().hex[:8]}"
    proxy.drop_next(1, after_forwarding=True)  # the very first batch: applied, unanswered
    # Quick retries (the default backoff starts at 0.5 s), and enough of them for a batch met by several faults.
    async with MLflowLogger(
        tracking_uri=proxy.url, experiment="faults", run_name=run_name, max_retries=20, backoff=0.05, max_backoff=0.5
    ) as logger:
        gaps = await train(logger, proxy)
    stats = logger.statistics()
    seen = proxy.stats()

    # Every fault happened, on the metric batches.
    assert seen.dropped_after == 3
    assert seen.dropped_before == 1
    assert seen.failed == 2
    assert seen.refused >= 1
    # Exactly what was logged, once each, though 3 batches were applied twice by the server.
    assert history(mlflow_server, run_name) == {"train loss": [(i, loss(i)) for i in range(1, ITERATIONS + 1)]}
    assert (stats.sent, stats.logged, stats.dropped, stats.pending) == (ITERATIONS, ITERATIONS, 0, 0)
    assert stats.retried >= 1
    # Not held up: a request waited on by the loop would show as a gap of >= LATENCY (200 ms).
    assert len(gaps) == ITERATIONS - 1
    assert max(gaps) < STEP_SLEEP + LATENCY / 2, f"the loop stalled for {max(gaps) * 1e3:.0f} ms"
