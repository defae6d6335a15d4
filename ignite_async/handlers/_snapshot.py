"""Snapshots of state dicts that later training cannot change, taken without stalling a GPU.

A snapshot copies every tensor of a (nested) state dict to the CPU. CPU tensors are copied at once (into a
spare buffer of the same shape and dtype when one is given: writing memory already in use is several times
faster than allocating it). CUDA tensors are copied into pinned CPU buffers with ``non_blocking=True`` on a
side stream that first waits for an event recorded on the training stream at the call, so the host goes on
at once while the copy runs; the training stream in turn waits (on the GPU, not the host) for the copy's
event before its later kernels, so a step that overwrites the weights cannot race the copy. Whoever reads the
snapshot calls :meth:`StateSnapshot.result` (a worker thread) or ``await`` :meth:`StateSnapshot.ready`
first. Where CUDA or pinned memory is unavailable, device tensors are copied synchronously (the CPU path).
"""

from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

import anyio.to_thread
import torch

__all__ = ["StateSnapshot", "copy_path", "snapshot_state"]

CopyPath = Literal["cpu", "cuda"]


@functools.cache
def _can_pin() -> bool:
    """Whether pinned (page-locked) CPU memory can be allocated: it needs a CUDA (or other accelerator) build."""
    try:
        torch.empty(1, pin_memory=True)
    except RuntimeError:
        return False
    return True


def copy_path(device: torch.device) -> CopyPath:
    """How a tensor on ``device`` is snapshot: ``"cuda"`` (pinned buffers, non-blocking copies on a side
    stream) or ``"cpu"`` (a synchronous copy).

    >>> copy_path(torch.device("cpu"))
    'cpu'
    """
    if device.type == "cuda" and torch.cuda.is_available() and _can_pin():
        return "cuda"
    return "cpu"


_side_streams: dict[int, Any] = {}  # device index -> its snapshot stream: created once, streams are costly


def _side_stream(device: torch.device) -> Any:
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _side_streams:
        _side_streams[index] = torch.cuda.Stream(device=index)  # type: ignore[no-untyped-call]
    return _side_streams[index]


class StateSnapshot:
    """A snapshot taken by :func:`snapshot_state`: its copies may still be running on a GPU.

    :ivar path: ``"cuda"`` if some tensor was copied from a GPU without blocking, else ``"cpu"``.
    """

    def __init__(self, state: Any, events: list[Any]) -> None:
        self._state = state
        self._events = events  # one CUDA event per device copied from: set once its copies are done
        self.path: CopyPath = "cuda" if events else "cpu"

    def done(self) -> bool:
        """Whether every copy has finished (never waits)."""
        return all(event.query() for event in self._events)

    def result(self) -> Any:
        """The copied state, once every copy has finished: blocks the calling thread until then (a worker's;
        on the event loop, await :meth:`ready`)."""
        for event in self._events:
            event.synchronize()
        return self._state

    async def ready(self) -> Any:
        """The copied state, once every copy has finished, without blocking the event loop."""
        if not self.done():
            await anyio.to_thread.run_sync(self.result)
        return self._state


class _Copier:
    def __init__(self, copy_cpu: bool) -> None:
        self.copy_cpu = copy_cpu
        self.streams: dict[torch.device, Any] = {}  # device -> side stream, waiting on the training stream

    def tensor(self, value: torch.Tensor, spare: Any) -> torch.Tensor:
        value = value.detach()
        fits = (
            isinstance(spare, torch.Tensor)
            and spare.shape == value.shape
            and spare.dtype == value.dtype
            and spare.device.type == "cpu"
            and spare.layout == value.layout == torch.strided
        )
        if value.device.type == "cpu":
            if not self.copy_cpu:
                return value
            return spare.copy_(value) if fits else value.to("cpu", copy=True)
        if value.layout != torch.strided or copy_path(value.device) != "cuda":
            return value.to("cpu", copy=True)  # the CPU path: a synchronous copy
        stream = self.streams.get(value.device)
        if stream is None:
            stream = self.streams[value.device] = _side_stream(value.device)
            fired = torch.cuda.Event()  # type: ignore[no-untyped-call]
            fired.record(torch.cuda.current_stream(value.device))  # the state at the call: all work enqueued
            stream.wait_event(fired)
        buffer = spare if fits and spare.is_pinned() else torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        with torch.cuda.stream(stream):
            buffer.copy_(value, non_blocking=True)
        value.record_stream(stream)  # its memory is not reused by the allocator before the copy has read it
        return buffer

    def copy(self, value: Any, spare: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self.tensor(value, spare)
        if isinstance(value, Mapping):
            spares = spare if isinstance(spare, Mapping) else {}
            items = [(k, self.copy(v, spares.get(k))) for k, v in value.items()]
            return OrderedDict(items) if isinstance(value, OrderedDict) else dict(items)
        if isinstance(value, (list, tuple)):
            same_length = isinstance(spare, (list, tuple)) and len(spare) == len(value)
            copied = [self.copy(v, spare[i] if same_length else None) for i, v in enumerate(value)]
            return copied if isinstance(value, list) else tuple(copied)
        return copy.deepcopy(value) if self.copy_cpu else value

    def finish(self) -> list[Any]:
        events = []
        for device, stream in self.streams.items():
            copied = torch.cuda.Event()  # type: ignore[no-untyped-call]
            copied.record(stream)
            # The training stream's later kernels (an optimizer step overwriting the weights) run after the copy:
            # the GPU waits for it, the host does not.
            torch.cuda.current_stream(device).wait_event(copied)
            events.append(copied)
        return events


def snapshot_state(state: Any, spare: Any = None, *, copy_cpu: bool = True) -> StateSnapshot:
    """Snapshot ``state`` (a tensor, or mappings, lists and tuples of them and of other values) to the CPU.

    :param spare: a previous snapshot's state (``StateSnapshot.result()``) nobody reads any more: its tensors
        take the copies where shapes and dtypes match (pinned ones for CUDA tensors), instead of new memory.
    :param copy_cpu: False to reference CPU tensors and other values as they are instead of copying them, for
        a caller that reads the snapshot before anything can change them (a blocking save).
    :returns: the snapshot; read it through :meth:`StateSnapshot.result` or :meth:`StateSnapshot.ready`.

    >>> weights = {"w": torch.zeros(2)}
    >>> snapshot = snapshot_state(weights)
    >>> weights["w"].add_(1.0)
    tensor([1., 1.])
    >>> snapshot.path, snapshot.result()["w"]
    ('cpu', tensor([0., 0.]))
    """
    copier = _Copier(copy_cpu)
    copied = copier.copy(state, spare)
    return StateSnapshot(copied, copier.finish())
