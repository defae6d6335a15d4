from __future__ import annotations

import io
import re
import time
from typing import Any

import pytest
import rich.progress
from rich.console import Console

from ignite_async import Engine, Events
from ignite_async.handlers import ProgressBar
from tests.loggers._ignite import ignite_lookup

pytestmark = pytest.mark.anyio


def console(terminal: bool) -> Console:
    return Console(file=io.StringIO(), force_terminal=terminal, width=140, color_system=None)


def text(c: Console) -> str:
    out = c.file.getvalue()
    assert isinstance(out, str)
    return out


async def test_one_line_per_epoch_when_not_a_terminal() -> None:
    c = console(terminal=False)
    engine = Engine(lambda e, b: float(b))

    @engine.on(Events.EPOCH_COMPLETED)
    def metrics(engine: Engine) -> None:
        engine.state.metrics["acc"] = 0.25 * engine.state.epoch

    # Registered after `metrics`, so the line shows this epoch's value.
    ProgressBar(console=c).attach(engine, metric_names=["acc"], output_transform=lambda out: {"loss": out})
    await engine.run(range(4), max_epochs=3)
    lines = text(c).strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch [1/3] 4/4 iterations")
    assert lines[0].endswith("acc=0.25 loss=3")
    assert lines[2].endswith("acc=0.75 loss=3")


async def test_bars_on_a_terminal_with_a_nested_evaluator() -> None:
    c = console(terminal=True)
    evaluator = Engine(lambda e, b: None)
    ProgressBar("Eval", console=c).attach(evaluator)
    trainer = Engine(lambda e, b: 0.125)
    ProgressBar(console=c).attach(trainer, output_transform=lambda out: out)

    @trainer.on(Events.EPOCH_COMPLETED)
    async def evaluate(engine: Engine) -> None:
        await evaluator.run(range(7))

    await trainer.run(range(5), max_epochs=2)
    out = text(c)
    final = out.split("\r")[-1]
    assert final.count("Eval [1/1]") == 0  # the evaluator's bar went when its run was done
    assert "Epoch [2/2]" in out
    assert "5/5" in out
    assert "Eval [1/1]" in out
    assert "7/7" in out
    assert "output=0.125" in out
    assert "it/s" in out


async def test_drawing_is_bounded_whatever_the_iteration_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    updates = 0
    original = rich.progress.Progress.update

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal updates
        updates += 1
        original(self, *args, **kwargs)

    monkeypatch.setattr(rich.progress.Progress, "update", counting)
    engine = Engine(lambda e, b: None)
    ProgressBar(console=console(terminal=True), refresh_per_second=2).attach(engine)
    started = time.monotonic()
    await engine.run(range(20_000), max_epochs=2)
    elapsed = time.monotonic() - started
    # At most one update per 0.5 s (plus one at the start and end of each epoch), not one per iteration.
    assert updates <= 2 * elapsed + 2 * 2 + 2


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="refresh_per_second"):
        ProgressBar(refresh_per_second=0)
    engine = Engine(lambda e, b: None)
    with pytest.raises(TypeError, match="metric_names"):
        ProgressBar(console=console(False)).attach(engine, metric_names="acc")


@pytest.mark.parametrize("terminal", [False, True])
async def test_a_missing_metric_is_warned_about_once_and_the_rest_are_shown(terminal: bool) -> None:
    c = console(terminal)
    engine = Engine(lambda e, b: None)

    @engine.on(Events.EPOCH_COMPLETED)
    def metrics(engine: Engine) -> None:
        engine.state.metrics["acc"] = 0.25

    ProgressBar("Train", console=c, refresh_per_second=1e9).attach(engine, metric_names=["acc", "f1"])
    with pytest.warns(UserWarning, match="Provided metric name") as warned:
        await engine.run(range(4), max_epochs=3)  # drawn at every iteration on a terminal: warned once all the same
    # On a terminal the first drawing, at the first iteration, finds neither name; a line at an epoch's end
    # finds acc. pytorch-ignite's category and words for that state, then who skips the name.
    shown, reference = ignite_lookup({} if terminal else {"acc": 0.25}, ["acc", "f1"])
    assert shown == ({} if terminal else {"acc": 0.25})
    assert [(w.category, str(w.message)) for w in warned] == [
        (r.category, f"{r.message} (ProgressBar('Train') goes on without it, and warns about it only this once)")
        for r in reference
    ]
    assert "acc=0.25" in text(c)


@pytest.mark.parametrize("terminal", [True, False])
async def test_log_message_is_printed_once_whole_above_intact_bars(terminal: bool) -> None:
    c = console(terminal)
    engine = Engine(lambda e, b: 0.5)
    bar = ProgressBar(console=c, refresh_per_second=1e9)  # drawn at every iteration: the message lands mid-epoch
    bar.attach(engine, output_transform=lambda out: out)
    message = "saved [checkpoint] at iteration 3"  # brackets: printed as text, not read as markup
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda: bar.log_message(message))
    await engine.run(range(5), max_epochs=2)
    out = text(c)
    assert out.count(message) == 1
    pieces = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", p) for p in re.split(r"[\r\n]", out)]
    assert message in pieces  # a line of its own: nothing drawn before or after it on that line
    bars = [p for p in pieces if "Epoch" in p]
    assert bars
    pattern = r"Epoch \[[12]/2\] " + (r"[━ ]+ [0-5]/5 .*" if terminal else r"5/5 iterations .* output=0\.5")
    assert all(re.fullmatch(pattern, p.rstrip()) for p in bars), bars
    if terminal:
        assert "\x1b[2K" + message + "\n" in out  # the bar's line is cleared first, then the bar is drawn again
        assert re.search(re.escape(message) + r"\nEpoch \[1/2\] [━ ]+ 3/5", out)
    else:
        assert out.splitlines() == [message, *bars]


def test_log_message_without_a_run_is_a_plain_line() -> None:
    c = console(terminal=False)
    ProgressBar(console=c).log_message("hello")
    assert text(c) == "hello\n"
