from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ignite_async import Engine, Events
from ignite_async.loggers import TensorBoardLogger

pytestmark = pytest.mark.anyio


async def test_scalars_read_back_with_tensorboards_own_reader(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: 0.5 * b)

    @engine.on(Events.EPOCH_COMPLETED)
    def validate(engine: Engine) -> None:
        engine.state.metrics["accuracy"] = 0.25 * engine.state.epoch

    async with TensorBoardLogger(tmp_path / "tb") as logger:
        logger.attach_output_handler(
            engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"loss": x}
        )
        logger.attach_output_handler(engine, Events.EPOCH_COMPLETED, "val", metric_names="all")
        await engine.run(range(4), max_epochs=2)

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train/loss", "val/accuracy"}
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(i, 0.5 * ((i - 1) % 4)) for i in range(1, 9)]
    assert [(e.step, e.value) for e in events.Scalars("val/accuracy")] == [(1, 0.25), (2, 0.5)]


def test_a_log_dir_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"cannot create log directory .*a-file/tb"):
        TensorBoardLogger(blocker / "tb")


async def test_a_second_run_after_the_event_file_was_released_is_read_back_too(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: float(b))
    logger = TensorBoardLogger(tmp_path / "tb")
    logger.attach_output_handler(engine, Events.ITERATION_COMPLETED, "train", output_transform=lambda x: {"x": x})
    await engine.run(range(3))
    assert logger.writer.file_writer is None  # released when the run ended
    await engine.run(range(3))  # a new run: steps 1..3 again, in a new event file
    await logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert len(list((tmp_path / "tb").iterdir())) == 2
    assert logger.statistics().written == 6
    assert sorted(e.step for e in events.Scalars("train/x")) == [1, 1, 2, 2, 3, 3]
