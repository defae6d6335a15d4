"""One rank of the 2-process tests, launched by ``python -m torch.distributed.run`` from test_torchrun.py.

    _worker.py SCENARIO OUT_DIR ASYNC_BACKEND

Scenarios: ``train`` (an evaluation's metrics, the sampler's shards, a DDP training for 3 epochs, and
another stopped after 2 with checkpoints), ``resume`` (that one resumed to 3 epochs from rank 0's
checkpoint), ``fail`` (rank 1 raises mid-epoch). Results go to OUT_DIR as files per rank.
"""

from __future__ import annotations

import faulthandler
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import torch
from torch import nn
from torch.distributed.optim import ZeroRedundancyOptimizer

import ignite_async.distributed as idist
from ignite_async import Engine, Events, create_supervised_evaluator, create_supervised_trainer
from ignite_async.handlers import Checkpoint
from ignite_async.loggers import JSONLinesLogger
from ignite_async.metrics import (
    ROC_AUC,
    Accuracy,
    AveragePrecision,
    ConfusionMatrix,
    Loss,
    Precision,
    Recall,
    TopKCategoricalAccuracy,
)

CLASSES = 3


def dataset() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 5, generator=g)
    y = torch.randint(0, CLASSES, (64,), generator=g)
    return list(zip(x, y, strict=True))


def model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = idist.auto_model(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, CLASSES)))
    return model, idist.auto_optim(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))


def flat_weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def scores_of_class_0(output: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred, y = output
    return torch.softmax(y_pred, dim=1)[:, 0], (y == 0).long()


def evaluate(model: nn.Module, backend: str) -> dict[str, Any]:
    """The metrics of ``model`` over the whole dataset, however many ranks share it."""
    evaluator = create_supervised_evaluator(
        model,
        metrics={
            "accuracy": Accuracy(),
            "loss": Loss(nn.functional.cross_entropy),
            "cm": ConfusionMatrix(CLASSES),
            "precision": Precision(average="weighted"),
            "recall": Recall(average=False),
            "top2": TopKCategoricalAccuracy(2),
            "auc": ROC_AUC(scores_of_class_0),  # rows gathered from every rank
            "ap": AveragePrecision(scores_of_class_0, background=True),  # gathered inline, computed in a thread
        },
    )
    loader = idist.auto_dataloader(dataset(), batch_size=16, shuffle=False)
    metrics = anyio.run(evaluator.run, loader, backend=backend)
    return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in metrics.metrics.items()}


async def train(epochs: int, checkpoint_dir: Path | None, resume: bool = False, log: Path | None = None) -> nn.Module:
    model, optimizer = model_and_optimizer()
    trainer = create_supervised_trainer(model, optimizer, nn.functional.cross_entropy)
    if log is not None:  # attached on every rank; only rank 0 writes
        logger = JSONLinesLogger(log)
        logger.attach_output_handler(trainer, Events.EPOCH_COMPLETED, "train", output_transform=lambda loss: loss)
    loader = idist.auto_dataloader(dataset(), batch_size=16, shuffle=True)
    if checkpoint_dir is not None:
        to_save = {"model": model, "optimizer": optimizer, "trainer": trainer}
        if resume:
            Checkpoint.load_objects(to_save, checkpoint_dir / "checkpoint_8.pt")  # the end of epoch 2
        else:
            checkpoint = Checkpoint(to_save, checkpoint_dir, n_saved=None)
            trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    await trainer.run(loader, max_epochs=epochs)
    if log is not None:
        await logger.close()
    return model


def main(scenario: str, out: Path, backend: str) -> None:
    # A rank still running after 120 s is stuck: print where (to the test's output) and fail the job.
    faulthandler.dump_traceback_later(120, exit=True)
    with idist.Parallel(backend="gloo") as parallel:
        assert parallel.backend == "gloo"
        # Through run(), so that the scenario's DDP models are gone before the process group is.
        parallel.run(run_scenario, scenario, out, backend)


def run_scenario(local_rank: int, scenario: str, out: Path, backend: str) -> None:
    rank = idist.get_rank()
    assert idist.get_world_size() == 2, idist.get_world_size()
    if scenario == "train":
        model, _ = model_and_optimizer()
        (out / f"metrics_{rank}.json").write_text(json.dumps(evaluate(model, backend)))
        # The sampler's shards: disjoint, covering the data, reshuffled each epoch, set by the engine.
        seen: list[list[int]] = []
        loader = idist.auto_dataloader(list(range(64)), batch_size=16, shuffle=True)
        engine = Engine(lambda e, batch: seen[-1].extend(batch.tolist()))
        engine.add_event_handler(Events.EPOCH_STARTED, lambda: seen.append([]))
        anyio.run(engine.run, loader, 2, backend=backend)
        (out / f"shards_{rank}.json").write_text(json.dumps(seen))
        full = anyio.run(train, 3, None, False, out / "train.jsonl", backend=backend)
        torch.save(flat_weights(full), out / f"full_{rank}.pt")
        anyio.run(train, 2, out / "checkpoints", backend=backend)
    elif scenario == "resume":
        resumed = anyio.run(train, 3, out / "checkpoints", True, backend=backend)
        torch.save(flat_weights(resumed), out / f"resumed_{rank}.pt")
    elif scenario == "fail":

        def step(engine: Engine, batch: Any) -> None:
            idist.all_reduce(1)  # every iteration waits for the other rank, as DDP's backward does
            if rank == 1 and engine.state.iteration == 3:
                raise RuntimeError("injected failure on rank 1")

        anyio.run(Engine(step).run, list(range(10)), backend=backend)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])


async def collectives(local_rank: int, out: Path) -> None:
    """Run by ``Parallel(nproc_per_node=2)``: the collectives, and their refusal inside a background task."""
    rank = idist.get_rank()
    results: dict[str, Any] = {
        "rank": rank,
        "local_rank": local_rank,
        "sum": idist.all_reduce(rank + 1),
        "max": idist.all_reduce(torch.tensor([rank, -rank]), op="MAX").tolist(),
        "gathered": idist.all_gather(torch.arange(rank + 1)).tolist(),  # rows differ: 1 on rank 0, 2 on rank 1
        "objects": idist.all_gather(f"rank{rank}"),
        "broadcast": idist.broadcast({"from": rank}, src=1),
    }
    engine = Engine(lambda e, b: None)

    async def sneaky() -> None:
        idist.all_reduce(1)

    engine.add_event_handler(Events.STARTED, lambda e: e.spawn(sneaky))
    try:
        await engine.run([0])
    except RuntimeError as exc:
        results["refused"] = str(exc)
    # A checkpoint of a ZeroRedundancyOptimizer: consolidated on every rank, written by rank 0 alone.
    model = idist.auto_model(nn.Linear(3, 2))
    optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.Adam, lr=0.1)

    def step(engine: Engine, batch: torch.Tensor) -> None:
        optimizer.zero_grad()
        model(batch).sum().backward()
        optimizer.step()

    trainer = Engine(step)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, Checkpoint({"optimizer": optimizer}, out / "zero"))
    await trainer.run([torch.ones(4, 3)] * 2)
    idist.barrier()
    if rank == 0:
        saved = torch.load(out / "zero" / "optimizer_2.pt")
        results["zero_states"] = len(saved["state"])  # both ranks' shards: every parameter's Adam state
    (out / f"collectives_{rank}.json").write_text(json.dumps(results))


def fail_on_rank_1(local_rank: int) -> None:
    """Run by ``Parallel(nproc_per_node=2)``: rank 1 fails while rank 0 waits for it in a collective."""
    if local_rank == 1:
        raise RuntimeError("injected failure on rank 1")
    idist.all_reduce(1)
