"""Adapt a model, a data loader and an optimizer to the job: pytorch-ignite's ``idist.auto_*``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data.distributed import DistributedSampler

from ignite_async.distributed.comm import device, get_local_rank, get_nproc_per_node, get_rank, get_world_size

__all__ = ["auto_dataloader", "auto_model", "auto_optim"]


def auto_model(model: nn.Module, sync_bn: bool = False, **ddp_kwargs: Any) -> nn.Module:
    """``model`` on :func:`device`, wrapped in DistributedDataParallel when the world size is > 1.

    Without a process group but with several GPUs it is wrapped in DataParallel, as pytorch-ignite does.
    ``sync_bn`` converts BatchNorm layers to SyncBatchNorm first; ``ddp_kwargs`` go to DDP.

    >>> from torch import nn
    >>> type(auto_model(nn.Linear(2, 1))).__name__  # a single process: the model itself
    'Linear'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"auto_model takes an nn.Module, got {type(model).__name__}")
    model = model.to(device())
    if get_world_size() > 1:
        if not any(p.requires_grad for p in model.parameters()):
            return model  # nothing to synchronise: DDP refuses such a model
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
        if device().type == "cuda":
            return nn.parallel.DistributedDataParallel(model, device_ids=[get_local_rank()], **ddp_kwargs)
        return nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
    if torch.cuda.device_count() > 1:
        return nn.DataParallel(model)
    return model


def auto_optim(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer, as it is: DDP averages the gradients, so native backends need no wrapper.

    Kept so that code written for pytorch-ignite's ``idist.auto_optim`` ports unchanged.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"auto_optim takes a torch.optim.Optimizer, got {type(optimizer).__name__}")
    return optimizer


def auto_dataloader(dataset: Dataset[Any], **kwargs: Any) -> DataLoader[Any]:
    """A DataLoader over this rank's share of ``dataset``.

    With a world size > 1: ``batch_size`` and ``num_workers`` are divided among the ranks (per process),
    and a DistributedSampler (shuffling if ``shuffle`` is, by default) replaces ``shuffle``. The engine calls
    its ``set_epoch`` at each epoch. ``pin_memory`` defaults to True on CUDA.

    >>> loader = auto_dataloader(list(range(10)), batch_size=4)
    >>> [batch.tolist() for batch in loader]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """
    world_size = get_world_size()
    if world_size > 1:
        if kwargs.get("batch_size", 1) >= world_size:
            kwargs["batch_size"] //= world_size
        nproc = get_nproc_per_node()
        if kwargs.get("num_workers", 0) >= nproc:
            kwargs["num_workers"] = (kwargs["num_workers"] + nproc - 1) // nproc
        if "batch_sampler" not in kwargs and not isinstance(dataset, IterableDataset):
            if kwargs.get("sampler") is not None:
                raise ValueError(
                    "auto_dataloader: a sampler of your own cannot be split among ranks; give a "
                    "DistributedSampler-like sampler to DataLoader directly"
                )
            shuffle = kwargs.pop("shuffle", True)
            kwargs["sampler"] = DistributedSampler(dataset, num_replicas=world_size, rank=get_rank(), shuffle=shuffle)
    kwargs.setdefault("pin_memory", device().type == "cuda")
    return DataLoader(dataset, **kwargs)
