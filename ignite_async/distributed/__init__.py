"""Distributed training on torch.distributed, in the spirit of pytorch-ignite's ``idist``.

Launch with torchrun (``python -m torch.distributed.run --nproc_per_node=N script.py``) and wrap the script's
body in :class:`Parallel`; or let ``Parallel(backend, nproc_per_node=N)`` spawn N workers on one node.
"""

from __future__ import annotations

from ignite_async.distributed.auto import auto_dataloader, auto_model, auto_optim
from ignite_async.distributed.comm import (
    all_gather,
    all_reduce,
    backend,
    barrier,
    broadcast,
    device,
    get_local_rank,
    get_nnodes,
    get_node_rank,
    get_nproc_per_node,
    get_rank,
    get_world_size,
    is_distributed,
)
from ignite_async.distributed.launcher import Parallel

__all__ = [
    "Parallel",
    "all_gather",
    "all_reduce",
    "auto_dataloader",
    "auto_model",
    "auto_optim",
    "backend",
    "barrier",
    "broadcast",
    "device",
    "get_local_rank",
    "get_nnodes",
    "get_node_rank",
    "get_nproc_per_node",
    "get_rank",
    "get_world_size",
    "is_distributed",
]
