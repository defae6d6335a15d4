"""Differential checks against pytorch-ignite 0.5.5: direct updates, and attached to an engine for two epochs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

from ignite_async import Engine, Events


def plain(value: Any) -> Any:
    """Nested lists and numbers that pytest.approx compares (tensors become lists, mappings stay mappings)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def flat(value: Any) -> list[Any]:
    """The numbers in ``value`` in order (approx compares flat sequences only); mappings by sorted key."""
    value = plain(value)
    if isinstance(value, dict):
        return [("key", k) for k in sorted(value)] + [x for k in sorted(value) for x in flat(value[k])]
    if isinstance(value, list):
        return [x for v in value for x in flat(v)]
    return [value]


def assert_close(mine: Any, theirs: Any) -> None:
    m, t = flat(mine), flat(theirs)
    assert len(m) == len(t), (m, t)
    for a, b in zip(m, t, strict=True):
        if isinstance(b, tuple):
            assert a == b
        elif isinstance(b, str):  # a JSON report: its numbers compared as numbers
            assert isinstance(a, str)
            assert_close(json.loads(a), json.loads(b))
        elif isinstance(b, float) and b != b:  # nan
            assert isinstance(a, float)
            assert a != a
        else:
            assert a == pytest.approx(b, rel=1e-6, abs=1e-6)


def check_direct(mine: Any, theirs: Any, batches: Sequence[Any]) -> None:
    for batch in batches:
        theirs.update(batch)
        mine.update(batch)
    assert_close(mine.compute(), theirs.compute())


async def check_attached(
    make: Callable[[bool], Any], batches: Sequence[Any], usage: str = "epoch_wise", epochs: int = 2
) -> None:
    """``make(True)`` builds ours, ``make(False)`` pytorch-ignite's; the metrics after each epoch must agree."""
    ref = IgniteEngine(lambda e, b: b)
    theirs_seen: list[Any] = []
    make(False).attach(ref, "m", usage=usage)
    ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda e: theirs_seen.append(dict(e.state.metrics)))
    ref.run(list(batches), max_epochs=epochs)
    engine = Engine(lambda e, b: b)
    mine_seen: list[Any] = []
    make(True).attach(engine, "m", usage=usage)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: mine_seen.append(dict(e.state.metrics)))
    await engine.run(list(batches), max_epochs=epochs)
    assert len(mine_seen) == len(theirs_seen) == epochs
    for m, t in zip(mine_seen, theirs_seen, strict=True):
        assert sorted(m) == sorted(t)
        assert_close(m, t)


def check_state_round_trip(make: Callable[[], Any], batches: Sequence[Any]) -> None:
    """A metric loaded from another's ``state_dict`` midway ends with the same value."""
    first, second = make(), make()
    half = max(1, len(batches) // 2)
    for batch in batches[:half]:
        first.update(batch)
    second.load_state_dict(first.state_dict())
    for batch in batches[half:]:
        first.update(batch)
        second.update(batch)
    assert_close(second.compute(), first.compute())
