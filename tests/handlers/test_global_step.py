from __future__ import annotations

from pathlib import Path
from typing import Any

import ignite.handlers as ref_handlers
import pytest
from ignite.engine import Engine as IgniteEngine
from ignite.engine import EventEnum as IgniteEventEnum
from ignite.engine import Events as IgniteEvents
from ignite.engine import State as IgniteState
from ignite.handlers.base_logger import BaseLogger as IgniteBaseLogger
from ignite.handlers.base_logger import BaseOutputHandler as IgniteBaseOutputHandler

from ignite_async import Engine, EventEnum, Events
from ignite_async.handlers import global_step_from_engine
from ignite_async.loggers import JSONLinesLogger, read_jsonl


class RefOutputHandler(IgniteBaseOutputHandler):  # type: ignore[misc]
    """pytorch-ignite's output handler, recording ``(tag, name, step, value)`` like our loggers' records."""

    def __init__(self, records: list[tuple[str, str, int, float]], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records = records

    def __call__(self, engine: Any, logger: Any, event_name: Any) -> None:
        values = self._setup_output_metrics_state_attrs(engine, key_tuple=False)
        step = self.global_step_transform(engine, event_name)
        for name, value in values.items():
            self.records.append((self.tag, name.split("/", 1)[1], step, float(value)))


class RefLogger(IgniteBaseLogger):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: list[tuple[str, str, int, float]] = []

    def _create_output_handler(self, *args: Any, **kwargs: Any) -> Any:
        return RefOutputHandler(self.records, *args, **kwargs)

    def _create_opt_params_handler(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class RefCustom(IgniteEventEnum):
    PING = "ping"


class Custom(EventEnum):
    PING = "ping"


def val_step(engine: Any, batch: int) -> float:
    return batch * 0.25


def reference(custom: str | None, fallback_attr: str, on: str) -> list[tuple[str, str, int, float]]:
    trainer = IgniteEngine(lambda e, b: None)
    trainer.register_events(*RefCustom)
    evaluator = IgniteEngine(val_step)
    logger = RefLogger()
    kwargs: dict[str, Any] = {"fallback_attr": fallback_attr}
    if custom is not None:
        kwargs["custom_event_name"] = RefCustom.PING if custom == "PING" else getattr(IgniteEvents, custom)
    logger.attach_output_handler(
        evaluator,
        getattr(IgniteEvents, on),
        tag="validation",
        output_transform=lambda out: {"score": out},
        global_step_transform=ref_handlers.global_step_from_engine(trainer, **kwargs),
    )

    @trainer.on(IgniteEvents.EPOCH_COMPLETED | IgniteEvents.ITERATION_COMPLETED(every=3))
    def evaluate(engine: Any) -> None:
        evaluator.run([engine.state.iteration, engine.state.epoch])

    trainer.run(range(4), max_epochs=3)
    return logger.records


@pytest.mark.anyio
@pytest.mark.parametrize("on", ["COMPLETED", "EPOCH_COMPLETED", "ITERATION_COMPLETED"])
@pytest.mark.parametrize(
    ("custom", "fallback_attr"),
    [
        (None, "epoch"),
        ("ITERATION_COMPLETED", "epoch"),
        ("EPOCH_STARTED", "epoch"),
        ("PING", "epoch"),
        ("PING", "iteration"),
    ],
)
async def test_logs_evaluator_records_at_the_trainers_step_as_ignite(
    tmp_path: Path, on: str, custom: str | None, fallback_attr: str
) -> None:
    trainer = Engine(lambda e, b: None)
    trainer.register_events(*Custom)
    evaluator = Engine(val_step)
    kwargs: dict[str, Any] = {"fallback_attr": fallback_attr}
    if custom is not None:
        kwargs["custom_event_name"] = Custom.PING if custom == "PING" else getattr(Events, custom)
    path = tmp_path / "metrics.jsonl"
    async with JSONLinesLogger(path) as logger:
        logger.attach_output_handler(
            evaluator,
            getattr(Events, on),
            tag="validation",
            output_transform=lambda out: {"score": out},
            global_step_transform=global_step_from_engine(trainer, **kwargs),
        )

        @trainer.on(Events.EPOCH_COMPLETED | Events.ITERATION_COMPLETED(every=3))
        async def evaluate(engine: Engine) -> None:
            await evaluator.run([engine.state.iteration, engine.state.epoch])

        await trainer.run(range(4), max_epochs=3)
    ours = [(r["tag"], r["name"], r["step"], r["value"]) for r in read_jsonl(path)]
    expected = reference(custom, fallback_attr, on)
    assert ours == expected
    assert len({step for _, _, step, _ in ours}) > 1  # the steps are the trainer's, not the evaluator's


def test_reads_the_given_engine_not_the_calling_one() -> None:
    trainer, evaluator = Engine(lambda e, b: None), Engine(lambda e, b: None)
    trainer.state.epoch, trainer.state.iteration = 4, 40
    evaluator.state.epoch, evaluator.state.iteration = 1, 7
    step = global_step_from_engine(trainer)
    assert step(evaluator, Events.ITERATION_COMPLETED) == 40
    assert step(evaluator, Events.ITERATION_COMPLETED(every=5)) == 40
    assert step(evaluator, Events.EPOCH_STARTED) == 4
    assert step(evaluator, Custom.PING) == 4
    assert global_step_from_engine(trainer, fallback_attr="iteration")(evaluator, Custom.PING) == 40


def test_a_custom_event_registered_with_a_counter_reads_it_as_ignite(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytorch-ignite registers event_to_attr in a dict shared by every State: work on a copy of it.
    monkeypatch.setattr(IgniteState, "event_to_attr", dict(IgniteState.event_to_attr))
    ref = IgniteEngine(lambda e, b: None)
    ref.register_events(*RefCustom, event_to_attr={RefCustom.PING: "pings"})
    ref.state.pings = 9
    ours = Engine(lambda e, b: None)
    ours.register_events(*Custom, event_to_attr={Custom.PING: "pings"})
    ours.state.pings = 9
    assert global_step_from_engine(ours)(None, Custom.PING) == 9
    assert ref_handlers.global_step_from_engine(ref)(None, RefCustom.PING) == 9


def test_an_engine_that_is_not_ours_is_refused_at_the_call() -> None:
    for bad, shown in (("x", r"builtins\.str"), (IgniteEngine(lambda e, b: None), r"ignite\.engine\.engine\.Engine")):
        with pytest.raises(TypeError, match=rf"engine must be the ignite_async Engine whose counters.*got {shown}"):
            global_step_from_engine(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"fallback_attr must be the name \(str\) of a state attribute, got 3"):
        global_step_from_engine(Engine(lambda e, b: None), fallback_attr=3)  # type: ignore[arg-type]
