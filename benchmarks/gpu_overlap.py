"""GPU overlap: do a checkpoint and a background evaluation every N steps stall the training step?

A model of >= 200 MB on CUDA (about 270 MB of weights plus as much of SGD momentum; on CPU a ~34 MB model,
and the run says it is not the GPU measurement) trains with a checkpoint of model and optimizer
(``Checkpoint`` + ``DiskSaver`` into a temporary directory) every ``--every`` steps and a background
evaluation of a weight snapshot half-way between two checkpoints. Measured:

- the step time with and without them (target <= 1.05x);
- the time the training loop is blocked at each checkpoint's firing, beside pytorch-ignite 0.5.5's
  ``ModelCheckpoint`` (target <= 0.05x). It is the gap between the end of the step where the checkpoint fires
  (the first ``ITERATION_COMPLETED`` handler) and the start of the next step (``ITERATION_STARTED``), less the
  median gap of the steps where nothing fires;
- the GPU idle time, from a trace of the run (``ignite_async.handlers.tracer.Tracer``, when it exists): the time
  between the process function's spans that they do not cover.

    .venv/bin/python benchmarks/gpu_overlap.py            # the measurement (CPU fallback without CUDA)
    .venv/bin/python benchmarks/gpu_overlap.py --smoke    # a tiny model and a few steps, for CI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import ModelCheckpoint as IgniteModelCheckpoint
from torch import nn

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, DiskSaver

try:  # the timeline tracer is optional here: the rest of the benchmark runs without it
    from ignite_async.handlers.tracer import Tracer
except ImportError:
    Tracer = None

CPU_ABSENT_LINE = "CUDA is absent: CPU run, not the GPU measurement"
WARMUP = 2  # first steps left out of the step time: allocator, cuBLAS and page-fault warm-up


@dataclass(frozen=True)
class Config:
    width: int  # every layer is width x width
    layers: int
    batch: int
    steps: int
    every: int  # a checkpoint at multiples of `every`, an evaluation half-way between
    eval_batches: int
    repeats: int
    device: torch.device

    @property
    def parameters(self) -> int:
        return self.layers * (self.width * self.width + self.width)

    @property
    def model_mb(self) -> float:
        return self.parameters * 4 / 1e6


def config(args: argparse.Namespace) -> Config:
    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cuda" if cuda else "cpu")
    if args.smoke:
        return Config(64, 2, 8, args.steps or 14, args.every or 4, eval_batches=2, repeats=1, device=device)
    if cuda:
        # 4 x 4096^2 fp32 = 268 MB of weights; a batch of 2048 makes a step of some milliseconds on a big GPU.
        return Config(4096, 4, 2048, args.steps or 330, args.every or 80, eval_batches=4, repeats=3, device=device)
    # 2 x 2048^2 fp32 = 34 MB; one core trains (a step of tens of ms), the other is left for the background.
    return Config(2048, 2, 64, args.steps or 84, args.every or 20, eval_batches=4, repeats=2, device=device)


def build_model(cfg: Config) -> nn.Module:
    modules: list[nn.Module] = []
    for i in range(cfg.layers):
        modules.append(nn.Linear(cfg.width, cfg.width))
        if i < cfg.layers - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).to(cfg.device)


def setup(cfg: Config) -> tuple[nn.Module, torch.optim.Optimizer, Callable[[Any, torch.Tensor], float], list[Any]]:
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    generator = torch.Generator(device=cfg.device).manual_seed(1)
    batches = [torch.randn(cfg.batch, cfg.width, device=cfg.device, generator=generator) for _ in range(4)]
    data = [batches[i % len(batches)] for i in range(cfg.steps)]

    def step(engine: Any, x: torch.Tensor) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = model(x).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.item()  # as a real trainer does for its logs: the host waits for the GPU here

    return model, optimizer, step, data


@dataclass
class Timeline:
    """When each step started and completed (``time.perf_counter``), by iteration."""

    started: dict[int, float] = field(default_factory=dict)
    completed: dict[int, float] = field(default_factory=dict)

    def gap(self, iteration: int) -> float | None:
        """Time from the end of ``iteration`` to the start of the next: what the loop spent on handlers."""
        if iteration + 1 not in self.started or iteration not in self.completed:
            return None
        return self.started[iteration + 1] - self.completed[iteration]

    def step_time(self) -> float:
        last = max(self.completed)
        return (self.completed[last] - self.completed[WARMUP]) / (last - WARMUP)

    def blocked(self, firings: Iterable[int], quiet: Iterable[int]) -> list[float]:
        """Each firing's gap less the median gap where nothing fired (a firing without a next step is left out)."""
        quiet_gaps = [g for i in quiet if (g := self.gap(i)) is not None]
        base = statistics.median(quiet_gaps) if quiet_gaps else 0.0
        return [g - base for i in firings if (g := self.gap(i)) is not None]


def checkpoint_iterations(cfg: Config) -> list[int]:
    return [i for i in range(1, cfg.steps + 1) if i % cfg.every == 0]


def eval_iterations(cfg: Config) -> list[int]:
    return [i for i in range(1, cfg.steps + 1) if i % cfg.every == cfg.every // 2]


def quiet_iterations(cfg: Config) -> list[int]:
    busy = set(checkpoint_iterations(cfg)) | set(eval_iterations(cfg))
    return [i for i in range(WARMUP + 1, cfg.steps + 1) if i not in busy]


class BackgroundEvaluator:
    """Scores a snapshot of the trainer's weights in a worker thread while training goes on.

    The snapshot is taken at the firing, into an evaluation model of its own (its memory is reused every
    time). On CUDA it is a device-to-device copy on a side stream that waits for the training stream, and the
    training stream waits for the copy before its next step can change the weights: the host never waits.
    On CPU it is a plain copy, as ``examples/concurrent_eval.py`` does. An evaluation still running at the
    next firing makes that firing skip (counted in ``skipped``).
    """

    def __init__(self, cfg: Config, model: nn.Module) -> None:
        self.cfg = cfg
        self.model = model
        self.eval_model = build_model(cfg).eval()
        self.batches = [torch.randn(cfg.batch, cfg.width, device=cfg.device) for _ in range(cfg.eval_batches)]
        cuda = cfg.device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(cfg.device) if cuda else None
        self.eval_stream = torch.cuda.Stream(cfg.device) if cuda else None
        self.copied: Any = None  # the CUDA event recorded after the snapshot's copy
        self.busy = False
        self.done = 0
        self.skipped = 0
        self.scores: list[float] = []

    def __call__(self, engine: Engine) -> None:
        if self.busy:
            self.skipped += 1
            return
        self.busy = True
        self.snapshot()
        engine.spawn(self.evaluate)

    @torch.no_grad()
    def snapshot(self) -> None:
        pairs = list(zip(self.eval_model.parameters(), self.model.parameters(), strict=True))
        if self.copy_stream is None:
            for mine, theirs in pairs:
                mine.copy_(theirs)
            return
        training = torch.cuda.current_stream(self.cfg.device)
        self.copy_stream.wait_stream(training)  # the copy sees the weights as they are at the firing
        with torch.cuda.stream(self.copy_stream):
            for mine, theirs in pairs:
                mine.copy_(theirs, non_blocking=True)
            self.copied = torch.cuda.Event()
            self.copied.record(self.copy_stream)
        training.wait_stream(self.copy_stream)  # the next optimizer step may not overwrite them before

    async def evaluate(self) -> None:
        try:
            self.scores.append(await anyio.to_thread.run_sync(self.score))
            self.done += 1
        finally:
            self.busy = False

    @torch.no_grad()
    def score(self) -> float:
        if self.eval_stream is None:
            return sum(float(self.eval_model(x).pow(2).mean()) for x in self.batches) / len(self.batches)
        with torch.cuda.stream(self.eval_stream):
            self.eval_stream.wait_event(self.copied)
            total = sum(self.eval_model(x).pow(2).mean() for x in self.batches)
            return float(total) / len(self.batches)  # float(): this thread waits for the evaluation stream


def timed(engine: Any, events: Any) -> Timeline:
    """Record each step's start and end; registered first, so that the end is before every other handler."""
    timeline = Timeline()
    engine.add_event_handler(events.ITERATION_STARTED, lambda e: timeline.started.__setitem__(e.state.iteration, now()))
    engine.add_event_handler(
        events.ITERATION_COMPLETED, lambda e: timeline.completed.__setitem__(e.state.iteration, now())
    )
    return timeline


def now() -> float:
    return time.perf_counter()


@dataclass
class Run:
    timeline: Timeline
    wall: float  # the whole run, including the wait for the last write and evaluation
    evaluator: BackgroundEvaluator | None = None


def run_ours(cfg: Config, directory: Path | None, trace: Path | None = None) -> Run:
    """Our engine; with ``directory``, a checkpoint and an evaluation every ``cfg.every`` steps."""
    model, optimizer, step, data = setup(cfg)
    engine = Engine(step)
    timeline = timed(engine, Events)
    evaluator = None
    checkpoint = None
    if directory is not None:
        saver = DiskSaver(directory, require_empty=False)
        checkpoint = Checkpoint({"model": model, "optimizer": optimizer}, saver, filename_prefix="ours", n_saved=1)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=cfg.every), checkpoint)
        evaluator = BackgroundEvaluator(cfg, model)
        half = cfg.every // 2
        engine.add_event_handler(Events.ITERATION_COMPLETED(event_filter=lambda _, i: i % cfg.every == half), evaluator)
    if trace is not None:
        if Tracer is None:
            raise RuntimeError("a trace needs ignite_async.handlers.tracer.Tracer, which this checkout lacks")
        Tracer(trace).attach(engine)

    async def main() -> float:
        started = now()
        await engine.run(data, max_epochs=1)
        synchronize(cfg)
        return now() - started

    try:
        wall = asyncio.run(main())
    finally:
        if checkpoint is not None:
            checkpoint.close()
    return Run(timeline, wall, evaluator)


def run_ignite(cfg: Config, directory: Path | None) -> Run:
    """pytorch-ignite 0.5.5; with ``directory``, its blocking ModelCheckpoint every ``cfg.every`` steps."""
    model, optimizer, step, data = setup(cfg)
    engine = IgniteEngine(step)
    timeline = timed(engine, IgniteEvents)
    if directory is not None:
        handler = IgniteModelCheckpoint(str(directory), "ignite", n_saved=1, require_empty=False)
        to_save = {"model": model, "optimizer": optimizer}
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=cfg.every), handler, to_save)
    started = now()
    engine.run(data, max_epochs=1)
    synchronize(cfg)
    return Run(timeline, now() - started)


def synchronize(cfg: Config) -> None:
    if cfg.device.type == "cuda":
        torch.cuda.synchronize(cfg.device)


def spans_of(trace: Path, category: str) -> list[tuple[float, float]]:
    """The ``"X"`` spans (start, end) of one category, in seconds, from the Tracer's Chrome trace JSON file."""
    loaded = json.loads(trace.read_text())
    events = loaded["traceEvents"] if isinstance(loaded, dict) else loaded
    return sorted(
        (float(e["ts"]) / 1e6, (float(e["ts"]) + float(e.get("dur", 0.0))) / 1e6)
        for e in events
        if e.get("ph") == "X" and e.get("cat") == category
    )


def idle_between(spans: list[tuple[float, float]]) -> float:
    """The time from the first span's start to the last one's end that no span covers."""
    idle, covered_to = 0.0, spans[0][1]
    for start, end in spans[1:]:
        if start > covered_to:
            idle += start - covered_to
        covered_to = max(covered_to, end)
    return idle


def idle_in_trace(cfg: Config, directory: Path | None, trace: Path) -> str:
    """Idle time between the process function's spans in a traced run of ours (``directory``: with handlers).

    On CUDA the spans are the GPU time of each process function call (the tracer's ``cuda`` row); without
    them, the process function's host spans.
    """
    run_ours(cfg, directory, trace=trace)
    spans, row = spans_of(trace, "cuda"), "GPU spans"
    if not spans:
        spans, row = spans_of(trace, "process"), "host spans"
    if len(spans) < 2:
        return f"{len(spans)} process-function spans in the trace: nothing to measure"
    idle = idle_between(spans)
    total = spans[-1][1] - spans[0][0]
    per_step = idle / (len(spans) - 1) * 1e3
    return f"{idle * 1e3:.1f} ms of {total:.2f} s ({idle / total:.1%}; {per_step:.2f} ms per step; {row})"


def verdict(value: float, target: float) -> str:
    return f"≤ {target:.2f}x {'✓' if value <= target else '✗'}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny model and a few steps (CI)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where CUDA is available")
    parser.add_argument("--steps", type=int, default=0, help="training steps per run (default: by device)")
    parser.add_argument("--every", type=int, default=0, help="steps between two checkpoints (default: by device)")
    args = parser.parse_args(argv)
    cfg = config(args)
    if cfg.steps < 2 * cfg.every or cfg.every < 2:
        parser.error("--steps must be at least twice --every, and --every at least 2")
    on_gpu = cfg.device.type == "cuda"
    if on_gpu:
        device_name = torch.cuda.get_device_name(cfg.device)
        print(f"GPU measurement on {device_name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    else:
        torch.set_num_threads(1)  # the step on one core; the other is free for the writer and the evaluator
        device_name = "CPU (not the GPU measurement)"
        print(CPU_ABSENT_LINE if not torch.cuda.is_available() else "CPU run (--cpu), not the GPU measurement")
    print(
        f"model {cfg.model_mb:.1f} MB ({cfg.layers} x Linear({cfg.width}, {cfg.width})), checkpoint of model + SGD "
        f"momentum {2 * cfg.model_mb:.1f} MB; {cfg.steps} steps of batch {cfg.batch}, a checkpoint every "
        f"{cfg.every} steps and an evaluation ({cfg.eval_batches} batches) half-way between; best of {cfg.repeats}"
    )
    ours_base, ours_full, ig_base, ig_ckpt = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="gpu_overlap_") as tmp:
        root = Path(tmp)
        for repeat in range(cfg.repeats):  # interleaved: the machine's drift hits every variant alike
            ours_base.append(run_ours(cfg, None))
            ours_full.append(run_ours(cfg, root / f"ours{repeat}"))
            ig_base.append(run_ignite(cfg, None))
            ig_ckpt.append(run_ignite(cfg, root / f"ignite{repeat}"))
        if Tracer is None:
            idle_base = idle_full = "tracer not available"
        else:
            idle_base = idle_in_trace(cfg, None, root / "base.json")
            idle_full = idle_in_trace(cfg, root / "traced", root / "full.json")

    def best(runs: list[Run]) -> float:
        return min(run.timeline.step_time() for run in runs)

    quiet = quiet_iterations(cfg)
    ours_blocked = [b for r in ours_full for b in r.timeline.blocked(checkpoint_iterations(cfg), quiet)]
    eval_blocked = [b for r in ours_full for b in r.timeline.blocked(eval_iterations(cfg), quiet)]
    ig_blocked = [b for r in ig_ckpt for b in r.timeline.blocked(checkpoint_iterations(cfg), quiet)]
    our_b, ig_b = statistics.median(ours_blocked), statistics.median(ig_blocked)
    step_ratio = best(ours_full) / best(ours_base)
    blocked_ratio = max(our_b, 0.0) / ig_b if ig_b > 0 else float("inf")
    evaluations = sum(r.evaluator.done for r in ours_full if r.evaluator is not None)
    skipped = sum(r.evaluator.skipped for r in ours_full if r.evaluator is not None)

    ms = 1e3
    print()
    print("| measure | ignite_async | pytorch-ignite 0.5.5 | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| device | {device_name} | {device_name} | | |")
    print(f"| step time, nothing attached (ms) | {best(ours_base) * ms:.2f} | {best(ig_base) * ms:.2f} | | |")
    print(
        f"| step time, checkpoint + background evaluation (ms; pytorch-ignite: checkpoint only) "
        f"| {best(ours_full) * ms:.2f} | {best(ig_ckpt) * ms:.2f} | {step_ratio:.3f}x | {verdict(step_ratio, 1.05)} |"
    )
    print(
        f"| blocked per checkpoint (ms, median of {len(ours_blocked)} / {len(ig_blocked)}) "
        f"| {our_b * ms:.2f} | {ig_b * ms:.2f} | {blocked_ratio:.3f}x | {verdict(blocked_ratio, 0.05)} |"
    )
    print(f"| blocked per evaluation snapshot (ms, median) | {statistics.median(eval_blocked) * ms:.2f} | | | |")
    idle_label = "GPU idle between steps" if on_gpu else "idle between process-function spans (CPU run)"
    print(f"| {idle_label}, from the trace: nothing attached | {idle_base} | | | |")
    print(f"| {idle_label}, from the trace: checkpoint + background evaluation | {idle_full} | | | |")
    print()
    print(
        f"{evaluations} background evaluations done, {skipped} skipped (the previous one still running); "
        f"run wall, best: ours {min(r.wall for r in ours_full):.2f} s with, {min(r.wall for r in ours_base):.2f} s "
        f"without; pytorch-ignite {min(r.wall for r in ig_ckpt):.2f} s with, {min(r.wall for r in ig_base):.2f} s "
        "without"
    )
    if args.smoke:
        print("--smoke: a tiny model whose saves take longer than its steps; it checks the script, it measures nothing")
    if not on_gpu:
        print(f"{CPU_ABSENT_LINE if not torch.cuda.is_available() else 'CPU run'}: these are not GPU numbers.")


if __name__ == "__main__":
    main()
