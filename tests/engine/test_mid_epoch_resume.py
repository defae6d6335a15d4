"""A run resumed from a state saved in the middle of an epoch over a map-style DataLoader sees the same batches,
and ends with the same weights, as an uninterrupted run; the batches already used are never loaded again."""

from __future__ import annotations

import importlib.util
import io
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, TensorDataset

from ignite_async import Engine, Events
from ignite_async.handlers import Checkpoint, DiskSaver, RNGStates

pytestmark = pytest.mark.anyio


class Indices(Dataset[torch.Tensor]):
    """Item i is tensor(i); counts the items loaded."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.loaded: list[int] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        self.loaded.append(i)
        return torch.tensor(i)


def recording(seen: list[Any]) -> Engine:
    def step(engine: Engine, batch: torch.Tensor) -> None:
        torch.rand(3)  # the step draws from torch's default generator, as dropout would
        seen.append(batch.tolist())

    return Engine(step)


def save_and_stop(engine: Engine, at: int, saved: list[bytes]) -> None:
    def handler(e: Engine) -> None:
        buffer = io.BytesIO()
        torch.save({"trainer": e.state_dict(), "rng": torch.get_rng_state()}, buffer)
        saved.append(buffer.getvalue())
        e.terminate()

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=at), handler)


async def resumed_batches(make_loader: Callable[[], Any], stop: int, max_epochs: int, **run: Any) -> list[Any]:
    """The batches of a run over ``make_loader()`` stopped after iteration ``stop`` and resumed by a new engine."""
    first: list[Any] = []
    saved: list[bytes] = []
    engine = recording(first)
    save_and_stop(engine, stop, saved)
    torch.manual_seed(5)
    await engine.run(make_loader(), max_epochs=max_epochs, **run)
    assert len(first) == stop
    torch.manual_seed(999)  # undone by the saved RNG state
    checkpoint = torch.load(io.BytesIO(saved[0]), weights_only=True)
    later: list[Any] = []
    engine = recording(later)
    engine.load_state_dict(checkpoint["trainer"])
    torch.set_rng_state(checkpoint["rng"])
    await engine.run(make_loader())
    return first + later


async def uninterrupted_batches(make_loader: Callable[[], Any], max_epochs: int, **run: Any) -> list[Any]:
    seen: list[Any] = []
    torch.manual_seed(5)
    await recording(seen).run(make_loader(), max_epochs=max_epochs, **run)
    return seen


def loader_with(n: int = 11, **kwargs: Any) -> Callable[[], DataLoader[torch.Tensor]]:
    return lambda: DataLoader(Indices(n), **kwargs)


CASES = {
    "sequential": loader_with(batch_size=3),
    "shuffled": loader_with(batch_size=3, shuffle=True),
    "shuffled-drop_last": loader_with(batch_size=3, shuffle=True, drop_last=True),
    "sequential-drop_last": loader_with(batch_size=3, drop_last=True),
    "shuffled-own-generator": lambda: DataLoader(
        Indices(11), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(3)
    ),
    "replacement-sampler-generator": lambda: DataLoader(
        Indices(11),
        batch_size=2,
        sampler=torch.utils.data.RandomSampler(
            range(11), replacement=True, num_samples=40, generator=torch.Generator().manual_seed(4)
        ),
    ),
    "no-batching": loader_with(batch_size=None, shuffle=True),
    "distributed": lambda: DataLoader(
        Indices(11), batch_size=2, sampler=DistributedSampler(range(11), num_replicas=2, rank=0, shuffle=True, seed=1)
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_resumed_batches_equal_an_uninterrupted_runs(case: str) -> None:
    make = CASES[case]
    length = len(make())
    reference = await uninterrupted_batches(make, 3)
    assert len(reference) == 3 * length
    rng = random.Random(case)
    for stop in sorted({rng.randrange(1, length), rng.randrange(length + 1, 2 * length), length}):
        assert await resumed_batches(make, stop, 3) == reference, f"stopped after iteration {stop}"


async def test_resumed_batches_with_workers() -> None:
    make = loader_with(n=9, batch_size=2, shuffle=True, num_workers=2)
    reference = await uninterrupted_batches(make, 2)
    assert await resumed_batches(make, 7, 2) == reference  # in the second epoch, after an odd number of batches


async def test_a_resumed_pass_of_persistent_workers() -> None:
    # Passes after a persistent workers' first are reset, not rebuilt (no new worker seed): replayed as such.
    made: list[DataLoader[torch.Tensor]] = []

    def make() -> DataLoader[torch.Tensor]:
        generator = torch.Generator().manual_seed(2)
        settings: dict[str, Any] = {"num_workers": 2, "persistent_workers": True, "generator": generator}
        made.append(DataLoader(Indices(9), batch_size=2, shuffle=True, **settings))
        return made[-1]

    try:
        reference = await uninterrupted_batches(make, 3)
        assert await resumed_batches(make, 12, 3) == reference  # in the third pass
    finally:
        for loader in made:  # workers left mid-pass take seconds to stop when collected
            if loader._iterator is not None:
                loader._iterator._shutdown_workers()  # type: ignore[attr-defined]


@pytest.mark.parametrize("epoch_length", [3, 10])
async def test_epoch_length_other_than_the_loaders(epoch_length: int) -> None:
    # The iterator runs across epochs (3) or restarts mid-epoch (10): the position is within the loader's pass.
    make = loader_with(n=14, batch_size=2, shuffle=True)
    reference = await uninterrupted_batches(make, 4, epoch_length=epoch_length)
    for stop in (2, 5, 9, 11):
        assert await resumed_batches(make, stop, 4, epoch_length=epoch_length) == reference, stop


async def test_the_batches_already_used_are_never_loaded() -> None:
    dataset = Indices(12)
    saved: list[bytes] = []
    engine = recording([])
    save_and_stop(engine, 3, saved)
    torch.manual_seed(0)
    await engine.run(DataLoader(dataset, batch_size=2, shuffle=True), max_epochs=1)
    used = list(dataset.loaded)
    assert len(used) == 6
    checkpoint = torch.load(io.BytesIO(saved[0]), weights_only=True)
    fresh = Indices(12)
    later: list[Any] = []
    engine = recording(later)
    engine.load_state_dict(checkpoint["trainer"])
    await engine.run(DataLoader(fresh, batch_size=2, shuffle=True))
    assert sorted(fresh.loaded) == sorted(set(range(12)) - set(used))  # only the remaining 6 indices
    assert sorted(fresh.loaded) == sorted(i for batch in later for i in batch)


class Stream(IterableDataset[torch.Tensor]):
    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(torch.arange(8).split(2))


async def test_unpositionable_data_keeps_starting_from_its_beginning() -> None:
    for data in (lambda: DataLoader(Stream(), batch_size=None), lambda: iter(torch.arange(8).split(2))):
        saved: list[bytes] = []
        engine = recording([])
        save_and_stop(engine, 2, saved)
        await engine.run(data(), epoch_length=4, max_epochs=1)
        state = torch.load(io.BytesIO(saved[0]), weights_only=True)["trainer"]
        assert "data_pass" not in state
        later: list[Any] = []
        engine = recording(later)
        engine.load_state_dict(state)
        await engine.run(data())
        assert later == [[0, 1], [2, 3]]  # as before: a fresh pass, from the start


async def test_a_state_dict_without_data_pass_resumes_as_before() -> None:
    later: list[Any] = []
    engine = recording(later)
    engine.load_state_dict({"epoch_length": 4, "iteration": 2, "max_epochs": 1})
    await engine.run(DataLoader(Indices(8), batch_size=2))
    assert later == [[0, 1], [2, 3]]


async def test_a_state_saved_at_an_epochs_end_starts_the_next_pass_afresh() -> None:
    make = loader_with(n=8, batch_size=2, shuffle=True)
    assert await resumed_batches(make, 4, 2) == await uninterrupted_batches(make, 2)


def test_bad_data_pass_is_refused_naming_it() -> None:
    engine = Engine(lambda e, b: None)
    with pytest.raises(ValueError, match="data_pass"):
        engine.load_state_dict({"epoch_length": 4, "iteration": 2, "max_epochs": 1, "data_pass": {"epoch": 0}})
    with pytest.raises(ValueError, match="start_iteration"):
        engine.load_state_dict(
            {
                "epoch_length": 4,
                "iteration": 2,
                "max_epochs": 1,
                "data_pass": {"epoch": 0, "start_iteration": 3, "rng": {}},
            }
        )
    assert engine.state.iteration == 0  # nothing was loaded


# ---------------------------------------------------------------- a training resumed from its newest checkpoint


def training(seed: int) -> tuple[Engine, nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(engine: Engine, batch: list[torch.Tensor]) -> float:
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return Engine(step), model, optimizer


def samples() -> DataLoader[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(123)
    return DataLoader(TensorDataset(torch.randn(22, 4, generator=g), torch.randn(22, 1, generator=g)), 4, shuffle=True)


@pytest.mark.parametrize("n_saved", [None, 2])
async def test_training_resumed_mid_epoch_ends_bitwise_equal(tmp_path: Path, n_saved: int | None) -> None:
    engine, model, _ = training(0)
    torch.manual_seed(7)
    await engine.run(samples(), max_epochs=3)
    uninterrupted = {k: v.clone() for k, v in model.state_dict().items()}

    stop = random.Random(n_saved).choice([i for i in range(7, 18) if i % 6])  # mid-epoch, in epoch 2 or 3
    engine, model, optimizer = training(0)
    torch.manual_seed(7)
    to_save = {"model": model, "optimizer": optimizer, "trainer": engine, "rng": RNGStates()}
    checkpointer = Checkpoint(to_save, DiskSaver(tmp_path), n_saved=n_saved)
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=1), checkpointer)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=stop), lambda e: e.terminate())
    await engine.run(samples(), max_epochs=3)
    torch.manual_seed(999)

    engine, model, optimizer = training(1)  # fresh objects, other initial weights
    to_load = {"model": model, "optimizer": optimizer, "trainer": engine, "rng": RNGStates()}
    assert checkpointer.last_checkpoint is not None
    Checkpoint.load_objects(to_load, checkpointer.last_checkpoint)
    assert engine.state.iteration == stop
    await engine.run(samples())
    resumed = model.state_dict()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_a_killed_training_resumed_from_its_newest_checkpoint_ends_bitwise_equal(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("_resume_worker.py")
    spec = importlib.util.spec_from_file_location("_resume_worker", worker)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir()
    killed.mkdir()
    anyio.run(module.main, str(whole), "run", 0)  # uninterrupted, here

    kill_at = random.Random(13).choice([i for i in range(7, 18) if i % 6])  # mid-epoch, in epoch 2 or 3
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, str(worker), str(killed), "run", str(kill_at)]
    assert subprocess.run(command, env=env, timeout=120, check=False).returncode == -signal.SIGKILL
    assert not (killed / "final.pt").exists()
    anyio.run(module.main, str(killed), "resume", 0)  # here, from the killed process's newest checkpoint
    expected = torch.load(whole / "final.pt", weights_only=True)
    resumed = torch.load(killed / "final.pt", weights_only=True)
    assert all(torch.equal(resumed[k], expected[k]) for k in expected)
