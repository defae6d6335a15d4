from __future__ import annotations

import csv
import io
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.console import Console

from ignite_async import Engine, Events, background
from ignite_async.handlers import HandlersTimeProfiler, ProgressBar

pytestmark = pytest.mark.anyio


def _build(engine_cls: Any, events: Any) -> Any:
    """The same handlers on a pytorch-ignite or an ignite_async engine."""

    def step(engine: Any, batch: int) -> None:
        time.sleep(0.002)

    def slow_log(engine: Any) -> None:
        time.sleep(0.002)  # over EVENT_FILTER_THESHOLD_TIME, which 0.5.5 applies to filtered handlers

    def at_epoch() -> None:
        time.sleep(0.001)

    def never() -> None:
        pass

    engine = engine_cls(step)
    engine.add_event_handler(events.ITERATION_COMPLETED(every=2), slow_log)
    engine.add_event_handler(events.EPOCH_COMPLETED, at_epoch)
    engine.add_event_handler(events.TERMINATE, never)
    return engine


class _PandasStub:
    """Just enough of pandas for 0.5.5's write_results (pandas is not installed): the header it builds."""

    class DataFrame:
        def __init__(self, data: Any, columns: list[str]) -> None:
            self.data, self.columns = data, columns

        def to_csv(self, path: str, index: bool) -> None:
            with open(path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(self.columns)
                writer.writerows(self.data.tolist())


def _shape(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_shape(v) for v in value)
    return value if isinstance(value, str) else type(value)


async def test_results_rows_and_csv_are_pytorch_ignite_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ignite.engine
    import ignite.handlers

    reference_engine = _build(ignite.engine.Engine, ignite.engine.Events)
    reference = ignite.handlers.HandlersTimeProfiler()
    reference.attach(reference_engine)
    reference_engine.run(range(6), max_epochs=2)
    engine = _build(Engine, Events)
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    await engine.run(range(6), max_epochs=2)

    expected, results = reference.get_results(), profiler.get_results()
    assert [r[:2] for r in results] == [r[:2] for r in expected]
    assert [r[:2] for r in results] == [
        ["_build.<locals>.at_epoch", "EPOCH_COMPLETED"],
        ["_build.<locals>.slow_log", "ITERATION_COMPLETED"],
        ["_build.<locals>.never", "TERMINATE"],
        ["Total", ""],
        ["Processing", "None"],
        ["Dataflow", "None"],
    ]
    # Same structure cell by cell: a number where 0.5.5 has one, its strings where it has them.
    assert [[_shape(v) for v in r[2:]] for r in results[:-1]] == [[_shape(v) for v in r[2:]] for r in expected[:-1]]
    rows = {r[0]: r for r in results}
    assert rows["_build.<locals>.slow_log"][2] >= 6 * 0.002  # only the firings its filter let through
    assert rows["_build.<locals>.slow_log"][3][0] >= 0.002
    assert 0 <= rows["_build.<locals>.slow_log"][3][1] < 6  # an index among its 6 firings
    assert rows["_build.<locals>.at_epoch"][2] >= 2 * 0.001
    assert rows["Total"][2] == pytest.approx(
        rows["_build.<locals>.slow_log"][2] + rows["_build.<locals>.at_epoch"][2], abs=2e-5
    )
    assert rows["Processing"][2] >= 12 * 0.002
    assert rows["Processing"][3][0] >= 0.002
    assert len(profiler.processing_times) == len(profiler.dataflow_times) == 12
    assert (
        HandlersTimeProfiler.EVENT_FILTER_THESHOLD_TIME
        == ignite.handlers.HandlersTimeProfiler.EVENT_FILTER_THESHOLD_TIME
    )

    monkeypatch.setitem(sys.modules, "pandas", _PandasStub)
    reference.write_results(str(tmp_path / "reference.csv"))
    profiler.write_results(tmp_path / "ours.csv")
    expected_csv = list(csv.reader(io.StringIO((tmp_path / "reference.csv").read_text())))
    written = list(csv.reader(io.StringIO((tmp_path / "ours.csv").read_text())))
    assert written[0] == expected_csv[0]
    assert written[0][:3] == ["#", "processing_stats", "dataflow_stats"]
    assert len(written) == len(expected_csv) == 13  # the header and the 12 iterations, shorter columns padded
    assert [float(r[0]) for r in written[1:]] == list(range(1, 13))
    slow_log = written[0].index("_build.<locals>.slow_log (ITERATION_COMPLETED)")
    assert sum(float(r[slow_log]) > 0 for r in written[1:]) == 6
    assert all(float(r[1]) >= 0.002 for r in written[1:])


async def test_background_handlers_have_a_row_of_their_time_in_the_background() -> None:
    async def upload() -> None:
        await anyio.sleep(0.01)

    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, background(upload))
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    await engine.run(range(3), max_epochs=2)
    results = profiler.get_results()
    names = [r[0] for r in results]
    qualname = upload.__qualname__
    assert names == [qualname, f"{qualname} [background]", "Total", "Processing", "Dataflow"]
    loop, bg = results[0], results[1]
    assert bg[1] == "EPOCH_COMPLETED"
    assert bg[2] >= 2 * 0.01
    assert bg[5] >= 0.01
    assert loop[2] < bg[2]  # firing it in the loop is quick; the work is in the background
    assert results[2][2] == loop[2]  # Total is the time in the loop


async def test_print_results_static_and_bare_and_results_are_not_changed() -> None:
    engine = _build(Engine, Events)
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    await engine.run(range(4), max_epochs=1)
    results = profiler.get_results()
    snapshot = [list(r) for r in results]
    static, bare = io.StringIO(), io.StringIO()
    HandlersTimeProfiler.print_results(results, console=Console(file=static, width=200))
    profiler.print_results(console=Console(file=bare, width=200))
    assert results == snapshot
    for out in (static.getvalue(), bare.getvalue()):
        assert "_build.<locals>.slow_log" in out
        assert "not triggered" in out
        assert re.search(r"^Processing took total [0-9.e-]+s \[min/index: [0-9.e-]+s/\d+, max/index: ", out, re.M)
        assert re.search(r"^Dataflow took total ", out, re.M)
    with pytest.raises(TypeError, match="needs the rows of get_results"):
        HandlersTimeProfiler.print_results()


async def test_each_run_starts_the_results_afresh_without_wrapping_twice() -> None:
    engine = _build(Engine, Events)
    profiler = HandlersTimeProfiler()
    profiler.attach(engine)
    profiler.attach(engine)  # once is enough
    await engine.run(range(4), max_epochs=1)
    await engine.run(range(3), max_epochs=1)
    assert len(profiler.processing_times) == len(profiler.dataflow_times) == 3
    assert len(profiler.event_handlers_times[Events.ITERATION_COMPLETED]["_build.<locals>.slow_log"]) == 1


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
    "Processing took total",
    "Dataflow took total",
    "ITERATION_COMPLETED",
    "EPOCH_COMPLETED",
)


def test_not_on_a_terminal_the_table_shows_whole_names_each_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    profiler = _profiled_engine_with_long_names()
    narrow = io.StringIO()
    profiler.print_results(console=Console(file=narrow, width=80))  # a file: not a terminal, however narrow
    profiler.print_results()  # the default console, on the captured stdout: a pipe, not a terminal
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:
        profiler.print_results(console=Console(file=pipe, width=80))
    with os.fdopen(read) as pipe:
        piped = pipe.read()
    for output in (narrow.getvalue(), capsys.readouterr().out, piped):
        for name in NAMES:
            assert name in output, f"{name!r} is cut in:\n{output}"
        assert "…" not in output


def test_on_a_narrow_terminal_names_fold_rather_than_being_cut() -> None:
    profiler = _profiled_engine_with_long_names()
    terminal = io.StringIO()
    profiler.print_results(console=Console(file=terminal, force_terminal=True, color_system=None, width=100))
    output = terminal.getvalue()
    assert max(len(line) for line in output.splitlines()) <= 100
    cells = "".join(line.split("│")[1].strip() for line in output.splitlines() if line.startswith("│"))
    assert "AHandlerClassWithAVeryLongName.and_a_long_method_name_too" in cells
