"""Tracer: real runs on both backends, the JSON it writes, and how its spans nest and overlap."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from ignite_async import Engine, Events, background
from ignite_async.handlers.tracer import Tracer

pytestmark = pytest.mark.anyio

EPOCH_LENGTH = 6


def load(path: Path) -> tuple[list[dict[str, Any]], dict[int, str]]:
    document = json.loads(path.read_text())
    events = document["traceEvents"]
    for event in events:
        assert {"name", "ph", "pid", "tid"} <= set(event)
    spans = [e for e in events if e["ph"] == "X"]
    for span in spans:
        assert isinstance(span["ts"], float | int)
        assert span["dur"] >= 0
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    return spans, names


def within(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    return bool(outer["ts"] <= inner["ts"] and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"])


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["ts"] < b["ts"] + b["dur"] and b["ts"] < a["ts"] + a["dur"])


async def test_a_run_with_background_work(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    started, reached = anyio.Event(), anyio.Event()
    seen_threads: list[int] = []

    engine = Engine(lambda engine, batch: batch * 2)

    # Fired at iteration 2, it is running when iteration 3 starts and ends only once iteration 4 has started.
    @engine.on(Events.ITERATION_STARTED)
    async def signal(engine: Engine) -> None:
        if engine.state.iteration == 3:
            with anyio.fail_after(10):
                await started.wait()
        elif engine.state.iteration == 4:
            reached.set()

    @engine.on(Events.ITERATION_COMPLETED(once=2))
    @background
    async def evaluate(engine: Engine) -> None:
        started.set()
        with anyio.fail_after(10):
            await reached.wait()

    @engine.on(Events.EPOCH_COMPLETED)
    @background
    def write_report(engine: Engine) -> None:  # sync: runs in a worker thread
        seen_threads.append(threading.get_native_id())

    async def upload(epoch: int) -> None:
        await anyio.lowlevel.checkpoint()

    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.spawn(upload, e.state.epoch))
    Tracer(path).attach(engine)
    await engine.run(range(EPOCH_LENGTH), max_epochs=2)

    spans, names = load(path)
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_cat.setdefault(span["cat"], []).append(span)
    assert {"data", "process", "event", "handler", "background", "task", "thread", "run"} <= set(by_cat)

    # One process span and one fetch per iteration (plus the fetch that finds the end of the data).
    process = sorted(by_cat["process"], key=lambda s: s["ts"])
    assert [s["args"]["iteration"] for s in process] == list(range(1, 2 * EPOCH_LENGTH + 1))
    assert len([s for s in by_cat["data"] if "unfinished" not in s.get("args", {})]) >= 2 * EPOCH_LENGTH
    loop_tid = process[0]["tid"]
    assert "event loop" in names[loop_tid]

    # Handlers nest inside their firing, on the loop's row; the run span holds everything on that row.
    firings = by_cat["event"]
    assert {f["name"] for f in firings} == {"ITERATION_STARTED", "ITERATION_COMPLETED", "EPOCH_COMPLETED"}
    for handler in by_cat["handler"]:
        assert handler["tid"] == loop_tid
        assert any(within(handler, f) for f in firings if f["tid"] == loop_tid), handler
    assert {"signal", "evaluate", "write_report"} <= {h["name"] for h in by_cat["handler"]}
    (run,) = by_cat["run"]
    assert run["args"]["outcome"] == "completed"
    assert all(within(s, run) for s in spans if s["tid"] == loop_tid)

    # The background invocation runs on a task row, fired by ITERATION_COMPLETED, beside iterations 3 and 4.
    (evaluation,) = [s for s in by_cat["background"] if s["name"] == "evaluate"]
    assert evaluation["tid"] != loop_tid
    assert names[evaluation["tid"]].startswith("tasks #")
    assert evaluation["args"]["fired_by"] == "ITERATION_COMPLETED"
    assert evaluation["args"]["outcome"] == "completed"
    assert within(process[2], evaluation)
    fetch_4 = next(s for s in by_cat["data"] if s["args"]["iteration"] == 4)
    assert overlap(evaluation, fetch_4)

    # The spawned task, fired by EPOCH_COMPLETED, once per epoch.
    uploads = [s for s in by_cat["task"] if s["name"].endswith("upload")]
    assert len(uploads) == 2
    assert all(s["args"]["fired_by"] == "EPOCH_COMPLETED" for s in uploads)

    # The sync background handler: a task row, and its call on the worker thread's own row.
    threads = by_cat["thread"]
    assert sorted(s["tid"] for s in threads) == sorted(seen_threads)
    assert all(s["tid"] != loop_tid and s["tid"] in names for s in threads)
    reports = [s for s in by_cat["background"] if s["name"] == "write_report"]
    assert len(reports) == 2
    for call in threads:
        assert any(within(call, r) and r["tid"] == call["args"]["task_row"] for r in reports)

    # Spans on one row nest or are disjoint: what chrome://tracing and Perfetto need.
    rows: dict[int, list[dict[str, Any]]] = {}
    for span in spans:
        rows.setdefault(span["tid"], []).append(span)
    for row in rows.values():
        for a in row:
            for b in row:
                if a is not b and overlap(a, b):
                    assert within(a, b) or within(b, a), (a, b)


async def test_a_failed_run_still_writes_the_trace(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"

    def step(engine: Engine, batch: int) -> int:
        if engine.state.iteration == 3:
            raise RuntimeError("boom")
        return batch

    engine = Engine(step)
    Tracer(path).attach(engine)
    with pytest.raises(RuntimeError, match="boom"):
        await engine.run(range(5))
    spans, _ = load(path)
    (run,) = [s for s in spans if s["cat"] == "run"]
    assert run["args"]["outcome"].startswith("failed: RuntimeError('boom')")
    # The step that failed shows, cut short at the run's end.
    (failed,) = [s for s in spans if s["cat"] == "process" and s["args"].get("unfinished")]
    assert failed["args"]["iteration"] == 3
    assert len([s for s in spans if s["cat"] == "process"]) == 3


async def test_a_cancelled_run_still_writes_the_trace(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    engine = Engine(lambda engine, batch: batch)
    tracer = Tracer(path)
    tracer.attach(engine)
    with anyio.CancelScope() as scope:

        @engine.on(Events.ITERATION_COMPLETED(once=3))
        async def cancel(engine: Engine) -> None:
            scope.cancel()
            await anyio.lowlevel.checkpoint()

        await engine.run(range(10))
    assert scope.cancelled_caught
    spans, _ = load(path)
    (run,) = [s for s in spans if s["cat"] == "run"]
    assert run["args"]["outcome"] == "cancelled"
    assert any(s["name"] == "cancel" and s["args"].get("unfinished") for s in spans if s["cat"] == "handler")
    assert tracer.write_seconds > 0


async def test_an_evaluator_on_the_same_tracer_shows_on_its_task_row(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    tracer = Tracer(path)
    trainer = Engine(lambda engine, batch: batch)
    evaluator = Engine(lambda engine, batch: batch)
    tracer.attach(trainer)
    tracer.attach(evaluator, write_at_end=False)

    @trainer.on(Events.EPOCH_COMPLETED)
    @background
    async def evaluate(engine: Engine) -> None:
        await evaluator.run(range(3))

    await trainer.run(range(4), max_epochs=2)
    spans, _ = load(path)
    tasks = [s for s in spans if s["cat"] == "background"]
    assert len(tasks) == 2
    eval_steps = [s for s in spans if s["cat"] == "process" and s["tid"] != spans[0]["tid"]]
    train_tid = next(s["tid"] for s in spans if s["cat"] == "run")
    eval_steps = [s for s in spans if s["cat"] == "process" and s["tid"] != train_tid]
    assert len(eval_steps) == 6
    assert all(any(within(s, t) and s["tid"] == t["tid"] for t in tasks) for s in eval_steps)
    assert len([s for s in spans if s["cat"] == "run"]) == 1  # the evaluator's runs do not write


async def test_max_events_drops_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    engine = Engine(lambda engine, batch: batch)
    tracer = Tracer(path, max_events=5)
    tracer.attach(engine)
    await engine.run(range(10))
    document = json.loads(path.read_text())
    assert len([e for e in document["traceEvents"] if e["ph"] == "X"]) == 5
    assert tracer.dropped > 0
    assert document["otherData"]["dropped"] == tracer.dropped


async def test_only_the_attached_engine_is_traced(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    tracer = Tracer(path)
    tracer.attach(Engine(lambda engine, batch: batch))
    other = Engine(lambda engine, batch: batch)
    await other.run(range(3))
    assert other._tracer is None
    assert repr(tracer) == f"Tracer({str(path)!r}, 0 spans, 0 dropped)"
    assert not await anyio.Path(path).exists()


def test_an_unwritable_path_fails_at_attach(tmp_path: Path) -> None:
    engine = Engine(lambda engine, batch: batch)
    missing = tmp_path / "no" / "such" / "dir" / "trace.json"
    with pytest.raises(FileNotFoundError, match=r"Tracer cannot write its trace to .*no/such/dir/trace\.json"):
        Tracer(missing).attach(engine)
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        Tracer(tmp_path).attach(engine)
    assert engine._tracer is None
    # A writable path: attach leaves no empty file behind before the run writes it.
    Tracer(tmp_path / "ok.json").attach(engine)
    assert not (tmp_path / "ok.json").exists()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_events"):
        Tracer("x.json", max_events=0)
    engine = Engine(lambda engine, batch: batch)
    Tracer("/tmp/ignite_async_tracer_a.json").attach(engine)
    with pytest.raises(ValueError, match="already has a tracer"):
        Tracer("/tmp/ignite_async_tracer_b.json").attach(engine)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test dependency
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_cuda_available(), reason="checks the CPU-only machine's answer")
def test_cuda_spans_need_a_cuda_device() -> None:
    with pytest.raises(ValueError, match=r"cuda=True.*is_available\(\) is False"):
        Tracer("trace.json", cuda=True)
    assert "cuda" not in {s[1] for s in Tracer("trace.json")._events}


@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device")
async def test_gpu_time_of_each_step(tmp_path: Path) -> None:
    import torch

    weights = torch.randn(512, 512, device="cuda")

    def step(engine: Engine, batch: int) -> None:
        (weights @ weights).sum()  # queued on the GPU: the step's CPU span ends before the GPU's does

    path = tmp_path / "trace.json"
    engine = Engine(step)
    Tracer(path, cuda=True).attach(engine)
    await engine.run(range(5))
    spans, names = load(path)
    gpu = sorted((s for s in spans if s["cat"] == "cuda"), key=lambda s: s["ts"])
    cpu = sorted((s for s in spans if s["cat"] == "process"), key=lambda s: s["ts"])
    assert [s["args"]["iteration"] for s in gpu] == [1, 2, 3, 4, 5]
    assert names[gpu[0]["tid"]].startswith("CUDA (")
    # A GPU span starts no earlier than the CPU span that queued it (a little slack for the clocks' match).
    assert all(g["ts"] >= c["ts"] - 50 for g, c in zip(gpu, cpu, strict=True))


async def test_a_handled_failure_closes_its_spans_where_it_happened(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"

    def step(engine: Engine, batch: int) -> int:
        if engine.state.iteration == 2:
            raise RuntimeError("bad batch")
        return batch

    engine = Engine(step)
    handled: list[BaseException] = []
    engine.add_event_handler(Events.EXCEPTION_RAISED, lambda engine, exc: handled.append(exc))
    Tracer(path).attach(engine)
    await engine.run(range(3), max_epochs=2)  # the handler swallows: the epoch ends, the run goes on
    assert len(handled) == 1
    spans, _ = load(path)
    (failed,) = [s for s in spans if s["cat"] == "process" and s["args"].get("unfinished")]
    assert failed["args"]["outcome"] == "failed: RuntimeError('bad batch')"
    later = [s for s in spans if s["cat"] == "process" and s["ts"] > failed["ts"]]
    assert later  # the next epoch's steps, which the failed step's span must not stretch over
    assert all(failed["ts"] + failed["dur"] <= s["ts"] for s in later)
    (firing,) = [s for s in spans if s["name"] == "EXCEPTION_RAISED"]
    assert failed["ts"] + failed["dur"] <= firing["ts"]
