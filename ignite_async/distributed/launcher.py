"""``Parallel``: one context that sets up torch.distributed from torchrun's environment, or spawns workers."""

from __future__ import annotations

import gc
import inspect
import os
import random
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import ProcessRaisedException, start_processes

from ignite_async.distributed.comm import get_local_rank

__all__ = ["Parallel"]

_BACKENDS = ("gloo", "nccl")
_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _ephemeral_ports() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, outside the ephemeral range.

    The port is bound again only later (by the process group's store). An ephemeral port could be taken
    meanwhile by any outgoing connection on the machine, a worker's own connection attempt included.
    """
    ephemeral = _ephemeral_ports()
    candidates = [p for p in range(20000, 32768) if p not in ephemeral] or list(range(1024, 65536))
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port found on 127.0.0.1 outside the ephemeral range: give master_port")


def _init(backend: str, timeout: timedelta) -> None:
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend, timeout=timeout)


def _destroy_group() -> None:
    # A DDP model (or another user of the group) destroyed after its group hangs or aborts the process at
    # exit. Those that are garbage but kept alive by reference cycles go first; models still referenced
    # must be gone by then, which they are when they live in the function given to Parallel.run.
    gc.collect()
    dist.destroy_process_group()


def _call(fn: Callable[..., Any], local_rank: int, args: tuple[Any, ...], async_backend: str) -> Any:
    if inspect.iscoroutinefunction(fn):
        return anyio.run(fn, local_rank, *args, backend=async_backend)
    return fn(local_rank, *args)


def _spawned(
    local_rank: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    world_size: int,
    addr: str,
    port: int,
    backend: str,
    timeout: timedelta,
    async_backend: str,
    failures: Any,
) -> None:
    # What torchrun would have set, for one node.
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
        GROUP_RANK="0",
        MASTER_ADDR=addr,
        MASTER_PORT=str(port),
    )
    _init(backend, timeout)
    try:
        _call(fn, local_rank, args, async_backend)
    except BaseException:
        # When one rank fails, the others fail next in a collective ("connection reset"): the time tells
        # which error came first, the one worth reporting. Sent at once: the parent may soon kill this process.
        failures.put((time.time(), local_rank, traceback.format_exc()))
        raise
    finally:
        _destroy_group()


class Parallel:
    """Run ``fn(local_rank, *args)`` in a distributed job, or in this process alone.

    - ``backend=None``: no torch.distributed; ``run`` calls ``fn(0, *args)`` here.
    - launched by torchrun (``RANK``, ``WORLD_SIZE``... in the environment): the process group is set up from
      them with ``backend`` (``"gloo"`` on CPUs, ``"nccl"`` on GPUs) and ``run`` calls ``fn(local_rank, *args)``.
    - ``nproc_per_node=n`` without torchrun: ``run`` spawns n workers on this node (127.0.0.1, a free port)
      with torch.multiprocessing; if one fails, the others are stopped and ``run`` raises its error.

    ``fn`` may be ``async def``: it then runs under ``anyio.run`` with ``async_backend``. ``timeout`` bounds
    every collective: a rank that stops answering fails the others instead of hanging them.

    >>> def main(local_rank, greeting):
    ...     print(greeting, local_rank)
    >>> with Parallel() as parallel:  # no backend: this process alone
    ...     parallel.run(main, "hello from rank")
    hello from rank 0
    """

    def __init__(
        self,
        backend: str | None = None,
        nproc_per_node: int | None = None,
        *,
        master_addr: str = "127.0.0.1",
        master_port: int | None = None,
        timeout: timedelta = timedelta(minutes=10),
        async_backend: str = "asyncio",
    ) -> None:
        if backend is not None and backend not in _BACKENDS:
            raise ValueError(f"backend must be None, 'gloo' or 'nccl', got {backend!r}")
        if backend == "nccl" and not torch.cuda.is_available():
            raise ValueError("backend 'nccl' needs CUDA GPUs, and none is available: use 'gloo' on CPUs")
        if nproc_per_node is not None:
            if backend is None:
                raise ValueError("nproc_per_node needs a backend ('gloo' or 'nccl') for the workers to talk over")
            if isinstance(nproc_per_node, bool) or not isinstance(nproc_per_node, int) or nproc_per_node < 1:
                raise ValueError(f"nproc_per_node must be a positive integer, got {nproc_per_node!r}")
            if all(v in os.environ for v in _TORCHRUN_VARS):
                raise ValueError("launched by torchrun already: drop nproc_per_node (torchrun started the workers)")
        if not isinstance(timeout, timedelta):
            raise TypeError(f"timeout must be a datetime.timedelta, got {type(timeout).__name__}")
        self.backend = backend
        self.nproc_per_node = nproc_per_node
        self.master_addr = master_addr
        self.master_port = master_port
        self.timeout = timeout
        self.async_backend = async_backend
        self._owns_group = False

    def __enter__(self) -> Parallel:
        if self.backend is not None and self.nproc_per_node is None and not dist.is_initialized():
            missing = [v for v in _TORCHRUN_VARS if v not in os.environ]
            if missing:
                raise RuntimeError(
                    f"Parallel(backend={self.backend!r}) expects torchrun's environment, but {missing} are not "
                    "set: launch with torchrun, or give nproc_per_node to spawn workers here"
                )
            _init(self.backend, self.timeout)
            self._owns_group = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owns_group:
            self._owns_group = False
            _destroy_group()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(local_rank, *args)`` on every rank; its return value here (None for spawned workers)."""
        if not callable(fn):
            raise TypeError(f"Parallel.run takes a function, got {fn!r}")
        if self.nproc_per_node is None:
            return _call(fn, get_local_rank(), args, self.async_backend)
        assert self.backend is not None
        port = self.master_port or free_port()
        worker_args = (fn, args, self.nproc_per_node, self.master_addr, port, self.backend, self.timeout)
        failures = get_context("spawn").SimpleQueue()
        try:
            start_processes(  # type: ignore[no-untyped-call]
                _spawned,
                args=(*worker_args, self.async_backend, failures),
                nprocs=self.nproc_per_node,
                join=True,
                start_method="spawn",
            )
        except ProcessRaisedException as exc:
            reports = []
            while not failures.empty():
                reports.append(failures.get())
            if not reports:
                raise
            _, rank, trace = min(reports)
            raise RuntimeError(f"rank {rank} failed first (the other ranks' errors follow from it):\n{trace}") from exc
        return None
