"""ignite_async.distributed in one process: the helpers fall back, the engine drives the sampler's epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

import ignite_async.distributed as idist
from ignite_async import Engine, Events, background
from ignite_async.handlers import Checkpoint, DiskSaver
from tests.conftest import checkpoint_files


def test_without_a_process_group_everything_is_one_process() -> None:
    assert not idist.is_distributed()
    assert (idist.get_rank(), idist.get_world_size(), idist.get_local_rank(), idist.get_nnodes()) == (0, 1, 0, 1)
    assert idist.backend() is None
    assert idist.all_reduce(2.5) == 2.5
    assert idist.all_gather("x") == ["x"]
    assert idist.all_gather(torch.arange(3)).tolist() == [0, 1, 2]
    assert idist.broadcast({"a": 1}) == {"a": 1}
    idist.barrier()
    with pytest.raises(ValueError, match="op must be one of"):
        idist.all_reduce(1, op="AVG")
    model = nn.Linear(2, 2)
    assert idist.auto_model(model) is model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert idist.auto_optim(optimizer) is optimizer
    loader = idist.auto_dataloader(list(range(6)), batch_size=4, shuffle=False)
    assert [b.tolist() for b in loader] == [[0, 1, 2, 3], [4, 5]]
    with pytest.raises(TypeError, match=r"auto_model takes an nn\.Module"):
        idist.auto_model("model")  # type: ignore[arg-type]


def test_parallel_rejects_what_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="backend must be None, 'gloo' or 'nccl', got 'mpi'"):
        idist.Parallel("mpi")
    with pytest.raises(ValueError, match="nproc_per_node needs a backend"):
        idist.Parallel(nproc_per_node=2)
    with pytest.raises(ValueError, match="nproc_per_node must be a positive integer, got 0"):
        idist.Parallel("gloo", nproc_per_node=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'nccl' needs CUDA GPUs"):
            idist.Parallel("nccl")
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match=r"expects torchrun's environment, but \['RANK'"), idist.Parallel("gloo"):
        pass
    with idist.Parallel() as parallel:  # no backend: just this process
        assert parallel.run(lambda local_rank, x: (local_rank, x), "a") == (0, "a")


@pytest.mark.anyio
async def test_the_engine_sets_the_samplers_epoch_and_a_resumed_run_sees_the_same_order() -> None:
    def loader() -> DataLoader[int]:
        sampler = DistributedSampler(list(range(20)), num_replicas=2, rank=0, shuffle=True, seed=3)
        return DataLoader(list(range(20)), batch_size=5, sampler=sampler)

    def recording() -> tuple[Engine, list[list[int]]]:
        seen: list[list[int]] = []
        engine = Engine(lambda e, batch: seen[-1].extend(batch.tolist()))
        engine.add_event_handler(Events.EPOCH_STARTED, lambda: seen.append([]))
        return engine, seen

    reference = loader()
    expected = []
    for epoch in range(3):  # what a hand-written loop does
        reference.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        expected.append([i for batch in reference for i in batch.tolist()])
    assert expected[0] != expected[1] != expected[2]

    engine, seen = recording()
    await engine.run(loader(), max_epochs=3)
    assert seen == expected

    engine, seen = recording()
    data = loader()
    await engine.run(data, max_epochs=1)
    await engine.run(data, max_epochs=3)  # continues with epochs 2 and 3
    assert seen == expected

    engine, seen = recording()  # epoch 1 cut short: epoch 2 still gets epoch 2's order, not epoch 1's again
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), lambda e: e.terminate_epoch())
    await engine.run(loader(), max_epochs=3)
    assert seen == [expected[0][:5], expected[1], expected[2]]


@pytest.mark.anyio
async def test_checkpoints_are_written_by_the_save_rank_only(tmp_path: Path) -> None:
    model = nn.Linear(2, 1)
    elsewhere = Checkpoint({"model": model}, tmp_path / "not-mine", save_on_rank=1)
    mine = Checkpoint({"model": model}, DiskSaver(tmp_path / "mine", save_on_rank=0))
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, elsewhere)
    engine.add_event_handler(Events.EPOCH_COMPLETED, mine)
    await engine.run([0], max_epochs=2)
    assert not (tmp_path / "not-mine").exists()  # rank 0 is not the save rank: not even the directory
    assert elsewhere.last_checkpoint is not None
    assert Path(elsewhere.last_checkpoint).name == "model_2.pt"  # the same bookkeeping as on the save rank
    assert checkpoint_files(tmp_path / "mine") == ["model_2.pt"]

    # A DiskSaver's own rank decides, whatever the Checkpoint's (as in pytorch-ignite).
    saver_decides = Checkpoint({"model": model}, DiskSaver(tmp_path / "saver", save_on_rank=0), save_on_rank=1)
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, saver_decides)
    await engine.run([0])
    assert checkpoint_files(tmp_path / "saver") == ["model_1.pt"]


@pytest.mark.anyio
async def test_in_one_process_collectives_are_no_ops_anywhere() -> None:
    # So a background evaluator with metrics works here; in a 2-process job the same call is refused
    # (test_torchrun.py::test_parallel_spawns_workers_that_talk), since ranks could order it differently.
    gathered: list[object] = []
    engine = Engine(lambda e, b: idist.all_reduce(1))
    engine.add_event_handler(Events.COMPLETED, background(lambda: gathered.append(idist.all_gather(1))))
    await engine.run([0, 1])
    assert gathered == [[1]]
