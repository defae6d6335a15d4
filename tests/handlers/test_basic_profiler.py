from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from ignite_async import Engine, Events
from ignite_async.handlers.basic_profiler import BasicTimeProfiler
from tests.handlers.test_profiler import _PandasStub

pytestmark = pytest.mark.anyio


def _build(engine_cls: Any, events: Any) -> Any:
    def step(engine: Any, batch: int) -> None:
        time.sleep(0.001)

    def slow_log(engine: Any) -> None:
        time.sleep(0.001)

    def at_epoch() -> None:
        time.sleep(0.0005)

    engine = engine_cls(step)
    engine.add_event_handler(events.ITERATION_COMPLETED(every=2), slow_log)
    engine.add_event_handler(events.EPOCH_COMPLETED, at_epoch)
    return engine


def _structure(value: Any) -> Any:
    """Keys all the way down, and for the leaves their type (a tuple: the types of its items)."""
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(type(v) for v in value)
    return value if isinstance(value, (str, list)) else type(value)


def _counts(profiler: Any) -> dict[str, int]:
    counts = {e.name: int((t > 0).sum()) for e, t in profiler.event_handlers_times.items()}
    counts["processing"] = int((profiler.processing_times > 0).sum())
    counts["dataflow"] = int((profiler.dataflow_times > 0).sum())
    return counts


async def test_results_have_pytorch_ignite_s_structure_counts_and_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ignite.engine
    import ignite.handlers

    reference_engine = _build(ignite.engine.Engine, ignite.engine.Events)
    reference = ignite.handlers.BasicTimeProfiler()
    reference.attach(reference_engine)
    reference_engine.run(range(6), max_epochs=2)
    engine = _build(Engine, Events)
    profiler = BasicTimeProfiler()
    profiler.attach(engine)
    await engine.run(range(6), max_epochs=2)

    expected, results = reference.get_results(), profiler.get_results()
    assert list(results) == list(expected)
    assert _structure(results) == _structure(expected)  # same keys, names and value types everywhere
    assert list(results["event_handlers_stats"]) == list(expected["event_handlers_stats"])
    assert results["event_handlers_names"]["ITERATION_COMPLETED_names"] == ["_build.<locals>.slow_log"]
    assert (
        _counts(profiler)
        == _counts(reference)
        == {
            "STARTED": 1,
            "COMPLETED": 1,
            "EPOCH_STARTED": 2,
            "EPOCH_COMPLETED": 2,
            "ITERATION_STARTED": 12,
            "ITERATION_COMPLETED": 12,
            "GET_BATCH_COMPLETED": 12,
            "GET_BATCH_STARTED": 12,
            "processing": 12,
            "dataflow": 12,
        }
    )
    assert results["processing_stats"]["min/index"][0] >= 0.001
    assert results["event_handlers_stats"]["EPOCH_COMPLETED"]["min/index"][0] >= 0.0005
    assert isinstance(results["event_handlers_stats"]["total_time"], torch.Tensor)
    assert float(results["event_handlers_stats"]["total_time"]) >= 6 * 0.001 + 2 * 0.0005
    assert {k: len(v) for k, v in engine._event_handlers.items() if v} == {
        "STARTED": 1,  # itself, for the next run; what it added at the start is gone
        "ITERATION_COMPLETED": 1,
        "EPOCH_COMPLETED": 1,
    }

    report = BasicTimeProfiler.print_results(results)
    assert report.count("\n- Events.") == 6
    assert "- Events.ITERATION_COMPLETED: ['_build.<locals>.slow_log']" in report

    monkeypatch.setitem(sys.modules, "pandas", _PandasStub)
    reference.write_results(str(tmp_path / "reference.csv"))
    profiler.write_results(tmp_path / "ours.csv")
    expected_csv = list(csv.reader(io.StringIO((tmp_path / "reference.csv").read_text())))
    written = list(csv.reader(io.StringIO((tmp_path / "ours.csv").read_text())))
    assert written[0] == expected_csv[0]
    assert len(written) == len(expected_csv) == 13
    assert [r[:2] for r in written] == [r[:2] for r in expected_csv]  # epoch and iteration columns


async def test_a_second_run_starts_afresh_and_data_without_length_needs_epoch_length() -> None:
    engine = _build(Engine, Events)
    profiler = BasicTimeProfiler()
    profiler.attach(engine)
    profiler.attach(engine)
    await engine.run(range(4), max_epochs=1)
    await engine.run(range(3), max_epochs=1)
    assert profiler.total_num_iters == 3
    assert _counts(profiler)["processing"] == 3

    def endless() -> Any:
        while True:
            yield 0

    other = Engine(lambda e, b: None)
    BasicTimeProfiler().attach(other)
    with pytest.raises(ValueError, match="epoch_length"):
        await other.run(endless(), max_epochs=1, epoch_length=None)


def test_attach_needs_an_engine() -> None:
    with pytest.raises(TypeError, match="ignite_async Engine"):
        BasicTimeProfiler().attach(object())  # type: ignore[arg-type]
