"""Every ```python block of README.md runs, in README order, as one script would.

The blocks share one namespace (``__name__ == "__main__"``), as a reader who pastes them one after the
other into a file would. Each block is a test item named after its index, README line and heading; a
failure's traceback names README lines. A block with a top-level ``await`` runs as a coroutine on the
test's event loop (asyncio, then trio: one loop per backend for the whole README); a block without one
runs in a worker thread, so that its own ``asyncio.run``/``anyio.run`` works. Files land in a temporary
directory, the current one while the README runs.

The names a reader is told to bring are given to the namespace, as the README says next to the block:
``loader`` (a DataLoader of 10 ``(x, y)`` batches like ``data``), ``client`` (an ``httpx.AsyncClient`` for
a real server on 127.0.0.1), ``websocket`` (an object that records what it is sent) and ``tracking_uri`` (a
real ``mlflow server`` on 127.0.0.1). Some blocks get
more than a namespace, also as the README says next to them:

- the SIGTERM block runs first in a "process" that receives SIGTERM (sent to this process once the run is
  under way); then the README so far runs again in a fresh namespace, as the restarted script would, and
  the rest of the README goes on in that one: the recipe resumes, and at most ``n_saved`` checkpoints stay;
- the distributed block runs with torchrun's environment for one rank, so its ``Parallel("gloo")`` sets up
  a real gloo process group of world size 1 in this process.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from ignite_async import Events
from ignite_async.distributed.launcher import free_port
from tests._readme import Block, python_blocks
from tests.conftest import checkpoint_files
from tests.loggers._http_server import Collector, serve

BLOCKS = python_blocks()
RUNNABLE = [block for block in BLOCKS if block.illustrative is None]
BLOCK_TIMEOUT = 30  # seconds for one block; the whole README takes a few
MAX_ILLUSTRATIVE = 2  # blocks that only illustrate are the exception

# What identifies the blocks that get more than a namespace (each must match exactly one block).
SIGTERM_BLOCK = "anyio.open_signal_receiver(signal.SIGTERM)"
RECIPE_BLOCK = "Checkpoint.load_objects(to_save"
DISTRIBUTED_BLOCK = "idist.Parallel(backend)"
STREAM_BLOCK = "trainer.subscribe("
LOGGER_BLOCK = "JSONLinesLogger("

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


def _the_block(marker: str) -> Block:
    found = [block for block in RUNNABLE if marker in block.code]
    assert len(found) == 1, f"{marker!r} should be in exactly one runnable README block, is in {len(found)}"
    return found[0]


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Module-scoped: one event loop per backend runs the whole README, block after block."""
    return str(request.param)


@dataclass
class RecordingWebSocket:
    """What a reader's ``websocket`` is here: it records the JSON it is sent."""

    sent: list[Any] = field(default_factory=list)

    async def send_json(self, data: Any) -> None:
        await anyio.lowlevel.checkpoint()
        self.sent.append(json.loads(json.dumps(data)))


def make_loader() -> DataLoader[Any]:
    """``loader``: 10 batches of 8 ``(x, y)`` pairs, shaped like the README's ``data``."""
    return DataLoader(TensorDataset(torch.randn(80, 1), torch.randn(80, 1)), batch_size=8)


class Readme:
    """The README run for one backend: a namespace, and how far the blocks have run in it."""

    def __init__(self, client: httpx.AsyncClient, collector: Collector, tracking_uri: str) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        self.collector = collector
        self.namespace = self.fresh_namespace()
        self.done = 0  # blocks run in self.namespace
        self.broken: Block | None = None
        self.seconds: dict[str, float] = {}

    def fresh_namespace(self) -> dict[str, Any]:
        return {
            "__name__": "__main__",
            "__builtins__": builtins,
            "loader": make_loader(),
            "client": self.client,
            "websocket": RecordingWebSocket(),
            "tracking_uri": self.tracking_uri,
        }

    async def run_through(self, block: Block) -> None:
        """Run every block up to ``block`` (those not run yet, e.g. under ``-k``), then ``block``."""
        if self.broken is not None:
            pytest.skip(f"block {self.broken.id} failed, and the blocks after it share its namespace")
        for earlier in RUNNABLE[self.done : RUNNABLE.index(block) + 1]:
            started = time.perf_counter()
            try:
                await self._run(earlier)
            except BaseException:
                self.broken = earlier
                raise
            self.done += 1
            self.seconds[earlier.id] = time.perf_counter() - started

    async def _run(self, block: Block) -> None:
        if SIGTERM_BLOCK in block.code:
            await self._run_cut_by_sigterm_then_resumed(block)
            return
        if DISTRIBUTED_BLOCK in block.code:
            with _torchrun_environment_for_one_rank():
                await execute(block, self.namespace)
            assert not dist.is_initialized(), "Parallel should have destroyed its process group"
            assert _files("ckpt", "checkpoint_*.pt"), "the distributed run wrote no checkpoint"
            return
        await execute(block, self.namespace)
        if STREAM_BLOCK in block.code:
            sent = self.namespace["websocket"].sent
            assert sent, "the stream delivered no snapshot"
            assert all(message["iteration"] % 10 == 0 for message in sent)
        if LOGGER_BLOCK in block.code:
            records = _records("runs/exp1/metrics.jsonl")
            val_steps = [r["step"] for r in records if r["tag"] == "val"]
            assert len(val_steps) > 1, records[-5:]
            assert val_steps == sorted(set(val_steps)), (
                f"the evaluator's records should be at the trainer's step: {val_steps}"
            )
            assert all(step % 10 == 0 for step in val_steps), f"not the trainer's iterations at epoch ends: {val_steps}"
            assert {r["name"] for r in records if r["tag"] == "val"} == {"mse"}

    async def _run_cut_by_sigterm_then_resumed(self, block: Block) -> None:
        first = self.namespace
        trainer = first["trainer"]
        before = trainer.state.iteration
        with _sigterm_once_under_way(trainer, after=before + 15) as sent:
            await execute(block, first)
        assert sent, "SIGTERM was never sent: the run ended before the block's receiver was open"
        max_iterations = trainer.state.max_epochs * trainer.state.epoch_length
        assert trainer.state.iteration < max_iterations, "SIGTERM should have cut the run short"
        assert trainer.state.iteration > before
        cut_at = trainer.state.iteration
        assert len(_checkpoint_numbers()) <= 2, checkpoint_files(Path("runs/exp1"))
        assert max(_checkpoint_numbers()) == cut_at, "the last checkpoint should be the state at the cut"
        first["checkpointer"].close()  # the first process is gone: its claim on the checkpoint names too

        # The script started again: the README so far, in a fresh namespace; this time no signal comes.
        second = self.fresh_namespace()
        recipe = _the_block(RECIPE_BLOCK)
        for earlier in RUNNABLE[: RUNNABLE.index(block)]:
            await execute(earlier, second)
            if earlier is recipe:
                assert second["trainer"].state.iteration == cut_at, "the recipe should load the newest checkpoint"
        await execute(block, second)
        resumed = second["trainer"]
        assert resumed.state.iteration == max_iterations
        assert len(_checkpoint_numbers()) <= 2, checkpoint_files(Path("runs/exp1"))
        assert self.collector.requests > 0, "log_remote posted nothing to the metrics server"
        self.namespace = second


def _files(directory: str, pattern: str) -> list[Path]:
    return sorted(Path(directory).glob(pattern))


def _records(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _checkpoint_numbers() -> list[int]:
    names = [name for name in checkpoint_files(Path("runs/exp1")) if name.startswith("checkpoint_")]
    return sorted(int(name.removeprefix("checkpoint_").removesuffix(".pt")) for name in names)


@contextlib.contextmanager
def _sigterm_once_under_way(trainer: Any, after: int) -> Iterator[list[int]]:
    """SIGTERM to this process from a handler of ``trainer``, at the first iteration past ``after`` that finds
    another SIGTERM handler than ours installed (the block's receiver); yields the iterations it was sent at.

    Ours is a backstop: a SIGTERM that would reach Python's default disposition would end the test process
    (trio re-raises a signal its receiver had not consumed when it closes). Caught, it fails the test instead.
    """
    sent: list[int] = []
    stray: list[int] = []

    def backstop(signum: int, frame: Any) -> None:
        stray.append(signum)

    def send(engine: Any) -> None:
        if not sent and engine.state.iteration > after and signal.getsignal(signal.SIGTERM) is not backstop:
            sent.append(engine.state.iteration)
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, backstop)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, send)
    try:
        yield sent
    finally:
        trainer.remove_event_handler(send, Events.ITERATION_COMPLETED)
        signal.signal(signal.SIGTERM, previous)
    assert not stray, "a SIGTERM reached no receiver: the block's receiver had closed without consuming it"


@contextlib.contextmanager
def _torchrun_environment_for_one_rank() -> Iterator[None]:
    env = {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "GROUP_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield


async def execute(block: Block, namespace: dict[str, Any]) -> None:
    """Run ``block`` in ``namespace``: awaited on the loop if it awaits at top level, else in a worker thread."""
    code = block.compile()
    with anyio.fail_after(BLOCK_TIMEOUT):
        if block.is_async():
            await eval(code, namespace)
        else:
            await anyio.to_thread.run_sync(exec, code, namespace)


@pytest.fixture(scope="module")
async def readme(
    tmp_path_factory: pytest.TempPathFactory, anyio_backend: str, mlflow_server: str
) -> AsyncIterator[Readme]:
    directory = tmp_path_factory.mktemp(f"readme-{anyio_backend}")
    collector = Collector()
    with pytest.MonkeyPatch.context() as patch, serve(collector, path="") as url:
        patch.chdir(directory)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            run = Readme(client, collector, mlflow_server)
            yield run
        # Each block's time, for the curious (pytest -s); the whole README must stay well under 30 s.
        print(f"\nREADME on {anyio_backend}: " + ", ".join(f"{k} {v:.2f}s" for k, v in run.seconds.items()))


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.id for block in RUNNABLE])
async def test_block(readme: Readme, block: Block) -> None:
    await readme.run_through(block)


def test_blocks_are_found_and_few_only_illustrate() -> None:
    assert len(BLOCKS) >= 10, "the README's Python blocks were not found"
    illustrative = [f"{block.id}: {block.illustrative}" for block in BLOCKS if block.illustrative is not None]
    assert len(illustrative) <= MAX_ILLUSTRATIVE, illustrative
    for marker in (SIGTERM_BLOCK, RECIPE_BLOCK, DISTRIBUTED_BLOCK, STREAM_BLOCK, LOGGER_BLOCK):
        _the_block(marker)


def test_collector_parses_fences_markers_and_headings(tmp_path: Path) -> None:
    text = (
        "# Title\n\n```bash\nmake test\n```\n\n## Section `one`\n\n```python\nx = 1\n```\n\n"
        "<!-- illustrative: needs a GPU -->\n\n```python\nawait gpu()\n```\n\n```\nplain text\n```\n"
        "```python\ny = 2\nraise ValueError(y)\n```\n"
    )
    path = tmp_path / "README.md"
    path.write_text(text)
    first, second, third = python_blocks(path)
    assert (first.index, first.line, first.heading, first.code, first.illustrative) == (
        0,
        10,
        "Section one",
        "x = 1\n",
        None,
    )
    assert (second.line, second.illustrative) == (16, "needs a GPU")
    assert not first.is_async()
    assert second.is_async()
    assert second.id == "01-L16-section-one"
    with pytest.raises(ValueError, match="2") as raised:
        exec(third.compile(), {})
    where = raised.traceback[-1]
    assert (str(where.path), where.lineno + 1) == (str(path), 24)  # a failure names the README's line
