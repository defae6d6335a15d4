from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.conftest import checkpoint_files
from tests.distributed._launch import torchrun

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.anyio
async def test_quickstart_trains_logs_checkpoints_and_resumes(tmp_path: Path) -> None:
    from ignite_async.loggers import read_jsonl
    from tests.loggers._http_server import Collector, serve

    quickstart = load("quickstart")
    app = Collector()
    with serve(app) as url:
        first = await quickstart.main(epochs=10, runs=tmp_path, log_url=url)
    # Evaluated in the background at epochs 5 and 10; the network learned something.
    assert sorted(first["evaluations"]) == ["val_mse@10", "val_mse@5"]
    assert first["final_mse"] < 0.05
    directory = tmp_path / "quickstart"
    assert checkpoint_files(directory / "checkpoints") == ["quickstart_checkpoint_320.pt"]
    records = list(read_jsonl(directory / "metrics.jsonl"))
    assert [r["step"] for r in records if r["name"] == "loss"] == list(range(10, 321, 10))
    assert sum(len(body["records"]) for body in app.received) == len(records)  # the same records over HTTP

    second = await quickstart.main(epochs=20, runs=tmp_path, resume=True)
    state = second["state"]
    assert (state.epoch, state.iteration) == (20, 640)  # continued from the checkpoint at epoch 10
    assert sorted(second["evaluations"]) == ["val_mse@15", "val_mse@20"]
    steps = [r["step"] for r in read_jsonl(directory / "metrics.jsonl") if r["name"] == "loss"]
    assert steps == list(range(10, 641, 10))  # appended, no step twice


@pytest.mark.anyio
async def test_concurrent_evaluation_equals_blocking_evaluation_of_the_same_weights() -> None:
    example = load("concurrent_eval")
    results = await example.main(epochs=6)
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    val_loader = example.make_loader(1024, seed=1, shuffle=False)
    for record in results.values():
        assert record["mse"] == pytest.approx(example.blocking_mse(record["weights"], val_loader), rel=1e-6)
    # The snapshots really differ, and the first evaluation ended while the trainer was still training.
    assert results[1]["mse"] != results[6]["mse"]
    assert results[1]["started_at_iteration"] < results[1]["finished_at_iteration"] < 6 * 32


def test_sigterm_writes_a_final_checkpoint_and_resume_is_exact(tmp_path: Path) -> None:
    script = ROOT / "examples" / "resumable.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), "--dir", str(directory), "--epochs", "8", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )

    run(tmp_path / "straight")
    with subprocess.Popen(
        [sys.executable, str(script), "--dir", str(tmp_path / "stopped"), "--epochs", "8"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("epoch 1 ")  # training is under way: now the signal
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "received SIGTERM" in out
    assert "stopped at iteration" in out
    assert not (tmp_path / "stopped" / "final_weights.pt").exists()

    resumed = run(tmp_path / "stopped", "--resume")
    assert "resumed from checkpoint_" in resumed.stdout
    straight = torch.load(tmp_path / "straight" / "final_weights.pt", weights_only=True)
    after_resume = torch.load(tmp_path / "stopped" / "final_weights.pt", weights_only=True)
    assert all(torch.equal(straight[k], after_resume[k]) for k in straight)


def test_distributed_example_under_torchrun(tmp_path: Path) -> None:
    example = ROOT / "examples" / "distributed.py"
    result = torchrun(example, "--epochs", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2"]  # printed by rank 0 only
    assert float(epochs[-1].rsplit(" ", 1)[1]) > 0.8  # the centres are easy to tell apart (chance: 0.25)
    assert f"world size 2, checkpoints in {tmp_path}" in lines
    assert checkpoint_files(tmp_path) == ["checkpoint_16.pt", "checkpoint_32.pt"]
