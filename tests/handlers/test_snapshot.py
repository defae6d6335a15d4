"""snapshot_state: copies later training cannot change; pinned non-blocking copies on CUDA, the CPU path elsewhere."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from ignite_async.handlers import _snapshot
from ignite_async.handlers._snapshot import copy_path, snapshot_state

pytestmark = pytest.mark.anyio

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_the_snapshot_holds_the_state_at_the_call_not_later(device: str) -> None:
    weights = OrderedDict(w=torch.arange(1 << 16, dtype=torch.float32, device=device), step=3)
    snapshot = snapshot_state({"model": weights, "history": [1.5, (torch.ones(2, device=device),)]})
    weights["w"].mul_(-1.0)  # on the training stream, right after the call
    weights["step"] = 4
    state = snapshot.result()
    assert snapshot.done()
    assert snapshot.path == ("cuda" if device == "cuda" else "cpu")
    assert isinstance(state["model"], OrderedDict)
    assert state["model"]["step"] == 3
    assert state["model"]["w"].device.type == "cpu"
    assert torch.equal(state["model"]["w"], torch.arange(1 << 16, dtype=torch.float32))
    assert isinstance(state["history"][1], tuple)
    assert torch.equal(state["history"][1][0], torch.ones(2))


@pytest.mark.parametrize("device", DEVICES)
def test_a_spare_snapshot_takes_the_next_copy_in_its_own_memory(device: str) -> None:
    weights = {"w": torch.zeros(64, 64, device=device), "b": torch.zeros(3, device=device)}
    first = snapshot_state(weights).result()
    weights["w"].fill_(2.0)
    weights["b"] = torch.zeros(5, device=device)  # another shape: new memory for it
    second = snapshot_state(weights, spare=first).result()
    assert second["w"].data_ptr() == first["w"].data_ptr()
    assert torch.all(second["w"] == 2.0)
    assert second["b"].shape == (5,)
    assert second["b"].data_ptr() != first["b"].data_ptr()
    assert second["w"].is_pinned() == (device == "cuda")  # pinned buffers for device copies only


def test_cpu_tensors_are_referenced_when_asked_not_to_copy() -> None:
    weights = {"w": torch.zeros(4), "meta": {"owner": object()}}
    snapshot = snapshot_state(weights, copy_cpu=False)
    assert snapshot.path == "cpu"
    assert snapshot.result()["w"] is not weights["w"]  # detached: a view of the same memory
    assert snapshot.result()["w"].data_ptr() == weights["w"].data_ptr()
    assert snapshot.result()["meta"]["owner"] is weights["meta"]["owner"]  # not deep-copied
    assert snapshot_state(weights).result()["meta"]["owner"] is not weights["meta"]["owner"]


def test_without_cuda_or_pinned_memory_the_cpu_path_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda", 0)
    assert copy_path(torch.device("cpu")) == "cpu"
    assert copy_path(torch.device("meta")) == "cpu"
    # Availability is patched only to check the choice; no copy is made with it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert copy_path(cuda) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(_snapshot, "_can_pin", lambda: False)
    assert copy_path(cuda) == "cpu"
    monkeypatch.setattr(_snapshot, "_can_pin", lambda: True)
    assert copy_path(cuda) == "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_on_a_machine_without_cuda_snapshots_take_the_cpu_path() -> None:
    assert not _snapshot._can_pin()  # a CPU-only torch has no pinned memory allocator
    assert copy_path(torch.device("cuda")) == "cpu"
    snapshot = snapshot_state({"w": torch.ones(8)})
    assert snapshot.path == "cpu"
    assert snapshot.done()
    assert not snapshot.result()["w"].is_pinned()


async def test_ready_waits_without_blocking_the_loop() -> None:
    weights = {"w": torch.ones(3)}
    snapshot = snapshot_state(weights)
    weights["w"].zero_()
    state = await snapshot.ready()
    assert torch.equal(state["w"], torch.ones(3))
