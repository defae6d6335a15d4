from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from ignite_async import Engine, Events, background
from ignite_async.handlers import HandlersTimeProfiler, ProgressBar

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

    buffer = io.StringIO()
    profiler.print_results(Console(file=buffer, width=160))
    table = buffer.getvalue()
    assert "slow_log" in table
    assert "ITERATION_COMPLETED" in table


def test_attach_needs_an_engine() -> None:
    with pytest.raises(TypeError, match="ignite_async Engine"):
        HandlersTimeProfiler().attach(object())  # type: ignore[arg-type]


class AHandlerClassWithAVeryLongName:
    def and_a_long_method_name_too(self) -> None:
        pass


def _profiled_engine_with_long_names() -> HandlersTimeProfiler:
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, AHandlerClassWithAVeryLongName().and_a_long_method_name_too)
    ProgressBar(console=Console(file=io.StringIO())).attach(engine)
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    anyio.run(engine.run, range(3), 2)
    return profiler


NAMES = (
    "AHandlerClassWithAVeryLongName.and_a_long_method_name_too",
    "ProgressBar._advance",
    "ProgressBar._close",
    "[process function]",  # shown as text, not read as rich markup
    "[data fetching]",
    "ITERATION_COMPLETED",
    "EPOCH_COMPLETED",
)


def test_not_on_a_terminal_the_table_shows_whole_names_each_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    profiler = _profiled_engine_with_long_names()
    narrow = io.StringIO()
    profiler.print_results(Console(file=narrow, width=80))  # a file: not a terminal, however narrow
    profiler.print_results()  # the default console, on the captured stdout: a pipe, not a terminal
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        profiler.print_results(Console(file=pipe, width=80))
    with os.fdopen(read) as pipe:
        piped = pipe.read()
    for output in (narrow.getvalue(), capsys.readouterr().out, piped):
        for name in NAMES:
            assert name in output, f"{name!r} is cut in:\n{output}"
        assert "…" not in output


def test_on_a_narrow_terminal_names_fold_rather_than_being_cut() -> None:
    profiler = _profiled_engine_with_long_names()
    terminal = io.StringIO()
    profiler.print_results(Console(file=terminal, force_terminal=True, color_system=None, width=100))
    output = terminal.getvalue()
    assert max(len(line) for line in output.splitlines()) <= 100
    cells = "".join(line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│"))
    assert "AHandlerClassWithAVeryLongName.and_a_long_method_name_too" in cells
