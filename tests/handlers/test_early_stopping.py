"""EarlyStopping: pytorch-ignite 0.5.5's decisions on the same scores, plus its bad input."""

from __future__ import annotations

import random
import warnings
from typing import Any

import pytest
import torch
from ignite.engine import Engine as IgniteEngine
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
        min_delta=delta,
        cumulative_delta=cumulative,
        mode=mode,
        min_delta_mode=delta_mode,
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
    assert dict(sd) == {"counter": 1, "best_score": 0.5}
    other = EarlyStopping(patience=5, score_function=lambda e: 0.0, trainer=trainer)
    other.load_state_dict(sd)
    assert (other.counter, other.best_score) == (1, 0.5)
    with pytest.raises(ValueError, match="lacks"):
        other.load_state_dict({"counter": 1})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"patience": 0}, ValueError, "patience must be an integer >= 1"),
        ({"patience": 1.5}, ValueError, "patience must be an integer >= 1"),
        ({"score_function": 3}, TypeError, "score_function must be callable"),
        ({"trainer": object()}, TypeError, "trainer must be an ignite_async Engine"),
        ({"min_delta": -0.1}, ValueError, "min_delta must be a number >= 0"),
        ({"mode": "best"}, ValueError, "mode must be 'min' or 'max'"),
        ({"min_delta_mode": "pct"}, ValueError, "min_delta_mode must be 'abs' or 'rel'"),
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
