"""Per-iteration engine overhead of ignite_async vs pytorch-ignite 0.5.5, measured in one process.

Cases (trivial process function, so only the engine is measured):
  a) no handlers
  b) three handlers on ITERATION_COMPLETED, one on ITERATION_COMPLETED(every=100), one on EPOCH_COMPLETED
  c) the same handlers written ``async def`` (pytorch-ignite has no async handlers: its (b) is the baseline)

Targets: ours <= 0.25x pytorch-ignite for (a) and (b), <= 0.5x for (c).

Also printed: the cost of the per-iteration yield to the event loop that the engine makes while background
work is pending (case (a) with one idle spawned task, minus case (a)). With nothing pending it yields only
every few ms, so (a) to (c) do not pay it.
Also printed: the cost per recorded span of a Tracer attached to case (b) (its time minus case (b)'s, over the
spans it records; writing the file at the run's end is not counted, and is printed apart). Target: <= 2 µs.
Each figure is the best of several repeats, the two libraries interleaved, so that machine load hits both.

    make bench            # or: .venv/bin/python benchmarks/engine_overhead.py [--iters N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import trio
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

from ignite_async import Engine, Events
from ignite_async.handlers.tracer import Tracer

EPOCH_LENGTH = 1000


def step(engine: Any, batch: Any) -> Any:
    return batch


def attach_sync(engine: Any, events: Any) -> None:
    counter = [0]

    def h1(engine: Any) -> None:
        counter[0] += 1

    def h2(engine: Any) -> None:
        counter[0] += 1

    def h3() -> None:
        counter[0] += 1

    def every(engine: Any) -> None:
        counter[0] += 1

    def epoch(engine: Any) -> None:
        counter[0] += 1

    for h in (h1, h2, h3):
        engine.add_event_handler(events.ITERATION_COMPLETED, h)
    engine.add_event_handler(events.ITERATION_COMPLETED(every=100), every)
    engine.add_event_handler(events.EPOCH_COMPLETED, epoch)


def attach_async(engine: Engine) -> None:
    counter = [0]

    async def h1(engine: Any) -> None:
        counter[0] += 1

    async def h2(engine: Any) -> None:
        counter[0] += 1

    async def h3() -> None:
        counter[0] += 1

    async def every(engine: Any) -> None:
        counter[0] += 1

    async def epoch(engine: Any) -> None:
        counter[0] += 1

    for h in (h1, h2, h3):
        engine.add_event_handler(Events.ITERATION_COMPLETED, h)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=100), every)
    engine.add_event_handler(Events.EPOCH_COMPLETED, epoch)


def time_ignite(case: str, iters: int) -> float:
    engine = IgniteEngine(step)
    if case != "a":
        attach_sync(engine, IgniteEvents)
    data = list(range(EPOCH_LENGTH))
    gc.collect()
    t0 = time.perf_counter()
    engine.run(data, max_epochs=iters // EPOCH_LENGTH)
    return (time.perf_counter() - t0) / iters


def time_ours(case: str, iters: int, backend: str) -> float:
    engine = Engine(step)
    if case == "b":
        attach_sync(engine, Events)
    elif case == "c":
        attach_async(engine)
    elif case == "pending":

        async def idle_until_completed() -> None:
            await done.wait()

        def start(engine: Engine) -> None:
            nonlocal done
            done = anyio.Event()
            engine.spawn(idle_until_completed)

        done: anyio.Event
        engine.add_event_handler(Events.STARTED, start)
        engine.add_event_handler(Events.EPOCH_COMPLETED(once=iters // EPOCH_LENGTH), lambda: done.set())
    data = list(range(EPOCH_LENGTH))

    async def main() -> float:
        t0 = time.perf_counter()
        await engine.run(data, max_epochs=iters // EPOCH_LENGTH)
        return time.perf_counter() - t0

    gc.collect()
    elapsed = asyncio.run(main()) if backend == "asyncio" else trio.run(main)
    return elapsed / iters


def time_traced(iters: int, backend: str, directory: Path) -> tuple[float, float, float]:
    """Case (b) with a Tracer attached: (seconds per iteration, spans per iteration, seconds to write the file)."""
    engine = Engine(step)
    attach_sync(engine, Events)
    tracer = Tracer(directory / "trace.json", max_events=20 * iters)
    tracer.attach(engine)
    data = list(range(EPOCH_LENGTH))

    async def main() -> float:
        t0 = time.perf_counter()
        await engine.run(data, max_epochs=iters // EPOCH_LENGTH)
        return time.perf_counter() - t0

    gc.collect()
    elapsed = asyncio.run(main()) if backend == "asyncio" else trio.run(main)
    spans = sum(1 for e in tracer.trace_events() if e["ph"] == "X")
    assert tracer.dropped == 0
    return (elapsed - tracer.write_seconds) / iters, spans / iters, tracer.write_seconds


def tracer_case(iters: int, repeats: int) -> bool:
    """Print the per-span cost of a Tracer; True if within its target."""
    iters = min(iters, 50_000)  # about 6 spans per iteration, all kept in memory
    ok = True
    with tempfile.TemporaryDirectory() as directory:
        for backend in ("asyncio", "trio"):
            plain, traced = [], []
            for _ in range(repeats):
                plain.append(time_ours("b", iters, backend))
                traced.append(time_traced(iters, backend, Path(directory)))
            best = min(traced)
            per_span = (best[0] - min(plain)) / best[1] * 1e6
            ok &= per_span <= 2.0
            print(
                f"Tracer attached to (b), {backend}: {best[0] * 1e6:.2f} µs per iteration against "
                f"{min(plain) * 1e6:.2f}, "
                f"{best[1]:.1f} spans per iteration: {per_span:.2f} µs per span (target ≤ 2 µs "
                f"{'✓' if per_span <= 2.0 else '✗'}); writing {best[1] * iters:.0f} spans took {best[2]:.2f} s"
            )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    targets = {"a": 0.25, "b": 0.25, "c": 0.5}
    labels = {"a": "(a) no handlers", "b": "(b) 5 sync handlers", "c": "(c) 5 async handlers"}
    print(f"{args.iters} iterations, best of {args.repeats}; µs per iteration")
    print("| case | pytorch-ignite | ignite_async (asyncio) | ratio | target | ignite_async (trio) | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    failed = False
    for case in "abc":
        ignite_times, ours_asyncio, ours_trio = [], [], []
        for _ in range(args.repeats):
            ignite_times.append(time_ignite("b" if case == "c" else case, args.iters))
            ours_asyncio.append(time_ours(case, args.iters, "asyncio"))
            ours_trio.append(time_ours(case, args.iters, "trio"))
        ig, oa, ot = min(ignite_times) * 1e6, min(ours_asyncio) * 1e6, min(ours_trio) * 1e6
        ok = oa / ig <= targets[case]
        failed |= not ok
        print(
            f"| {labels[case]} | {ig:.2f} | {oa:.2f} | {oa / ig:.2f}x | ≤ {targets[case]}x {'✓' if ok else '✗'} "
            f"| {ot:.2f} | {ot / ig:.2f}x |"
        )
    plain = min(time_ours("a", args.iters, "asyncio") for _ in range(args.repeats))
    pending = min(time_ours("pending", args.iters, "asyncio") for _ in range(args.repeats))
    plain_trio = min(time_ours("a", args.iters, "trio") for _ in range(args.repeats))
    pending_trio = min(time_ours("pending", args.iters, "trio") for _ in range(args.repeats))
    print(
        f"\nYield per iteration while background work is pending: {(pending - plain) * 1e6:.2f} µs on asyncio, "
        f"{(pending_trio - plain_trio) * 1e6:.2f} µs on trio (not paid when nothing is pending)"
    )
    failed |= not tracer_case(args.iters, args.repeats)
    if failed:
        raise SystemExit("a target was missed")


if __name__ == "__main__":
    main()
