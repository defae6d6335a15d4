"""Tracker latency: training that logs every iteration to an MLflow server whose every request takes 200 ms more.

A real ``mlflow server`` (SQLite store) on 127.0.0.1 behind a fault proxy that adds 200 ms to every request;
the same run of ITERS iterations of a fixed-cost step (a torch matmul loop, ~STEP_MS ms) logs its loss every
iteration with (a) no logger, (b) ignite_async's MLflowLogger (log_batch from a writer thread), (c) pytorch-ignite
0.5.5's MLflowLogger (the fluent ``mlflow`` API, one synchronous request per iteration), through the same proxy.
Wall time is that of ``run()``, which for (b) includes the end-of-run flush that waits for the last batch to be
acknowledged (one round trip: a fixed cost, whatever the number of iterations).
Target: (b) <= 1.05x (a), for run() as a whole. Every run's metric history is read back from the server and
checked complete.

    .venv/bin/python benchmarks/tracker_latency.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for the proxy in tests/loggers, when run as a script

from tests.loggers._fault_proxy import FaultProxy  # noqa: E402
from tests.loggers._mlflow_server import mlflow_server  # noqa: E402

torch.set_num_threads(1)  # the step on one core; the other is left to the server and the writer thread
ITERS, STEP_MS, LATENCY, REPEATS = 600, 50.0, 0.2, 2  # long enough for the per-run costs to amortize


def make_step() -> Callable[[Any, Any], float]:
    """A step of fixed work (matmuls of a 256x256 matrix), calibrated here to take about STEP_MS ms."""
    torch.manual_seed(0)
    a = torch.randn(256, 256) / 16

    def work(n: int) -> float:
        x = a
        for _ in range(n):
            x = torch.tanh(x @ a)
        return float(x.mean())

    work(20)
    started = time.perf_counter()
    work(200)
    per_matmul = (time.perf_counter() - started) / 200
    n = max(1, round(STEP_MS / 1e3 / per_matmul))

    def step(engine: Any, batch: Any) -> float:
        return work(n)

    return step


def run_ours(step: Callable[[Any, Any], float], uri: str | None, name: str) -> tuple[float, float]:
    from ignite_async import Engine, Events

    async def main() -> tuple[float, float]:
        engine = Engine(step)
        loop = stamp_loop(engine, Events.ITERATION_STARTED, Events.ITERATION_COMPLETED)
        logger = None
        if uri is not None:
            from ignite_async.loggers.mlflow import MLflowLogger

            logger = MLflowLogger(tracking_uri=uri, experiment="tracker-latency", run_name=name)
            logger.attach_output_handler(
                engine, Events.ITERATION_COMPLETED, tag="training", output_transform=lambda loss: {"loss": loss}
            )
        started = time.perf_counter()
        await engine.run(range(ITERS), max_epochs=1)
        wall = time.perf_counter() - started
        if logger is not None:
            await logger.close()
            stats = logger.statistics()
            assert (stats.written, stats.dropped, stats.logged) == (ITERS, 0, ITERS), stats  # written == sent
        return wall, loop[-1] - loop[0]

    return asyncio.run(main())


def run_ignite(step: Callable[[Any, Any], float], uri: str | None, name: str) -> tuple[float, float]:
    from ignite.engine import Engine as IgniteEngine
    from ignite.engine import Events as IgniteEvents

    engine = IgniteEngine(step)
    loop = stamp_loop(engine, IgniteEvents.ITERATION_STARTED, IgniteEvents.ITERATION_COMPLETED)
    logger = None
    if uri is not None:
        import mlflow
        from ignite.handlers.mlflow_logger import MLflowLogger as IgniteMLflowLogger

        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("tracker-latency")
        mlflow.start_run(run_name=name)  # ignite's logger takes the active run
        logger = IgniteMLflowLogger(tracking_uri=uri)
        logger.attach_output_handler(
            engine, IgniteEvents.ITERATION_COMPLETED, tag="training", output_transform=lambda loss: {"loss": loss}
        )
    started = time.perf_counter()
    engine.run(range(ITERS), max_epochs=1)
    wall = time.perf_counter() - started
    if logger is not None:
        logger.close()
    return wall, loop[-1] - loop[0]


def stamp_loop(engine: Any, started: Any, completed: Any) -> list[float]:
    """[start of the first iteration, end of the last one]: the loop itself, without the run's setup and
    end-of-run flush. Added before the logger's handlers: the last iteration's logging falls outside the span
    (for pytorch-ignite, one request of ITERS)."""
    stamps = [0.0, 0.0]

    def first(engine: Any) -> None:
        if engine.state.iteration == 1:
            stamps[0] = time.perf_counter()

    def last(engine: Any) -> None:
        stamps[1] = time.perf_counter()

    engine.add_event_handler(started, first)
    engine.add_event_handler(completed, last)
    return stamps


def check_history(uri: str, name: str) -> int:
    """The number of values of the run ``name`` on the server, each metric's steps checked to be 1..ITERS."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tracker-latency")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = '{name}'")
    total = 0
    for key in run.data.metrics:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert steps == list(range(1, ITERS + 1)), (name, key, steps[:5], len(steps))
        total += len(steps)
    assert total == ITERS, (name, total)
    return total


def main() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    # Inherited by the server: no job-runner processes (8 of them by default) competing for the 2 cores.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    walls: dict[str, list[tuple[float, float]]] = {"none": [], "ours": [], "ig_none": [], "ig": []}
    with tempfile.TemporaryDirectory() as directory, mlflow_server(Path(directory)) as upstream:
        step = make_step()  # calibrated once the server is up and idle
        with FaultProxy(upstream) as proxy:
            proxy.latency = LATENCY
            for i in range(REPEATS):  # interleaved, best of each: the machine's noise is larger than the effect
                walls["none"].append(run_ours(step, None, ""))
                walls["ours"].append(run_ours(step, proxy.url, f"ours-{i}"))
                walls["ig_none"].append(run_ignite(step, None, ""))
            walls["ig"].append(run_ignite(step, proxy.url, "ignite"))  # once: it is the slow one
            requests = proxy.stats().forwarded
        for name in [f"ours-{i}" for i in range(REPEATS)] + ["ignite"]:
            check_history(upstream, name)
    best = {k: min(w for w, _ in v) for k, v in walls.items()}
    loop = {k: min(lo for _, lo in v) for k, v in walls.items()}
    step_ms = loop["none"] / ITERS * 1e3
    print(
        f"{ITERS} iterations of a {step_ms:.0f} ms step (fixed work), the loss logged every iteration to a real "
        f"mlflow server (SQLite) whose every request is delayed {LATENCY * 1e3:.0f} ms by a proxy; best of {REPEATS} "
        f"(pytorch-ignite with the logger: 1 run); {requests} requests through the proxy in all"
    )
    print(
        "| | run(), no logger (s) | run(), MLflowLogger (s) | ratio | loop only, no logger (s) "
        "| loop only, MLflowLogger (s) | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    ratio, loop_ratio = best["ours"] / best["none"], loop["ours"] / loop["none"]
    for label, a, b in (("pytorch-ignite 0.5.5", "ig_none", "ig"), ("ignite_async", "none", "ours")):
        print(
            f"| {label} | {best[a]:.2f} | {best[b]:.2f} | {best[b] / best[a]:.2f}x | {loop[a]:.2f} | {loop[b]:.2f} "
            f"| {loop[b] / loop[a]:.2f}x |"
        )
    print(
        "run(): the whole run, with ignite_async's end-of-run "
        "flush (the last batch acknowledged, the run set FINISHED), fixed costs of a few round trips; "
        "loop only: from the first iteration's start to the last one's end."
    )
    ok = "✓" if ratio <= 1.05 else "✗"
    print(
        f"ignite_async with the logger: run() {ratio:.3f}x the run without (target ≤ 1.05x {ok}), loop "
        f"{loop_ratio:.3f}x; pytorch-ignite's: run() {best['ig'] / best['ig_none']:.2f}x; every value of every run "
        "read back from the server: ✓"
    )


if __name__ == "__main__":
    main()
