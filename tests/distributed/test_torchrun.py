"""Two processes on gloo over 127.0.0.1, launched by torchrun: metrics, DDP training, resume, failure."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

from ignite_async.distributed import Parallel
from tests.conftest import checkpoint_files
from tests.distributed import _launch as launch
from tests.distributed import _worker

WORKER = Path(_worker.__file__)
pytestmark = pytest.mark.timeout(400)  # two launches of at most 150 s each, and the rest


def torchrun(scenario: str, out: Path, backend: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return launch.torchrun(WORKER, scenario, str(out), backend, timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


@pytest.fixture
def backend(anyio_backend: str) -> str:
    return anyio_backend


def test_two_processes_train_like_one_and_resume_exactly(tmp_path: Path, backend: str) -> None:
    ok(torchrun("train", tmp_path, backend))

    # Metrics over the dataset split between 2 ranks equal one process's over all of it, on both ranks:
    # summed accumulators (accuracy, loss, cm, precision, recall, top-k) and gathered rows (auc, ap).
    model, _ = _worker.model_and_optimizer()
    alone = _worker.evaluate(model, backend)
    for rank in (0, 1):
        together = json.loads((tmp_path / f"metrics_{rank}.json").read_text())
        assert sorted(together) == sorted(alone)
        assert together["cm"] == alone["cm"]
        for name in ("accuracy", "loss", "precision", "recall", "top2", "auc", "ap"):
            assert together[name] == pytest.approx(alone[name], rel=1e-6), name

    # DistributedSampler: each epoch the ranks' shards are disjoint and cover the data; epochs differ.
    shards = [json.loads((tmp_path / f"shards_{rank}.json").read_text()) for rank in (0, 1)]
    for epoch in (0, 1):
        assert sorted(shards[0][epoch] + shards[1][epoch]) == list(range(64))
    assert shards[0][0] != shards[0][1]

    # One logger line per epoch: rank 1's logger, attached too, wrote nothing.
    assert [json.loads(line)["step"] for line in (tmp_path / "train.jsonl").read_text().splitlines()] == [1, 2, 3]

    # DDP: identical weights on both ranks.
    full = [torch.load(tmp_path / f"full_{rank}.pt") for rank in (0, 1)]
    assert torch.equal(full[0], full[1])
    # Only rank 0 wrote checkpoints, one per epoch (4 iterations each), named as usual.
    assert checkpoint_files(tmp_path / "checkpoints") == ["checkpoint_4.pt", "checkpoint_8.pt"]

    # Resumed from rank 0's checkpoint of epoch 2, the 2-process run ends exactly where the full one did.
    ok(torchrun("resume", tmp_path, backend))
    for rank in (0, 1):
        assert torch.equal(torch.load(tmp_path / f"resumed_{rank}.pt"), full[0])


def test_a_failure_on_one_rank_ends_the_job(tmp_path: Path, backend: str) -> None:
    started = time.monotonic()
    result = torchrun("fail", tmp_path, backend, timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - started < 120
    assert "injected failure on rank 1" in result.stderr + result.stdout


def test_parallel_spawns_workers_that_talk(tmp_path: Path, backend: str) -> None:
    with Parallel("gloo", nproc_per_node=2, async_backend=backend) as parallel:
        parallel.run(_worker.collectives, tmp_path)
    for rank in (0, 1):
        results = json.loads((tmp_path / f"collectives_{rank}.json").read_text())
        assert results["rank"] == results["local_rank"] == rank
        assert results["sum"] == 3
        assert results["max"] == [1, 0]
        assert results["gathered"] == [0, 0, 1]
        assert results["objects"] == ["rank0", "rank1"]
        assert results["broadcast"] == {"from": 1}
        assert "called from a background task" in results["refused"]
    assert json.loads((tmp_path / "collectives_0.json").read_text())["zero_states"] == 2  # weight and bias
    assert checkpoint_files(tmp_path / "zero") == ["optimizer_2.pt"]


def test_parallel_reports_a_failed_worker(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match=r"(?s)rank 1 failed first.*injected failure on rank 1"),
        Parallel("gloo", nproc_per_node=2) as parallel,
    ):
        parallel.run(_worker.fail_on_rank_1)
