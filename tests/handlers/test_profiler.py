from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from ignite_async import Engine, Events, background
from ignite_async.handlers import HandlersTimeProfiler

pytestmark = pytest.mark.anyio


async def test_time_per_handler_event_process_function_data_and_background(tmp_path: Path) -> None:
    def step(engine: Engine, batch: int) -> None:
        time.sleep(0.002)

    def slow_log(engine: Engine) -> None:
        time.sleep(0.005)

    async def upload() -> None:
        await anyio.sleep(0.01)

    engine = Engine(step)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), slow_log)
    engine.add_event_handler(Events.EPOCH_COMPLETED, background(upload))
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    await engine.run(range(6), max_epochs=2)

    rows = {(r["handler"], r["event"]): r for r in profiler.get_results()}
    assert rows[("slow_log", "ITERATION_COMPLETED")]["count"] == 6  # only the firings its filter let through
    assert rows[("slow_log", "ITERATION_COMPLETED")]["total"] >= 6 * 0.005
    process = rows[("[process function]", "ITERATION")]
    assert process["count"] == 12
    assert process["min"] >= 0.002
    assert rows[("[data fetching]", "GET_BATCH")]["count"] == 12
    bg = rows[("upload [background]", "-")]
    assert bg["count"] == 2
    assert bg["total"] >= 2 * 0.01

    path = tmp_path / "profile.csv"
    profiler.write_results(path)
    written = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["handler"] for r in written] == [r["handler"] for r in profiler.get_results()]
    assert set(written[0]) == set(HandlersTimeProfiler.COLUMNS)

    console = Console(file=io.StringIO(), width=160)
    profiler.print_results(console)
    table = console.file.getvalue()
    assert "slow_log" in table
    assert "ITERATION_COMPLETED" in table


def test_attach_needs_an_engine() -> None:
    with pytest.raises(TypeError, match="ignite_async Engine"):
        HandlersTimeProfiler().attach(object())  # type: ignore[arg-type]
