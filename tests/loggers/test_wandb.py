"""WandBLogger, on the real wandb client in offline mode: every run is read back from its ``.wandb`` file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import torch
import wandb
from torch import nn

from ignite_async import Engine, Events
from ignite_async.loggers import LoggerWarning, WeightsHistHandler, WeightsScalarHandler
from ignite_async.loggers.wandb import EXIT_CANCELLED, EXIT_COMPLETED, EXIT_FAILED, WandBLogger
from tests.loggers._wandb_offline import OfflineRun, read_run, run_dirs, settle

pytestmark = pytest.mark.anyio


def only_run(tmp_path: Path) -> OfflineRun:
    settle()
    (run_dir,) = run_dirs(tmp_path)
    return read_run(run_dir)


def trainer_and_evaluator(n: int, every: int) -> tuple[Engine, Engine]:
    """A trainer (output 0.5 * batch) that runs an evaluator (metric acc = trainer iteration / 1000) every
    ``every`` iterations."""
    trainer = Engine(lambda e, b: 0.5 * b)
    evaluator = Engine(lambda e, b: None)

    @evaluator.on(Events.COMPLETED)
    def compute(engine: Engine) -> None:
        engine.state.metrics["acc"] = trainer.state.iteration / 1000

    @trainer.on(Events.ITERATION_COMPLETED(every=every))
    async def validate(engine: Engine) -> None:
        await evaluator.run(range(3))

    return trainer, evaluator


async def test_every_record_of_500_iterations_and_an_evaluator_is_read_back(
    tmp_path: Path, wandb_kwargs: dict[str, Any]
) -> None:
    n, every = 500, 100
    trainer, evaluator = trainer_and_evaluator(n, every)
    logger = WandBLogger("ignite-async-tests", name="demo", config={"lr": 0.1, "model": "mlp"}, **wandb_kwargs)
    # Attached before the evaluator's trigger: at each step the trainer's record comes first, then the evaluator's.
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"loss": x})
    logger.attach_output_handler(
        evaluator,
        Events.COMPLETED,
        "val",
        metric_names=["acc"],
        global_step_transform=lambda *_: trainer.state.iteration,
    )
    logger.log_params({"batch_size": 32})
    async with logger:
        await trainer.run(range(n))
        stats = logger.statistics()
        assert (stats.logged, stats.written, stats.pending, stats.dropped) == (n + n // every, n + n // every, 0, 0)
        assert logger.run is not None
        logger.log_params({"epochs": 1})  # after the start: a config update

    run = only_run(tmp_path)
    expected = {i: {"train/loss": 0.5 * (i - 1)} for i in range(1, n + 1)}
    for i in range(every, n + 1, every):
        expected[i]["val/acc"] = i / 1000
    assert run.history == expected
    assert run.rows == n  # one W&B row per step, the evaluator's value in the trainer's row
    assert run.config == {"lr": 0.1, "model": "mlp", "batch_size": 32, "epochs": 1}
    assert run.exit_code == EXIT_COMPLETED


async def test_a_second_engine_run_logs_to_the_same_wandb_run(tmp_path: Path, wandb_kwargs: dict[str, Any]) -> None:
    trainer = Engine(lambda e, b: float(b))
    async with WandBLogger("p", **wandb_kwargs) as logger:
        logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "t", output_transform=lambda x: {"x": x})
        await trainer.run(range(3), max_epochs=1)
        await trainer.run(range(3), max_epochs=2)  # resumes at epoch 2: steps 4..6
    assert only_run(tmp_path).history == {i: {"t/x": float((i - 1) % 3)} for i in range(1, 7)}
    assert logger.statistics().written == 6


async def test_records_at_a_lower_step_are_dropped_counted_and_reported(
    tmp_path: Path, wandb_kwargs: dict[str, Any]
) -> None:
    trainer, evaluator = trainer_and_evaluator(4, 2)
    logger = WandBLogger("p", **wandb_kwargs)
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"loss": x})
    # No global_step_transform: at the evaluator's own step (its epoch at COMPLETED: 1). The evaluator runs
    # before the trainer's record of its step (its handler came first): kept at trainer step 2 (W&B is at 1
    # then), dropped at step 4 (W&B is at 3).
    logger.attach_output_handler(evaluator, Events.COMPLETED, "val", metric_names=["acc"])
    with pytest.warns(LoggerWarning, match=r"1 records dropped.*val/acc at step 1 < 3.*global_step_transform"):
        async with logger:
            await trainer.run(range(4))
    stats = logger.statistics()
    assert (stats.logged, stats.written, stats.dropped, stats.pending) == (6, 5, 1, 0)
    history = only_run(tmp_path).history
    assert history == {
        1: {"train/loss": 0.0, "val/acc": 0.002},
        2: {"train/loss": 0.5},
        3: {"train/loss": 1.0},
        4: {"train/loss": 1.5},
    }


async def test_a_failed_run_finishes_the_wandb_run_as_failed(tmp_path: Path, wandb_kwargs: dict[str, Any]) -> None:
    def step(engine: Engine, batch: int) -> float:
        if engine.state.iteration == 3:
            raise RuntimeError("boom")
        return float(batch)

    trainer = Engine(step)
    logger = WandBLogger("p", **wandb_kwargs)
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "t", output_transform=lambda x: {"x": x})
    with pytest.raises(RuntimeError, match="boom"):
        await trainer.run(range(5))
    assert logger.statistics().written == 2  # flushed at the end of the run
    await logger.close()
    run = only_run(tmp_path)
    assert run.history == {1: {"t/x": 0.0}, 2: {"t/x": 1.0}}
    assert run.exit_code == EXIT_FAILED


async def test_a_cancelled_run_finishes_the_wandb_run_with_255(tmp_path: Path, wandb_kwargs: dict[str, Any]) -> None:
    trainer = Engine(lambda e, b: float(b))
    third = anyio.Event()

    @trainer.on(Events.ITERATION_COMPLETED(once=3))
    def reached(engine: Engine) -> None:
        third.set()

    async def forever() -> AsyncIterator[int]:
        i = 0
        while True:
            yield i
            i += 1
            await anyio.lowlevel.checkpoint()

    logger = WandBLogger("p", **wandb_kwargs)
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "t", output_transform=lambda x: {"x": x})
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(trainer.run, forever(), 1, 10**6)
            await third.wait()
            tg.cancel_scope.cancel()
    await logger.close()
    run = only_run(tmp_path)
    assert run.exit_code == EXIT_CANCELLED
    assert len(run.history) >= 3
    assert all(run.history[i] == {"t/x": float(i - 1)} for i in run.history)


async def test_leaving_async_with_on_an_error_fails_the_run(tmp_path: Path, wandb_kwargs: dict[str, Any]) -> None:
    async def use() -> None:
        async with WandBLogger("p", **wandb_kwargs) as logger:
            logger.log_params({"a": 1})
            raise ValueError("after the run")

    with pytest.raises(ValueError, match="after the run"):
        await use()
    run = only_run(tmp_path)
    assert (run.config, run.exit_code) == ({"a": 1}, EXIT_FAILED)


async def test_model_handlers_log_scalars_and_histograms(tmp_path: Path, wandb_kwargs: dict[str, Any]) -> None:
    model = nn.Linear(3, 2)
    trainer = Engine(lambda e, b: None)

    @trainer.on(Events.ITERATION_STARTED)
    def shift(engine: Engine) -> None:
        with torch.no_grad():
            model.bias.fill_(float(engine.state.iteration))

    async with WandBLogger("p", **wandb_kwargs) as logger:
        logger.attach(trainer, WeightsScalarHandler(model, whitelist=["bias"]), Events.ITERATION_COMPLETED)
        logger.attach(trainer, WeightsHistHandler(model, whitelist=["bias"]), Events.ITERATION_COMPLETED)
        await trainer.run(range(2))
        with pytest.raises(TypeError, match="log_handler must be"):
            logger.attach(trainer, object(), Events.ITERATION_COMPLETED)  # type: ignore[arg-type]
    history = only_run(tmp_path).history
    assert sorted(history) == [1, 2]
    for i in (1, 2):
        assert history[i]["weights_norm/bias"] == pytest.approx(i * 2**0.5)
        hist = history[i]["weights/bias"]
        assert hist["_type"] == "histogram"
        assert sum(hist["values"]) == 2
        assert hist["bins"][0] <= i <= hist["bins"][-1]


async def test_an_unused_logger_makes_no_wandb_run_and_start_makes_one(
    tmp_path: Path, wandb_kwargs: dict[str, Any]
) -> None:
    await WandBLogger("p", **wandb_kwargs).close()
    assert run_dirs(tmp_path) == []
    async with WandBLogger("p", **wandb_kwargs) as logger:
        run = await logger.start()
        assert run is logger.run
        assert await anyio.Path(run.dir).is_dir()
    assert only_run(tmp_path).exit_code == EXIT_COMPLETED


def test_the_same_history_as_pytorch_ignites_wandb_logger(tmp_path: Path, wandb_kwargs: dict[str, Any]) -> None:
    """The oracle logs the same trainer and evaluator (the evaluator at its own, lower, steps: wandb drops
    those under pytorch-ignite, and this logger drops them too)."""
    import ignite.engine as ie
    from ignite.handlers.wandb_logger import WandBLogger as IgniteWandBLogger

    def build(engine_cls: Any, events: Any) -> tuple[Any, Any]:
        trainer, evaluator = engine_cls(lambda e, b: 0.5 * b), engine_cls(lambda e, b: None)
        evaluator.add_event_handler(
            events.COMPLETED, lambda e: e.state.metrics.update(acc=trainer.state.iteration / 10)
        )
        return trainer, evaluator

    def attach(logger: Any, trainer: Any, evaluator: Any, events: Any) -> None:
        logger.attach_output_handler(trainer, events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"l": x})
        logger.attach_output_handler(
            evaluator, events.COMPLETED, "val", metric_names=["acc"], global_step_transform=lambda *_: 3
        )
        logger.attach_output_handler(evaluator, events.COMPLETED, "own", metric_names=["acc"])  # its epoch: 1

    oracle_dir = tmp_path / "oracle"
    oracle_dir.mkdir()
    trainer, evaluator = build(ie.Engine, ie.Events)
    trainer.add_event_handler(ie.Events.ITERATION_COMPLETED(every=3), lambda e: evaluator.run(range(4)))
    oracle = IgniteWandBLogger(project="p", **{**wandb_kwargs, "dir": str(oracle_dir)})
    attach(oracle, trainer, evaluator, ie.Events)
    trainer.run(range(6))
    oracle.close()

    async def ours() -> WandBLogger:
        trainer, evaluator = build(Engine, Events)

        @trainer.on(Events.ITERATION_COMPLETED(every=3))
        async def validate(engine: Engine) -> None:
            await evaluator.run(range(4))

        async with WandBLogger("p", **wandb_kwargs) as logger:
            attach(logger, trainer, evaluator, Events)
            await trainer.run(range(6))
        return logger

    with pytest.warns(LoggerWarning, match="records dropped"):
        logger = anyio.run(ours)
    expected = only_run(oracle_dir)
    got = only_run(tmp_path)
    assert got.history == expected.history
    # The evaluator's records come before the trainer's of the same step (its handler was added first): at
    # trainer step 3 (W&B at 2), val at 3 is kept, own at 1 dropped; at step 6 (W&B at 5) both are dropped.
    assert got.history == {i: {"train/l": 0.5 * (i - 1)} for i in range(1, 7)} | {3: {"train/l": 1.0, "val/acc": 0.3}}
    assert got.exit_code == expected.exit_code == EXIT_COMPLETED
    stats = logger.statistics()
    assert (stats.logged, stats.written, stats.dropped) == (10, 7, 3)


def test_without_wandb_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['wandb'] = None\n"
        "from ignite_async.loggers.wandb import WandBLogger\n"
        "try:\n"
        "    WandBLogger('p')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'ignite-async[wandb]'" in out.stdout


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((3,), {}, r"project must be a string .* got 3"),
        (("p", "entity"), {}, r"only project positionally.*by keyword \(entity=\.\.\."),
        (("p",), {"nmae": "x"}, r"\['nmae'\], which wandb.init does not take"),
        (("p",), {"config": [1]}, r"config must be a dict .* got list"),
        (("p",), {"init": "no"}, r"init must be True or False"),
        ((), {"init": False, "name": "x"}, r"with init=False the W&B run is yours"),
        (("p",), {"flush_timeout": 0}, r"flush_timeout must be > 0"),
    ],
)
def test_bad_arguments_are_named_at_construction(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        WandBLogger(*args, **kwargs)


def test_log_params_refuses_bad_params_and_changed_values(wandb_kwargs: dict[str, Any]) -> None:
    logger = WandBLogger("p", config={"lr": 0.1}, **wandb_kwargs)
    with pytest.raises(TypeError, match="params must be a dict with string keys"):
        logger.log_params({1: 2})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="params must be a dict"):
        logger.log_params([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"config 'lr' is already 0.1, cannot change it to 0.2"):
        logger.log_params({"lr": 0.2})
    logger.log_params({"lr": 0.1, "bs": 8})  # the same value again is fine
    assert logger.run is None  # nothing started yet: no W&B run, no service


async def test_a_failing_wandb_init_is_raised_on_the_loop(tmp_path: Path, wandb_kwargs: dict[str, Any]) -> None:
    # wandb.init refuses the id in the writer thread; the error is raised on the loop (by start(), a flush, or
    # the next record), and the records of that write are dropped.
    logger = WandBLogger("p", id="bad/id", **wandb_kwargs)
    with pytest.raises(wandb.errors.UsageError, match="Run ID cannot contain"):
        await logger.start()
    trainer = Engine(lambda e, b: float(b))
    logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "t", output_transform=lambda x: {"x": x})
    with pytest.raises(wandb.errors.UsageError, match="Run ID cannot contain"):
        await trainer.run(range(3))  # the end-of-run flush's error fails a run that otherwise completed
    with pytest.raises(wandb.errors.UsageError, match="Run ID cannot contain"):
        await logger.close()  # the same refusal, at close's write
    stats = logger.statistics()
    assert logger.run is None
    assert (stats.logged, stats.dropped, stats.pending) == (3, 3, 0)
    assert run_dirs(tmp_path) == []
