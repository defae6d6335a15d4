"""Per-iteration engine overhead of ignite_async vs pytorch-ignite 0.5.5, measured in one process.

Cases (trivial process function, so only the engine is measured):
  a) no handlers
  b) three handlers on ITERATION_COMPLETED, one on ITERATION_COMPLETED(every=100), one on EPOCH_COMPLETED
  c) the same handlers written ``async def`` (pytorch-ignite has no async handlers: its (b) is the baseline)

Targets: ours <= 0.25x pytorch-ignite for (a) and (b), <= 0.5x for (c).

Also printed: the cost of the per-iteration yield to the event loop that the engine makes while background
work is pending (case (a) with one idle spawned task, minus case (a)). With nothing pending it yields only
every few ms, so (a) to (c) do not pay it.
Each figure is the best of several repeats, the two libraries interleaved, so that machine load hits both.

    make bench            # or: .venv/bin/python benchmarks/engine_overhead.py [--iters N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import anyio
import trio
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents

from ignite_async import Engine, Events

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
    if failed:
        raise SystemExit("a target was missed")


if __name__ == "__main__":
    main()
