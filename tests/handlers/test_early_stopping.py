"""EarlyStopping: pytorch-ignite 0.5.5's decisions on the same scores, plus its bad input."""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any

import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import EarlyStopping as IgniteEarlyStopping

from ignite_async import Engine, Events
from ignite_async.handlers import EarlyStopping


def decisions(library: str, scores: list[float], **kwargs: Any) -> list[tuple[int, bool]]:
    """(counter, terminate requested) after each score, with pytorch-ignite's or our EarlyStopping."""
    engine_cls, handler_cls = (IgniteEngine, IgniteEarlyStopping) if library == "ignite" else (Engine, EarlyStopping)
    trainer = engine_cls(lambda e, b: None)
    it = iter(scores)
    handler = handler_cls(score_function=lambda e: next(it), trainer=trainer, **kwargs)
    out = []
    for _ in scores:
        handler(trainer)
        out.append((handler.counter, bool(trainer.should_terminate)))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_same_decisions_as_ignite_on_random_scores(seed: int) -> None:
    rng = random.Random(seed)
    scores = [round(rng.uniform(0, 1), 2) for _ in range(rng.randint(2, 15))]
    patience = rng.randint(1, 4)
    delta = rng.choice([0.0, 0.01, 0.1])
    cumulative = rng.random() < 0.5
    mode = rng.choice(["max", "min"])
    delta_mode = rng.choice(["abs", "rel"])
    ours = decisions(
        "ours",
        scores,
        patience=patience,
        threshold=delta,
        cumulative=cumulative,
        mode=mode,
        threshold_mode=delta_mode,
    )
    theirs = decisions(
        "ignite",
        scores,
        patience=patience,
        threshold=delta,
        cumulative=cumulative,
        mode=mode,
        threshold_mode=delta_mode,
    )
    assert ours == theirs


@pytest.mark.anyio
async def test_stops_the_trainer_and_resets_when_it_starts_again() -> None:
    scores = iter([1.0, 0.9, 0.8, 0.7, 1.0, 0.9, 0.8, 0.7])
    trainer, evaluator = Engine(lambda e, b: None), Engine(lambda e, b: None)
    stopper = EarlyStopping(patience=3, score_function=lambda e: next(scores), trainer=trainer)
    stopper.attach(evaluator, reset_engine=trainer)

    @trainer.on(Events.EPOCH_COMPLETED)
    async def validate(engine: Engine) -> None:
        await evaluator.run([0])

    assert (await trainer.run([0, 1], max_epochs=10)).epoch == 4
    assert stopper.counter == 3
    # run() after terminate() resumes (pytorch-ignite's rule); STARTED resets the count, so it takes another
    # three firings without improvement (not one) to stop again.
    assert (await trainer.run([0, 1], max_epochs=10)).epoch == 8


def test_state_dict_round_trip_and_tensor_scores() -> None:
    trainer = Engine(lambda e, b: None)
    scores = iter([torch.tensor(0.5), torch.tensor(0.4)])
    stopper = EarlyStopping(patience=5, score_function=lambda e: next(scores), trainer=trainer)
    stopper(trainer)
    stopper(trainer)
    sd = stopper.state_dict()
    assert dict(sd) == {"counter": 1, "best_score": 0.5, "threshold_mode": "abs"}
    other = EarlyStopping(patience=5, score_function=lambda e: 0.0, trainer=trainer, threshold_mode="rel")
    other.load_state_dict(sd)
    assert (other.counter, other.best_score, other.threshold_mode) == (1, 0.5, "abs")
    other.load_state_dict({"counter": 2, "best_score": 0.25})  # saved before threshold_mode was: kept
    assert (other.counter, other.best_score, other.threshold_mode) == (2, 0.25, "abs")
    with pytest.raises(ValueError, match="lacks"):
        other.load_state_dict({"counter": 1})
    with pytest.raises(ValueError, match="threshold_mode must be 'abs' or 'rel'"):
        other.load_state_dict({"counter": 1, "best_score": 0.5, "threshold_mode": "pct"})
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        other.load_state_dict([("counter", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patience": 0}, ValueError, "patience must be an integer >= 1"),
        ({"patience": 1.5}, ValueError, "patience must be an integer >= 1"),
        ({"score_function": 3}, TypeError, "score_function must be callable"),
        ({"trainer": object()}, TypeError, "trainer must be an ignite_async Engine"),
        ({"threshold": -0.1}, ValueError, "threshold must be a number >= 0"),
        ({"threshold": "0.1"}, ValueError, "threshold must be a number >= 0"),
        ({"cumulative": "yes"}, TypeError, "cumulative must be a bool"),
        ({"mode": "best"}, ValueError, "mode must be 'min' or 'max'"),
        ({"threshold_mode": "pct"}, ValueError, "threshold_mode must be 'abs' or 'rel'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"patience": 2, "score_function": lambda e: 0.0, "trainer": Engine(lambda e, b: None)}
    with pytest.raises(error, match=match):
        EarlyStopping(**{**args, **kwargs})


def test_a_score_that_is_not_a_number_is_named() -> None:
    def accuracy(engine: Engine) -> str:
        return "high"

    trainer = Engine(lambda e, b: None)
    with pytest.raises(TypeError, match=r"accuracy.*'high'.*need a number"):
        EarlyStopping(patience=2, score_function=accuracy, trainer=trainer)(trainer)


def test_ignite_oracle_is_not_deprecated_in_our_usage() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decisions("ignite", [0.1, 0.2], patience=1)


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("min_delta", "threshold", 0.1),
        ("min_delta_mode", "threshold_mode", "rel"),
        ("cumulative_delta", "cumulative", True),
    ],
)
def test_deprecated_names_warn_and_work_as_ignites(old: str, new: str, value: Any) -> None:
    for engine_cls, handler_cls in ((IgniteEngine, IgniteEarlyStopping), (Engine, EarlyStopping)):
        with pytest.warns(DeprecationWarning, match=f"'?{old}'? is deprecated.*'?{new}'? instead") as record:
            handler = handler_cls(
                patience=2, score_function=lambda e: 0.0, trainer=engine_cls(lambda e, b: None), **{old: value}
            )
        assert record[0].filename == __file__  # attributed to the caller
        assert getattr(handler, new) == value
        with pytest.warns(DeprecationWarning, match=f"{old}"):
            assert getattr(handler, old) == value
        with pytest.warns(DeprecationWarning, match=f"{old}"):
            setattr(handler, old, value)


def test_positional_arguments_are_ignites() -> None:
    trainer = Engine(lambda e, b: None)
    ours = EarlyStopping(3, lambda e: 0.0, trainer, 0.5, True, "rel", "min")
    assert (ours.patience, ours.threshold, ours.cumulative, ours.threshold_mode, ours.mode) == (
        3,
        0.5,
        True,
        "rel",
        "min",
    )
    theirs = IgniteEarlyStopping(3, lambda e: 0.0, IgniteEngine(lambda e, b: None), 0.5, True, "rel", "min")
    assert (theirs.patience, theirs.threshold, theirs.cumulative, theirs.threshold_mode, theirs.mode) == (
        3,
        0.5,
        True,
        "rel",
        "min",
    )


@pytest.mark.anyio
@pytest.mark.parametrize("library", ["ignite", "ours"])
async def test_a_scripted_run_stops_at_ignites_epoch_with_its_counters_and_logs(
    library: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Validation scores by epoch: best 0.7 at epoch 3; 0.705 is within threshold; stop after 3 more.
    scores = [0.5, 0.6, 0.7, 0.69, 0.705, 0.8, 0.79, 0.78, 0.8, 0.5, 0.4, 0.3]
    kwargs: dict[str, Any] = {"patience": 3, "threshold": 0.01, "cumulative": True}
    counters: list[int] = []
    if library == "ignite":
        ref = IgniteEngine(lambda e, b: None)
        ref_stopper = IgniteEarlyStopping(score_function=lambda e: scores[e.state.epoch - 1], trainer=ref, **kwargs)
        ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, ref_stopper)
        ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda e: counters.append(ref_stopper.counter))
        with caplog.at_level(logging.DEBUG, logger="ignite.handlers.early_stopping.EarlyStopping"):
            ref.run([0], max_epochs=len(scores))
        stopped = ref.state.epoch
    else:
        trainer = Engine(lambda e, b: None)
        stopper = EarlyStopping(score_function=lambda e: scores[e.state.epoch - 1], trainer=trainer, **kwargs)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, stopper)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: counters.append(stopper.counter))
        with caplog.at_level(logging.DEBUG, logger="ignite_async.handlers.early_stopping.EarlyStopping"):
            stopped = (await trainer.run([0], max_epochs=len(scores))).epoch
    # The same constants for both libraries: pytorch-ignite's run checks them, ours must match.
    assert stopped == SCRIPTED_STOP
    assert counters == SCRIPTED_COUNTERS
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.endswith("EarlyStopping")]
    assert messages == [
        ("DEBUG", "EarlyStopping: 1 / 3"),
        ("DEBUG", "EarlyStopping: 2 / 3"),
        ("DEBUG", "EarlyStopping: 1 / 3"),
        ("DEBUG", "EarlyStopping: 2 / 3"),
        ("DEBUG", "EarlyStopping: 3 / 3"),
        ("INFO", "EarlyStopping: Stop training"),
    ]


# Epochs 4 (0.69) and 5 (0.705 < 0.7 + 0.01) do not improve; 6 (0.8) does; 7, 8, 9 do not: stopped at 9.
SCRIPTED_STOP = 9
SCRIPTED_COUNTERS = [0, 0, 0, 1, 2, 0, 1, 2, 3]
