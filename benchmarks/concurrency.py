"""Concurrency benchmarks: ignite_async beside pytorch-ignite 0.5.5, in one process.

1. Overlap: a real torch training step (small MLP, a few ms per batch) for 300 iterations, with a handler
   every 10 iterations that waits 20 ms on I/O and one every 100 iterations that writes a few MB to disk.
   Ours: the wait is async and both run in ``background``; pytorch-ignite: the same work, blocking.
   Target: our wall time <= 1.10x the same training without handlers.
2. Prefetch: a sync loader spending t_load per batch and a step spending t_step, both in GIL-releasing
   torch ops. Target: with prefetch, time per iteration <= 1.15 x max(t_load, t_step).
3. Memory under a slow consumer: 100,000 iterations with a background handler on every iteration whose
   sink is ~100x slower than the firing rate, with when_busy="skip" and "latest". Target: peak RSS grows
   by < 50 MB, and delivered + skipped + coalesced add up to the firings.

    .venv/bin/python benchmarks/concurrency.py
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from torch import nn

from ignite_async import Engine, Events, background

torch.set_num_threads(1)  # one core for the step, the other for loaders and writers


# ---------------------------------------------------------------- 1. overlap


def make_training() -> tuple[Callable[[Any, Any], float], list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    data = [(torch.randn(256, 256), torch.randn(256, 1)) for _ in range(30)]

    def step(engine: Any, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, data


PAYLOAD = os.urandom(4 * 2**20)  # a few MB written every 100 iterations


def write_payload(directory: str, iteration: int) -> None:
    with open(os.path.join(directory, f"blob-{iteration}.bin"), "wb") as f:
        f.write(PAYLOAD)
        f.flush()
        os.fsync(f.fileno())


def overlap_ignite(directory: str, with_handlers: bool) -> float:
    step, data = make_training()
    engine = IgniteEngine(step)
    if with_handlers:
        engine.add_event_handler(IgniteEvents.ITERATION_COMPLETED(every=10), lambda: time.sleep(0.02))
        engine.add_event_handler(
            IgniteEvents.ITERATION_COMPLETED(every=100), lambda e: write_payload(directory, e.state.iteration)
        )
    started = time.perf_counter()
    engine.run(data, max_epochs=10)
    return time.perf_counter() - started


def overlap_ours(directory: str, with_handlers: bool) -> float:
    step, data = make_training()
    engine = Engine(step)
    if with_handlers:

        async def remote_io() -> None:
            await anyio.sleep(0.02)

        engine.add_event_handler(Events.ITERATION_COMPLETED(every=10), background(remote_io))
        engine.add_event_handler(
            Events.ITERATION_COMPLETED(every=100),
            background(lambda e: write_payload(directory, e.state.iteration)),
        )

    async def main() -> float:
        started = time.perf_counter()
        await engine.run(data, max_epochs=10)
        return time.perf_counter() - started

    return asyncio.run(main())


def bench_overlap(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        times: dict[str, list[float]] = {k: [] for k in ("ig0", "ig1", "our0", "our1")}
        for _ in range(repeats):
            times["ig0"].append(overlap_ignite(directory, False))
            times["ig1"].append(overlap_ignite(directory, True))
            times["our0"].append(overlap_ours(directory, False))
            times["our1"].append(overlap_ours(directory, True))
    best = {k: min(v) for k, v in times.items()}
    ours, theirs = best["our1"] / best["our0"], best["ig1"] / best["ig0"]
    print("\n1. Overlap: 300 iterations of a torch MLP step; I/O wait every 10, a 4 MB fsync'd write every 100")
    print("| | no handlers (s) | with handlers (s) | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    print(f"| pytorch-ignite (blocking) | {best['ig0']:.3f} | {best['ig1']:.3f} | {theirs:.2f}x | |")
    mark = "✓" if ours <= 1.10 else "✗"
    print(f"| ignite_async (background) | {best['our0']:.3f} | {best['our1']:.3f} | {ours:.2f}x | ≤ 1.10x {mark} |")


# ---------------------------------------------------------------- 2. prefetch


def busy(matrix: torch.Tensor, repeats: int) -> torch.Tensor:
    for _ in range(repeats):
        matrix = torch.tanh(matrix @ matrix)
    return matrix


def calibrate(target: float) -> int:
    """How many matmuls of a 256x256 matrix take about ``target`` seconds on this machine."""
    m = torch.randn(256, 256) * 0.01
    busy(m, 5)
    started = time.perf_counter()
    busy(m, 50)
    per = (time.perf_counter() - started) / 50
    return max(1, round(target / per))


def bench_prefetch(iterations: int, repeats: int) -> None:
    load_n, step_n = calibrate(0.004), calibrate(0.006)
    m = torch.randn(256, 256) * 0.01

    def loader() -> Iterator[torch.Tensor]:
        for _ in range(iterations):
            yield busy(m, load_n)

    def step(engine: Any, batch: torch.Tensor) -> None:
        busy(m, step_n)

    def bare_thread_and_queue() -> None:
        """The ideal on this machine: a plain thread feeding a queue, no engine."""
        q: queue.Queue[torch.Tensor] = queue.Queue(2)
        producer = threading.Thread(target=lambda: [q.put(b) for b in loader()])
        producer.start()
        for _ in range(iterations):
            step(None, q.get())
        producer.join()

    cases: dict[str, Callable[[], object]] = {
        "load": lambda: sum(1 for _ in loader()),
        "step": lambda: [step(None, None) for _ in range(iterations)],
        "ignite": lambda: IgniteEngine(step).run(loader(), epoch_length=iterations),
        "ours0": lambda: asyncio.run(Engine(step).run(loader(), epoch_length=iterations)),
        "ideal": bare_thread_and_queue,
        "ours2": lambda: asyncio.run(Engine(step).run(loader(), epoch_length=iterations, prefetch=2)),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):  # interleaved, so that load on the machine hits every case alike
        for name, fn in cases.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - started) / iterations * 1e3)
    bound = max(best["load"], best["step"])
    ratio = best["ours2"] / bound
    print(f"\n2. Prefetch: {iterations} iterations, loader and step in GIL-releasing torch ops (ms per iteration)")
    print(
        "| t_load | t_step | sum | pytorch-ignite | ours, prefetch=0 | bare thread + queue "
        "| ours, prefetch=2 | ÷ max | target |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {best['load']:.2f} | {best['step']:.2f} | {best['load'] + best['step']:.2f} | {best['ignite']:.2f} "
        f"| {best['ours0']:.2f} | {best['ideal']:.2f} | {best['ours2']:.2f} | {ratio:.2f}x "
        f"| ≤ 1.15x {'✓' if ratio <= 1.15 else '✗'} |"
    )


# ---------------------------------------------------------------- 3. memory under a slow consumer


def record_rss(samples: list[float]) -> None:
    samples.append(rss_mb())


def rss_mb() -> float:
    """Resident memory now (ru_maxrss would give the lifetime peak, set by the benchmarks before)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_memory(iterations: int) -> None:
    print(f"\n3. Slow consumer: {iterations:,} iterations, a background handler on each, its sink ~100x slower")
    print("| when_busy | firings | delivered | skipped | coalesced | sum | peak RSS growth | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for policy in ("skip", "latest"):
        gc.collect()
        rss_before = rss_mb()
        peak = [rss_before]
        payload = bytes(1024)  # each firing's snapshot references a 1 KB output

        async def sink(engine: Engine) -> None:
            await anyio.sleep(0.001)  # firings come every ~10 µs: the sink is ~100x slower

        engine = Engine(lambda e, b, payload=payload: payload)
        handler = background(sink, limit=1, when_busy=policy)  # type: ignore[arg-type]
        engine.add_event_handler(Events.ITERATION_COMPLETED, handler)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=1000), functools.partial(record_rss, peak))
        asyncio.run(engine.run(epoch_length=iterations))
        s = handler.stats
        total = s.completed + s.skipped + s.coalesced
        growth = max(peak) - rss_before
        ok = growth < 50 and total == s.fired == iterations
        print(
            f"| {policy} | {s.fired:,} | {s.completed:,} | {s.skipped:,} | {s.coalesced:,} | {total:,} "
            f"| {growth:.1f} MB | < 50 MB, sum = firings {'✓' if ok else '✗'} |"
        )


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_overlap(args.repeats)
    bench_prefetch(150, max(args.repeats, 5))
    bench_memory(100_000)


if __name__ == "__main__":
    main()
