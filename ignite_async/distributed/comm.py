"""Who am I in the job, and the collectives, over torch.distributed (or a single process without it).

Every collective blocks until all ranks have called it, so all ranks must call the same collectives in
the same order. In an async engine that means: call them from handlers and the process function, which
run in event order on every rank, never from background handlers or spawned tasks (nor threads they start),
whose interleaving differs between ranks. The collectives here check this in a distributed job and raise
instead of hanging. In a single process they are no-ops and may run anywhere: a background evaluator with
metrics works there, and in a distributed job it must run inline.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ignite_async.engine.background import in_background

__all__ = [
    "all_gather",
    "all_reduce",
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

T = TypeVar("T")
_OPS = {"SUM": dist.ReduceOp.SUM, "MIN": dist.ReduceOp.MIN, "MAX": dist.ReduceOp.MAX, "PRODUCT": dist.ReduceOp.PRODUCT}


def is_distributed() -> bool:
    """Whether a process group is initialised (by :class:`Parallel` or by the user)."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """The number of processes in the job; 1 without a process group."""
    return dist.get_world_size() if is_distributed() else 1


def get_rank() -> int:
    """This process's rank in the job, from 0; 0 without a process group."""
    return dist.get_rank() if is_distributed() else 0


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default)) if is_distributed() else default


def get_local_rank() -> int:
    """This process's rank on its node (torchrun's ``LOCAL_RANK``); 0 without a process group."""
    return _env_int("LOCAL_RANK", 0)


def get_nproc_per_node() -> int:
    """Processes per node (torchrun's ``LOCAL_WORLD_SIZE``)."""
    return _env_int("LOCAL_WORLD_SIZE", get_world_size())


def get_node_rank() -> int:
    """This node's rank (torchrun's ``GROUP_RANK``)."""
    return _env_int("GROUP_RANK", 0)


def get_nnodes() -> int:
    """The number of nodes."""
    return max(1, get_world_size() // max(1, get_nproc_per_node()))


def backend() -> str | None:
    """The process group's backend (``"gloo"``, ``"nccl"``), or None without one."""
    return str(dist.get_backend()) if is_distributed() else None


def device() -> torch.device:
    """The device this process computes on: its GPU with nccl, the CPU with gloo, else CUDA if present.

    >>> device().type in ("cpu", "cuda")
    True
    """
    if is_distributed():
        if backend() == "nccl":
            return torch.device(f"cuda:{torch.cuda.current_device()}")
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_caller(name: str) -> None:
    if in_background.get():
        raise RuntimeError(
            f"{name}() was called from a background task: collectives must be called in event order (from "
            "handlers or the process function), or ranks may wait for each other forever"
        )


def _as_tensor(value: Any) -> tuple[torch.Tensor, Any]:
    """The value as a tensor on the collective's device, and how to give it back in the caller's form."""
    if isinstance(value, torch.Tensor):
        original = value.device
        return value.detach().to(_comm_device(), copy=True), lambda t: t.to(original)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"collectives take tensors, ints or floats, got {type(value).__name__}")
    kind = type(value)
    dtype = torch.float64 if kind is float else torch.int64
    return torch.tensor(value, dtype=dtype, device=_comm_device()), lambda t: kind(t.item())


def _comm_device() -> torch.device:
    return device() if backend() == "nccl" else torch.device("cpu")


def all_reduce(value: T, op: str = "SUM") -> T:
    """``value`` reduced over all ranks (``op``: SUM, MIN, MAX, PRODUCT), in the form it was given.

    >>> all_reduce(3)  # a single process: the value itself
    3
    """
    if op not in _OPS:
        raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
    if get_world_size() == 1:
        return value
    _check_caller("all_reduce")
    tensor, back = _as_tensor(value)
    dist.all_reduce(tensor, op=_OPS[op])
    return back(tensor)  # type: ignore[no-any-return]


def all_gather(value: Any) -> Any:
    """Every rank's ``value``: tensors concatenated along dim 0 in rank order (sizes may differ), numbers
    and strings as a list.

    >>> all_gather(7)
    [7]
    """
    if get_world_size() == 1:
        return value if isinstance(value, torch.Tensor) else [value]
    _check_caller("all_gather")
    if not isinstance(value, torch.Tensor):
        gathered: list[Any] = [None] * get_world_size()
        dist.all_gather_object(gathered, value)
        return gathered
    tensor, back = _as_tensor(value if value.ndim else value.reshape(1))
    # Ranks may hold different numbers of rows: pad to the longest, gather, then cut the padding off.
    sizes = [torch.zeros(1, dtype=torch.int64, device=tensor.device) for _ in range(get_world_size())]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device))
    longest = max(int(s) for s in sizes)
    padded = torch.zeros((longest, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return back(torch.cat([part[: int(n)] for part, n in zip(parts, sizes, strict=True)]))


def broadcast(value: T, src: int = 0) -> T:
    """Rank ``src``'s ``value`` on every rank (tensors, numbers, or any picklable object).

    >>> broadcast("hello")
    'hello'
    """
    if get_world_size() == 1:
        return value
    _check_caller("broadcast")
    if isinstance(value, torch.Tensor):
        tensor, back = _as_tensor(value)
        dist.broadcast(tensor, src=src)
        return back(tensor)  # type: ignore[no-any-return]
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait until every rank has reached this call."""
    if get_world_size() > 1:
        _check_caller("barrier")
        dist.barrier()
