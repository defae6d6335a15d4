"""ClassificationReport: pytorch-ignite 0.5.5's report, as a dict or JSON, and where it lands in state.metrics."""

from __future__ import annotations

import json
from typing import Any

import ignite.metrics as ig
import pytest
import torch
from ignite.engine import Engine as IgniteEngine

from ignite_async import Engine
from ignite_async.metrics.classification_report import ClassificationReport
from tests.metrics._data import classification_batches
from tests.metrics._oracle import assert_close, check_attached, check_direct


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
@pytest.mark.parametrize("beta", [1, 2])
def test_values_equal_ignites(kind: str, beta: int, seed: int) -> None:
    batches = classification_batches(kind, seed)
    kwargs: dict[str, Any] = {"beta": beta, "output_dict": True, "is_multilabel": kind == "multilabel"}
    check_direct(ClassificationReport(**kwargs), ig.ClassificationReport(**kwargs), batches)


def test_json_and_labels_equal_ignites() -> None:
    batches = classification_batches("multiclass", 4)
    classes = batches[0][0].shape[1]
    names = [f"class {i}" for i in range(classes)]
    mine, theirs = ClassificationReport(labels=names), ig.ClassificationReport(labels=names)
    for batch in batches:
        mine.update(batch)
        theirs.update(batch)
    text = mine.compute()
    assert isinstance(text, str)
    assert list(json.loads(text)) == [*names, "macro avg"]
    assert_close(json.loads(text), json.loads(theirs.compute()))


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["flatten", "named", "both"])
async def test_attached_result_modes_like_ignite(mode: str) -> None:
    batches = classification_batches("multiclass", 2)

    def make(ours: bool) -> Any:
        return (ClassificationReport if ours else ig.ClassificationReport)(output_dict=True, metrics_result_mode=mode)

    await check_attached(make, batches)
    await check_attached(lambda ours: (ClassificationReport if ours else ig.ClassificationReport)(), batches)


@pytest.mark.anyio
async def test_name_clash_and_bad_mode() -> None:
    binary = ClassificationReport()
    binary.update((torch.tensor([1, 0, 1]), torch.tensor([1, 1, 0])))
    with pytest.raises(ValueError, match="binary data has no classes"):
        binary.compute()
    with pytest.raises(ValueError, match="metrics_result_mode"):
        ClassificationReport(metrics_result_mode="nested")  # type: ignore[arg-type]
    engine = Engine(lambda e, b: b)
    ClassificationReport(output_dict=True).attach(engine, "macro avg")
    ref = IgniteEngine(lambda e, b: b)
    ig.ClassificationReport(output_dict=True).attach(ref, "macro avg")
    batch = (torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="macro avg"):
        ref.run([batch])
    with pytest.raises(ValueError, match="also a key of its result"):
        await engine.run([batch])
