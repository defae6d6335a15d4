"""Data-parallel training on torch.distributed: the same script on 1 process, on N, or on N GPUs.

    torchrun --standalone --nproc_per_node=2 examples/distributed.py          # torchrun starts 2 ranks
    .venv/bin/python examples/distributed.py --nproc 2                        # or Parallel spawns them
    .venv/bin/python examples/distributed.py                                  # or one process
    torchrun --nproc_per_node=8 examples/distributed.py --backend nccl        # 8 GPUs

A classifier of synthetic points trains with DDP. Each rank sees its shard of every epoch, reshuffled per
epoch. An evaluator reports the accuracy over the whole validation set on every rank, and rank 0 alone
writes the checkpoints and draws the progress bar.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

import ignite_async.distributed as idist
from ignite_async import Events, create_supervised_evaluator, create_supervised_trainer
from ignite_async.handlers import Checkpoint, DiskSaver, ProgressBar
from ignite_async.metrics import Accuracy, Loss

CLASSES = 4


def points(n: int, seed: int) -> TensorDataset:
    """Points around one of CLASSES centres; the label is the centre."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    centres = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0], [0.0, -3.0]])
    return TensorDataset(centres[labels] + torch.randn(n, 2, generator=g), labels)


async def main(local_rank: int, epochs: int, out: Path) -> None:
    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = idist.auto_model(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, CLASSES)))
    optimizer = idist.auto_optim(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    train = idist.auto_dataloader(points(2048, seed=1), batch_size=128, shuffle=True)
    val = idist.auto_dataloader(points(512, seed=2), batch_size=128, shuffle=False)
    trainer = create_supervised_trainer(model, optimizer, nn.functional.cross_entropy, device=idist.device())
    metrics = {"accuracy": Accuracy(), "loss": Loss(nn.functional.cross_entropy)}
    evaluator = create_supervised_evaluator(model, metrics=metrics, device=idist.device())

    @trainer.on(Events.EPOCH_COMPLETED)
    async def validate() -> None:
        state = await evaluator.run(val)  # a collective per metric: every rank, in the same order
        if idist.get_rank() == 0:
            print(f"epoch {trainer.state.epoch}: val accuracy {state.metrics['accuracy']:.3f}", flush=True)

    saver = DiskSaver(out, require_empty=False, save_on_rank=0)  # rank 0 writes; the others only count
    checkpoint = Checkpoint({"model": model, "optimizer": optimizer, "trainer": trainer}, saver, n_saved=2)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
    ProgressBar().attach(trainer, output_transform=lambda loss: {"loss": loss})  # drawn by rank 0
    await trainer.run(train, max_epochs=epochs)
    if idist.get_rank() == 0:
        print(f"world size {idist.get_world_size()}, checkpoints in {out}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    parser.add_argument("--nproc", type=int, default=None, help="spawn this many ranks here (without torchrun)")
    parser.add_argument("--out", type=Path, default=Path("runs/distributed"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    under_torchrun = "RANK" in os.environ
    backend = args.backend if under_torchrun or args.nproc else None
    with idist.Parallel(backend, nproc_per_node=args.nproc) as parallel:
        parallel.run(main, args.epochs, args.out)
