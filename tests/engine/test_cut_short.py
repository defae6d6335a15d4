"""Runs cut short by an exception, a cancellation or Ctrl-C: what the next run does, what reaches the caller,
and how long the end of the run may take."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import torch

from ignite_async import Engine, Events, InterruptHandlerError, background

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


class Boom(Exception):
    pass


async def step(engine: Engine, batch: Any) -> None:
    await anyio.lowlevel.checkpoint()  # where a cancellation lands


@pytest.mark.parametrize("data_kind", ["list", "generator"])
async def test_run_after_an_exception_does_every_iteration_and_every_epoch(data_kind: str) -> None:
    epochs: list[int] = []
    engine = Engine(lambda e, b: b)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
    failed = False

    @engine.on(Events.ITERATION_STARTED(once=50))
    def fail_once() -> None:
        nonlocal failed
        if not failed:
            failed = True
            raise Boom("iteration 50")

    data: Any = list(range(200)) if data_kind == "list" else iter(range(600))
    with pytest.raises(Boom):
        await engine.run(data, epoch_length=200, max_epochs=3)
    assert (engine.state.epoch, engine.state.iteration) == (0, 49)  # the last completed iteration
    state = await engine.run(data)
    assert state.iteration == 600
    assert epochs == [1, 2, 3]
    if data_kind == "generator":
        assert state.output == 599  # no batch was skipped: the one of iteration 50 was read again


async def test_a_failed_final_checkpoint_on_cancel_reaches_the_caller() -> None:
    engine = Engine(step)

    @engine.on(Events.INTERRUPT)
    def save(engine: Engine) -> None:
        raise OSError(28, "No space left on device")

    scope = anyio.CancelScope()
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=5), lambda: scope.cancel())
    with anyio.fail_after(10), scope, pytest.raises(InterruptHandlerError, match="cancelled at iteration") as info:
        await engine.run(range(100))
    assert isinstance(info.value.error, OSError)
    assert info.value.__cause__ is info.value.error
    assert isinstance(info.value.__context__, anyio.get_cancelled_exc_class())
    assert engine.state.iteration == 5  # still resumable from the rewound state
    engine.remove_event_handler(save, Events.INTERRUPT)
    assert (await engine.run(range(100))).iteration == 100


async def test_interrupt_handlers_that_outlast_the_grace_period_are_reported() -> None:
    engine = Engine(lambda e, b: None)
    engine.cancel_grace_period = 0.1
    engine.add_event_handler(Events.INTERRUPT, lambda: anyio.sleep(30))
    started = time.monotonic()
    with anyio.fail_after(10), pytest.raises(InterruptHandlerError) as info, anyio.move_on_after(0.05):
        await engine.run(range(10**9))
    assert isinstance(info.value.error, TimeoutError)
    assert "cancel_grace_period=0.1" in str(info.value)
    assert time.monotonic() - started < 5


async def test_a_clean_cancellation_is_still_a_plain_cancellation() -> None:
    saved: list[int] = []
    engine = Engine(step)
    engine.add_event_handler(Events.INTERRUPT, lambda e: saved.append(e.state.iteration))
    with anyio.fail_after(10), anyio.CancelScope() as scope:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda: scope.cancel())
        await engine.run(range(10))
    assert scope.cancelled_caught
    assert saved == [3]


@pytest.mark.parametrize("kind", ["cancel", "fail"])
async def test_a_blocked_sync_background_handler_is_abandoned_after_the_grace_period(kind: str) -> None:
    release = threading.Event()  # set at the end: the abandoned thread then returns
    engine = Engine(step)
    engine.cancel_grace_period = 0.2
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), background(lambda: release.wait(20)))

    @engine.on(Events.ITERATION_COMPLETED(once=50))
    def stop() -> None:
        if kind == "cancel":
            scope.cancel()
        else:
            raise Boom("fails while the handler blocks")

    started = time.monotonic()
    try:
        with anyio.fail_after(15), anyio.CancelScope() as scope, contextlib.suppress(Boom):
            await engine.run(range(100))
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 5  # the grace period, not the 20 s the handler blocks for
    assert engine.state.iteration == 50 if kind == "cancel" else 49


def run_worker(backend: str, directory: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Start the Ctrl-C worker, wait for it to train, send SIGINT; its exit and the seconds it took."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = Path(__file__).with_name("_ctrl_c_worker.py")
    with subprocess.Popen(
        [sys.executable, str(worker), backend, str(directory), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        return time.monotonic() - sent, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("blocked", [False, True], ids=["plain", "blocked-handler"])
def test_ctrl_c_writes_the_final_checkpoint_on_both_backends(backend: str, blocked: bool, tmp_path: Path) -> None:
    elapsed, result = run_worker(backend, tmp_path, *(["--blocked-handler"] if blocked else []))
    assert result.returncode != 0
    assert "KeyboardInterrupt" in result.stderr
    (checkpoint,) = tmp_path.glob("final_checkpoint_*.pt")
    content = torch.load(checkpoint, weights_only=True)
    assert content["trainer"]["iteration"] == int(checkpoint.stem.rsplit("_", 1)[1]) >= 20
    # The worker's grace period is 2 s: a thread blocked for 60 s is abandoned, and exits with the process.
    assert elapsed < 20
