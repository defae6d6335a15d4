"""Worker for test_dcp: an FSDP2-sharded model (each of 2 gloo ranks holds half of every parameter) trained
with DCP checkpoints every epoch; ``full`` runs 4 epochs, then 2 epochs in another directory; ``resume`` resumes
those 2 in new processes from the newest checkpoint and runs to 4. Each rank dumps its shards to compare."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

import ignite_async.distributed as idist
from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint
from ignite_async.handlers.distributed_checkpoint import DCPSaver

EPOCHS = 4
BATCHES = 3  # per epoch: checkpoints are named checkpoint_3.pt, checkpoint_6.pt, ...


def batches(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    return [(torch.randn(4, 6, generator=generator), torch.randn(4, 2, generator=generator)) for _ in range(BATCHES)]


def build(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, Engine]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    mesh = init_device_mesh("cpu", (idist.get_world_size(),))
    fully_shard(model[0], mesh=mesh)
    fully_shard(model, mesh=mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.01)

    def step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = batch
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    return model, optimizer, Engine(step)


def local(value: Any) -> Any:
    if isinstance(value, DTensor):
        return value.to_local().clone()
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: local(v) for k, v in value.items()}
    return value


def train(directory: Path, seed: int, max_epochs: int, resume: bool) -> dict[str, Any]:
    model, optimizer, trainer = build(seed)
    to_save = {"model": model, "optimizer": optimizer, "trainer": trainer}
    saver = DCPSaver(directory, require_empty=not resume)
    checkpointer = Checkpoint(to_save, saver, n_saved=2)
    report: dict[str, Any] = {"sharded": all(isinstance(p, DTensor) for p in model.parameters())}
    report["shard_rows"] = [p.to_local().shape[0] for p in model.parameters() if isinstance(p, DTensor)]
    if resume:
        newest = checkpointer.last_checkpoint
        report["resumed_from"] = newest
        assert isinstance(newest, str), newest
        DCPSaver.load_objects(to_save, saver.dirname / newest)
        report["resumed_epoch"] = trainer.state.epoch
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    asyncio.run(trainer.run(batches(idist.get_rank()), max_epochs=max_epochs))
    checkpointer.close()
    report["kept"] = saver.existing()
    report["last"] = checkpointer.last_checkpoint
    report["state"] = {"model": local(model.state_dict()), "optimizer": local(optimizer.state_dict()["state"])}
    return report


def run(local_rank: int, out: Path, phase: str) -> None:
    rank = idist.get_rank()
    assert idist.get_world_size() == 2, idist.get_world_size()
    if phase == "full":
        reports = {"full": train(out / "full", seed=0, max_epochs=EPOCHS, resume=False)}
        reports["half"] = train(out / "resumed", seed=0, max_epochs=EPOCHS // 2, resume=False)
    else:
        reports = {"resume": train(out / "resumed", seed=1, max_epochs=EPOCHS, resume=True)}  # other init: loaded
    states = {name: report.pop("state") for name, report in reports.items()}
    torch.save(states, out / f"{phase}_states_{rank}.pt")
    (out / f"{phase}_{rank}.json").write_text(json.dumps(reports))


def main(out: Path, phase: str) -> None:
    # A rank still running after 100 s is stuck: print where (to the test's output) and fail the job.
    faulthandler.dump_traceback_later(100, exit=True)
    with idist.Parallel(backend="gloo") as parallel:
        parallel.run(run, out, phase)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
