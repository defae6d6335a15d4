"""MLflowLogger against a real MLflow tracking server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from mlflow import MlflowClient

from ignite_async import Engine, Events
from ignite_async.loggers import LoggerWarning
from ignite_async.loggers.mlflow import MLflowLogger
from tests.loggers._fault_proxy import FaultProxy
from tests.loggers._mlflow_server import free_port

pytestmark = pytest.mark.anyio


def _trainer() -> Engine:
    return Engine(lambda e, b: float(e.state.iteration))


async def test_every_metric_at_its_step(mlflow_server: str) -> None:
    trainer = _trainer()
    logger = MLflowLogger(mlflow_server, experiment=f"exp-{uuid.uuid4().hex}", tags={"team": "a"})
    logger.attach_output_handler(
        trainer, Events.ITERATION_COMPLETED, "training", output_transform=lambda o: {"loss": o}
    )
    logger.log_params({"model": {"width": 3}, "lr": 0.1})
    await trainer.run(range(2000), max_epochs=1)
    await logger.close()
    assert logger.run_id is not None
    client = MlflowClient(mlflow_server)
    history = client.get_metric_history(logger.run_id, "training loss")
    assert sorted((m.step, m.value) for m in history) == [(i, float(i)) for i in range(1, 2001)]
    run = client.get_run(logger.run_id)
    assert run.data.params == {"model.width": "3", "lr": "0.1"}
    assert run.data.tags["team"] == "a"
    assert run.info.status == "FINISHED"


async def test_failed_and_killed(mlflow_server: str) -> None:
    def boom(engine: Engine, batch: int) -> float:
        if engine.state.iteration == 5:
            raise ZeroDivisionError("boom")
        return 0.0

    failing = Engine(boom)
    logger = MLflowLogger(mlflow_server, experiment="status")
    logger.attach_output_handler(failing, Events.ITERATION_COMPLETED, "training", output_transform=lambda o: o)
    with pytest.raises(ZeroDivisionError):
        await failing.run(range(10))
    assert logger.run_id is not None
    client = MlflowClient(mlflow_server)
    assert client.get_run(logger.run_id).info.status == "FAILED"
    await logger.close()

    slow = Engine(lambda e, b: 0.0)
    killed = MLflowLogger(mlflow_server, experiment="status")
    killed.attach_output_handler(slow, Events.ITERATION_COMPLETED, "training", output_transform=lambda o: o)

    async def stop(engine: Engine) -> None:
        if engine.state.iteration == 3:
            scope.cancel()
        await anyio.lowlevel.checkpoint()

    slow.add_event_handler(Events.ITERATION_COMPLETED, stop)
    with anyio.CancelScope() as scope:
        await slow.run(range(10))
    assert killed.run_id is not None
    assert client.get_run(killed.run_id).info.status == "KILLED"
    await killed.close()


async def test_unreachable_uri_raise_and_warn() -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    trainer = _trainer()
    logger = MLflowLogger(uri, timeout=2.0, max_retries=0)
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "training", output_transform=lambda o: o)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1"):
        await trainer.run(range(3))
    assert time.monotonic() - started < 30

    trainer = _trainer()
    logger = MLflowLogger(uri, timeout=2.0, max_retries=0, on_error="warn", flush_timeout=5.0)
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "training", output_transform=lambda o: o)
    with pytest.warns(LoggerWarning, match=r"127\.0\.0\.1"):
        await trainer.run(range(3))
    assert logger.run_id is None


def test_experiment_must_be_a_name() -> None:
    with pytest.raises(TypeError, match="experiment"):
        MLflowLogger("http://127.0.0.1:1", experiment=3)  # type: ignore[arg-type]


def test_missing_extra_names_the_install() -> None:
    code = (
        "import sys; sys.modules['mlflow'] = None\n"
        "from ignite_async.loggers.mlflow import MLflowLogger\n"
        "try:\n    MLflowLogger()\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'ignite-async[mlflow]'" in out.stdout, out.stderr


async def test_model_handlers(mlflow_server: str) -> None:
    from torch import nn

    from ignite_async.loggers import WeightsHistHandler, WeightsScalarHandler

    model = nn.Linear(2, 1)
    trainer = _trainer()
    logger = MLflowLogger(mlflow_server, experiment="model")
    with pytest.raises(TypeError, match="no histograms"):
        logger.attach(trainer, WeightsHistHandler(model), Events.ITERATION_COMPLETED)
    logger.attach(trainer, WeightsScalarHandler(model, whitelist=["bias"]), Events.ITERATION_COMPLETED)
    await trainer.run(range(3))
    await logger.close()
    assert logger.run_id is not None
    history = MlflowClient(mlflow_server).get_metric_history(logger.run_id, "weights_norm bias")
    assert sorted(m.step for m in history) == [1, 2, 3]


async def test_checkpoint_artifacts_follow_n_saved(mlflow_server: str, tmp_path: Path) -> None:
    from torch import nn

    from ignite_async.handlers import Checkpoint, DiskSaver
    from ignite_async.loggers.mlflow import MLflowCheckpointSaver

    trainer = _trainer()
    logger = MLflowLogger(mlflow_server, experiment="ckpt")
    logger.attach_output_handler(trainer, Events.EPOCH_COMPLETED, "training", output_transform=lambda o: o)
    saver = MLflowCheckpointSaver(logger, DiskSaver(tmp_path / "ckpt"))
    checkpoint = Checkpoint({"model": nn.Linear(2, 1)}, saver, n_saved=2)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    await trainer.run(range(2), max_epochs=4)
    await logger.close()
    checkpoint.close()
    on_disk = sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.is_file() and not p.name.startswith("."))
    assert logger.run_id is not None
    artifacts = MlflowClient(mlflow_server).list_artifacts(logger.run_id, "checkpoints")
    assert sorted(Path(a.path).name for a in artifacts) == on_disk == ["model_6.pt", "model_8.pt"]
    stats = saver.statistics()
    assert stats.failed == stats.pending == 0
    assert 2 <= stats.uploaded <= 4


async def test_a_refused_metric_name_fails_the_run_or_is_dropped_with_a_warning(mlflow_server: str) -> None:
    def bad_name(o: float) -> dict[str, float]:
        return {"loss?": o}  # MLflow refuses '?' in metric names

    trainer = _trainer()
    logger = MLflowLogger(mlflow_server, experiment="refused")
    logger.attach_output_handler(trainer, Events.COMPLETED, "training", output_transform=bad_name)
    with pytest.raises(ValueError, match=r"MLflow refused the metrics \['training loss\?'\]"):
        await trainer.run(range(3))  # refused at the end-of-run flush: the caller hears of it
    assert MlflowClient(mlflow_server).get_run(logger.run_id).info.status == "FINISHED"  # the training did finish
    await logger.close()

    trainer = _trainer()
    logger = MLflowLogger(mlflow_server, experiment="refused", on_error="warn")
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "training", output_transform=bad_name)
    logger.attach_output_handler(trainer, Events.COMPLETED, "done", output_transform=lambda o: {"loss": o})
    with pytest.warns(LoggerWarning, match=r"records dropped: ValueError: MLflow refused the metrics"):
        await trainer.run(range(3))
    await logger.close()
    stats = logger.statistics()
    assert stats.logged == 4
    assert stats.sent + stats.dropped == 4
    assert stats.dropped >= 1
    assert stats.pending == 0


async def test_a_dead_server_at_the_end_bounds_the_flush_and_says_how_many_wait(mlflow_server: str) -> None:
    with FaultProxy(mlflow_server) as proxy:
        trainer = _trainer()
        logger = MLflowLogger(proxy.url, experiment="dead", flush_timeout=1.0, max_retries=1000, max_backoff=0.2)
        logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "training", output_transform=lambda o: o)

        @trainer.on(Events.ITERATION_COMPLETED(once=20))
        def server_dies() -> None:
            proxy.down = True

        started = time.monotonic()
        with pytest.warns(LoggerWarning, match=r"records not written within flush_timeout=1 s.*stay pending"):
            await trainer.run(range(30))
        assert time.monotonic() - started < 20  # bounded by flush_timeout, not by the outage
        stats = logger.statistics()
        assert stats.pending >= 10
        assert stats.sent + stats.pending == 30
        assert stats.dropped == 0
        proxy.down = False  # the server comes back: what was held goes out
        await logger.close()
    stats = logger.statistics()
    assert (stats.sent, stats.dropped, stats.pending) == (30, 0, 0)
    assert stats.retried >= 1
    history = MlflowClient(mlflow_server).get_metric_history(logger.run_id, "training output")
    assert sorted(m.step for m in history) == list(range(1, 31))


async def test_a_slow_tracker_does_not_delay_the_start_of_training(mlflow_server: str) -> None:
    with FaultProxy(mlflow_server) as proxy:
        proxy.latency = 0.8  # per request: creating the run takes two or three
        trainer = _trainer()
        logger = MLflowLogger(proxy.url, experiment="slow-start")
        logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "training", output_transform=lambda o: o)
        first: list[float] = []
        trainer.add_event_handler(Events.ITERATION_STARTED(once=1), lambda: first.append(time.monotonic()))
        started = time.monotonic()
        await trainer.run(range(5))
        assert first[0] - started < 1.0  # the run is created by the writer thread, not before the first step
        await logger.close()
    history = MlflowClient(mlflow_server).get_metric_history(logger.run_id, "training output")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
