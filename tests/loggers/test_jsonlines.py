from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from ignite_async import Engine, Events
from ignite_async.loggers import JSONLinesLogger, read_jsonl
from tests.loggers._ignite import ignite_lookup

pytestmark = pytest.mark.anyio


def training() -> tuple[Engine, torch.optim.Optimizer]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)

    def step(engine: Engine, batch: int) -> dict[str, Any]:
        return {"loss": 1.0 / engine.state.iteration, "parts": torch.tensor([1.0, 2.0])}

    engine = Engine(step)

    @engine.on(Events.EPOCH_COMPLETED)
    def validate(engine: Engine) -> None:
        engine.state.metrics["accuracy"] = 0.5 * engine.state.epoch

    return engine, optimizer


async def test_output_metrics_and_optimizer_params_become_records(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run" / "metrics.jsonl"
    engine, optimizer = training()
    async with JSONLinesLogger(path) as logger:
        logger.attach_output_handler(
            engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda out: {"loss": out["loss"]}
        )
        logger.attach_output_handler(
            engine, Events.ITERATION_COMPLETED(every=3), "train", output_transform=lambda o: o["parts"]
        )
        logger.attach_output_handler(engine, Events.EPOCH_COMPLETED, "val", metric_names=["accuracy"])
        logger.attach_opt_params_handler(engine, Events.EPOCH_STARTED, optimizer)
        await engine.run(range(3), max_epochs=2)
    records = list(read_jsonl(path))
    assert set(records[0]) == {"tag", "name", "step", "value", "time"}
    losses = [(r["step"], r["value"]) for r in records if r["name"] == "loss"]
    assert losses == [(i, 1.0 / i) for i in range(1, 7)]
    parts = [(r["name"], r["step"]) for r in records if r["name"].startswith("output/")]
    assert parts == [("output/0", 3), ("output/1", 3), ("output/0", 6), ("output/1", 6)]
    assert [(r["tag"], r["step"], r["value"]) for r in records if r["name"] == "accuracy"] == [
        ("val", 1, 0.5),
        ("val", 2, 1.0),
    ]
    assert [(r["name"], r["step"], r["value"]) for r in records if r["tag"] == "optimizer"] == [
        ("lr/group0", 1, 0.5),
        ("lr/group0", 2, 0.5),
    ]


async def test_a_long_run_loses_nothing_and_a_failed_run_is_flushed(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    logger = JSONLinesLogger(path)

    def step(engine: Engine, batch: int) -> float:
        if batch == 2500:
            raise KeyError("bad batch")
        return float(batch)

    engine = Engine(step)
    logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
    with pytest.raises(KeyError):
        await engine.run(range(3000))
    # Flushed when the run ended, before close: every record up to the failure is in the file.
    assert [r["step"] for r in read_jsonl(path)] == list(range(1, 2501))
    await logger.close()


async def test_a_missing_metric_is_warned_about_once_per_handler_and_the_rest_are_logged(tmp_path: Path) -> None:
    engine, _ = training()
    path = tmp_path / "m.jsonl"
    async with JSONLinesLogger(path) as logger:
        for tag in ("val", "test"):
            logger.attach_output_handler(engine, Events.EPOCH_COMPLETED, tag, metric_names=["f1", "accuracy", "f1"])
        with pytest.warns(UserWarning, match="Provided metric name") as warned:
            await engine.run(range(3), max_epochs=3)  # the run goes on, as pytorch-ignite's
    logged, [reference] = ignite_lookup({"accuracy": 0.5}, ["f1", "accuracy"])
    assert logged == {"accuracy": 0.5}
    # pytorch-ignite's category and words (a filter written for them works), then who skips it: once per handler.
    assert [(w.category, str(w.message)) for w in warned] == [
        (
            reference.category,
            f"{reference.message} (JSONLinesLogger's handler {tag!r} goes on without it, "
            "and warns about it only this once)",
        )
        for tag in ("val", "test")
    ]
    assert [(r["tag"], r["name"], r["step"]) for r in read_jsonl(path)] == [
        (tag, "accuracy", epoch) for epoch in (1, 2, 3) for tag in ("val", "test")
    ]


def test_bad_arguments(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"cannot create the directory for .*a-file/sub/m\.jsonl"):
        JSONLinesLogger(blocker / "sub" / "m.jsonl")
    logger = JSONLinesLogger(tmp_path / "m.jsonl")
    engine = Engine(lambda e, b: None)
    with pytest.raises(ValueError, match="nothing to log"):
        logger.attach_output_handler(engine, Events.EPOCH_COMPLETED, "val")
    with pytest.raises(TypeError, match="metric_names"):
        logger.attach_output_handler(engine, Events.EPOCH_COMPLETED, "val", metric_names="accuracy")
    with pytest.raises(TypeError, match="param_groups"):
        logger.attach_opt_params_handler(engine, Events.EPOCH_COMPLETED, object())  # type: ignore[arg-type]


def test_reader_skips_a_partial_last_line_only(tmp_path: Path) -> None:
    good = json.dumps({"tag": "t", "name": "loss", "step": 1, "value": 0.5, "time": 0.0})
    path = tmp_path / "crashed.jsonl"
    path.write_text(good + "\n" + good[: len(good) // 2])
    assert len(list(read_jsonl(path))) == 1
    path.write_text(good[:10] + "\n" + good + "\n")
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        list(read_jsonl(path))


async def test_an_interrupted_run_has_flushed_what_it_logged(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    engine = Engine(lambda e, b: float(b))
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=7), lambda e: e.interrupt())
    async with JSONLinesLogger(path) as logger:
        logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
        await engine.run(range(20))  # paused at iteration 7
        assert [r["step"] for r in read_jsonl(path)] == list(range(1, 8))
        await engine.run()
    assert [r["step"] for r in read_jsonl(path)] == list(range(1, 21))


def open_files() -> list[str]:
    """What this process's file descriptors point to."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own descriptor)
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_the_file_is_closed_when_the_run_ends_and_reopened_to_append(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    logger = JSONLinesLogger(path)
    engine = Engine(lambda e, b: float(b))
    logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
    seen_open: list[bool] = []

    @engine.on(Events.ITERATION_COMPLETED(once=3))
    async def probe() -> None:
        await logger.flush()  # written (by the writer thread) for sure
        seen_open.append(str(path) in open_files())

    await engine.run(range(5))  # no close(): the run's end lets go of the file
    assert logger._file is None
    assert str(path) not in open_files()
    await engine.run(range(5))  # a second run appends
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3, 4, 5] * 2
    assert str(path) not in open_files()
    stats = logger.statistics()
    assert (stats.written, stats.dropped, stats.pending, stats.logged) == (10, 0, 0, 10)
    await logger.close()
    assert seen_open == [True, True]  # open while the runs logged (the check is not vacuous)


async def test_an_evaluator_run_inside_a_training_run_keeps_the_file_open(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    trainer, evaluator = Engine(lambda e, b: float(b)), Engine(lambda e, b: 0.5)
    async with JSONLinesLogger(path) as logger:
        logger.attach_output_handler(trainer, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: x)
        logger.attach_output_handler(evaluator, Events.COMPLETED, "val", output_transform=lambda x: x)
        still_open: list[bool] = []

        @trainer.on(Events.EPOCH_COMPLETED)
        async def evaluate() -> None:
            await evaluator.run(range(2))
            still_open.append(logger._file is not None)  # flushed, not closed: the trainer goes on

        await trainer.run(range(3), max_epochs=2)
        assert still_open == [True, True]
        assert logger._file is None
    assert [(r["tag"], r["step"]) for r in read_jsonl(path)] == [
        *[("train", i) for i in (1, 2, 3)],
        ("val", 1),
        *[("train", i) for i in (4, 5, 6)],
        ("val", 1),
    ]
