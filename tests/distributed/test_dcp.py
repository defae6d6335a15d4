"""DCPSaver: sharded checkpoints with torch.distributed.checkpoint.

Two gloo ranks under torchrun hold an FSDP2 ``fully_shard`` model (each rank half of every parameter); a run
resumed in new processes from the newest checkpoint ends bitwise equal to the uninterrupted run. Without a
process group, the same in one process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, CheckpointInUseError
from ignite_async.handlers.distributed_checkpoint import DCPSaver
from tests.distributed import _dcp_worker as worker
from tests.distributed import _launch as launch


def assert_bitwise(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict), where
        assert sorted(a, key=str) == sorted(b, key=str), where
        for key in a:
            assert_bitwise(a[key], b[key], f"{where}[{key!r}]")
    else:
        assert a == b, where


@pytest.mark.timeout(200)
def test_two_ranks_resume_from_sharded_checkpoint_bitwise(tmp_path: Path) -> None:
    script = Path(worker.__file__)
    for phase in ("full", "resume"):  # resume: new processes, from what the first launch left on disk
        if phase == "resume":
            # As a job killed while writing its next checkpoint leaves it: shards, no .metadata. Never counted.
            killed = tmp_path / "resumed" / "checkpoint_9.pt"
            killed.mkdir()
            (killed / "__0_0.distcp").write_bytes(b"half written")
        result = launch.torchrun(script, str(tmp_path), phase, timeout=90)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    for rank in (0, 1):
        first = json.loads((tmp_path / f"full_{rank}.json").read_text())
        resumed = json.loads((tmp_path / f"resume_{rank}.json").read_text())["resume"]
        for report in (first["full"], first["half"], resumed):
            assert report["sharded"]
            assert report["shard_rows"] == [4, 4, 1, 1]  # 8x6, 8, 2x8, 2 rows over 2 ranks
        assert first["half"]["kept"] == ["checkpoint_3.pt", "checkpoint_6.pt"]
        assert (resumed["resumed_from"], resumed["resumed_epoch"]) == ("checkpoint_6.pt", 2)
        # n_saved=2: exactly two complete checkpoints left, the newest two, in both directories
        assert sorted(first["full"]["kept"]) == sorted(resumed["kept"]) == ["checkpoint_12.pt", "checkpoint_9.pt"]
        full = torch.load(tmp_path / f"full_states_{rank}.pt", weights_only=True)["full"]
        again = torch.load(tmp_path / f"resume_states_{rank}.pt", weights_only=True)["resume"]
        assert full["optimizer"], "the optimizer has state to compare"
        assert_bitwise(full, again, f"rank {rank}")
    for directory in ("full", "resumed"):  # removed checkpoints leave nothing behind (but the names' lock file)
        left = sorted(p.name for p in (tmp_path / directory).iterdir())
        assert left == [".checkpoint.lock", "checkpoint_12.pt", "checkpoint_9.pt"]
    rank_files = sorted(p.name for p in (tmp_path / "full" / "checkpoint_12.pt").iterdir())
    assert rank_files == [".metadata", "__0_0.distcp", "__1_0.distcp"]  # every rank wrote its shard


# ---------------------------------------------------------------- one process, no process group


def objects(seed: int) -> tuple[dict[str, Any], torch.nn.Sequential, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    data = [torch.randn(2, 3, generator=torch.Generator().manual_seed(i)) for i in range(3)]

    def step(engine: Engine, x: torch.Tensor) -> None:
        model(x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    trainer = Engine(step)
    trainer.state.dataloader = data
    return {"model": model, "optimizer": optimizer, "trainer": trainer}, model, optimizer


async def train(to_save: dict[str, Any], directory: Path, max_epochs: int, resume: bool) -> list[str]:
    saver = DCPSaver(directory, require_empty=not resume)
    checkpointer = Checkpoint(to_save, saver, n_saved=2)
    if resume:
        assert checkpointer.last_checkpoint is not None
        DCPSaver.load_objects(to_save, saver.dirname / checkpointer.last_checkpoint)
    trainer = to_save["trainer"]
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    await trainer.run(trainer.state.dataloader, max_epochs=max_epochs)
    checkpointer.close()
    return saver.existing()


@pytest.mark.anyio
async def test_single_process_resume_is_bitwise_and_keeps_n_saved(tmp_path: Path) -> None:
    full, model, optimizer = objects(0)
    assert await train(full, tmp_path / "full", 4, resume=False) == ["checkpoint_12.pt", "checkpoint_9.pt"]
    half, _, _ = objects(0)
    assert await train(half, tmp_path / "resumed", 2, resume=False) == ["checkpoint_3.pt", "checkpoint_6.pt"]
    resumed, model_2, optimizer_2 = objects(1)  # another init: what matches was loaded
    assert not torch.equal(model[0].weight, model_2[0].weight)
    assert await train(resumed, tmp_path / "resumed", 4, resume=True) == ["checkpoint_12.pt", "checkpoint_9.pt"]
    assert resumed["trainer"].state.epoch == 4
    assert_bitwise(model.state_dict(), model_2.state_dict(), "model")
    assert_bitwise(optimizer.state_dict(), optimizer_2.state_dict(), "optimizer")


def test_unsupported_object_is_named_at_the_call_and_nothing_is_written(tmp_path: Path) -> None:
    saver = DCPSaver(tmp_path)
    with pytest.raises(TypeError, match=r"checkpoint\['model'\]\['hook'\] of 'c_1.pt' is a function .*torch.save"):
        saver({"model": {"weight": torch.ones(2), "hook": lambda: None}}, "c_1.pt")
    with pytest.raises(TypeError, match="sparse"):
        saver({"model": {"weight": torch.eye(2).to_sparse()}}, "c_1.pt")
    with pytest.raises(TypeError, match="dict of state dicts"):
        saver([{"weight": torch.ones(2)}], "c_1.pt")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_unsupported_object_fails_the_run_naming_it(tmp_path: Path) -> None:
    class Holder:
        def state_dict(self) -> dict[str, Any]:
            return {"hook": lambda: None}  # copied by the snapshot (functions are), refused by torch.save

    trainer = Engine(lambda e, b: None)
    checkpointer = Checkpoint({"holder": Holder(), "trainer": trainer}, DCPSaver(tmp_path), n_saved=1)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    with pytest.raises(TypeError, match=r"checkpoint\['holder'\]\['hook'\] of 'checkpoint_1.pt' is a function"):
        await trainer.run([0], max_epochs=1)
    assert DCPSaver(tmp_path, require_empty=True).existing() == []


def test_incomplete_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    to_save, model, _ = objects(0)
    saver = DCPSaver(tmp_path)
    saver({key: obj.state_dict() for key, obj in to_save.items()}, "checkpoint_3.pt")
    assert saver.existing() == ["checkpoint_3.pt"]
    with pytest.raises(ValueError, match=r"already holds DCP checkpoints \['checkpoint_3\.pt'\].*require_empty=False"):
        DCPSaver(tmp_path)
    (tmp_path / "checkpoint_3.pt" / ".metadata").unlink()  # as a crash before DCP's last step leaves it
    assert saver.existing() == []
    with pytest.raises(FileNotFoundError, match="not a complete DCP checkpoint"):
        DCPSaver.load_objects({"model": model}, tmp_path / "checkpoint_3.pt")
    saver.remove("checkpoint_3.pt")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_load_checks_its_arguments_and_lacking_keys_change_nothing(tmp_path: Path) -> None:
    to_save, model, _ = objects(0)
    saver = DCPSaver(tmp_path)
    saver({"model": model.state_dict()}, "m.pt")
    with pytest.raises(TypeError, match="mapping of names"):
        DCPSaver.load_objects([model], tmp_path / "m.pt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"to_load\['x'\] \(int\) has no state_dict"):
        DCPSaver.load_objects({"x": 1}, tmp_path / "m.pt")
    other = torch.nn.Linear(3, 4)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(RuntimeError, match="Missing key"):
        DCPSaver.load_objects({"model": other, "trainer": to_save["trainer"]}, tmp_path / "m.pt")
    assert_bitwise(before, dict(other.state_dict()))
    with pytest.raises(ValueError, match="timeout must be a positive"):
        DCPSaver(tmp_path, timeout=0)


def test_two_trainers_cannot_share_checkpoint_names(tmp_path: Path) -> None:
    first = Checkpoint({"model": torch.nn.Linear(1, 1)}, DCPSaver(tmp_path), n_saved=1)
    with pytest.raises(CheckpointInUseError, match="'model'"):
        Checkpoint({"model": torch.nn.Linear(1, 1)}, DCPSaver(tmp_path), n_saved=1)
    first.close()
    Checkpoint({"model": torch.nn.Linear(1, 1)}, DCPSaver(tmp_path), n_saved=1).close()  # free once closed
