"""Checkpoint and DiskSaver: pytorch-ignite's names and retention, consistent snapshots, crash safety, exact resume."""

from __future__ import annotations

import errno
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import Checkpoint as IgniteCheckpoint
from ignite.handlers import DiskSaver as IgniteDiskSaver
from torch import nn

from ignite_async import Engine, Events, InterruptHandlerError
from ignite_async.handlers import (
    BaseSaveHandler,
    Checkpoint,
    CheckpointEvents,
    CheckpointInUseError,
    DiskSaver,
    ModelCheckpoint,
    RNGStates,
)
from tests.conftest import checkpoint_files, fill

pytestmark = pytest.mark.anyio


def model_with(value: float) -> nn.Module:
    model = nn.Linear(3, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


# ---------------------------------------------------------------- names and retention, against pytorch-ignite


def random_config(rng: random.Random) -> dict[str, Any]:
    config: dict[str, Any] = {
        "n_saved": rng.choice([1, 2, 3, None]),
        "filename_prefix": rng.choice(["", "run"]),
        "greater_or_equal": rng.random() < 0.3,
        "include_self": rng.random() < 0.3,
    }
    kind = rng.choice(["step", "score", "score_name", "score_and_step"])
    if kind != "step":
        config["score_function"] = "scores"
    if kind in ("score_name", "score_and_step"):
        config["score_name"] = "acc"
    if kind == "score_and_step" or rng.random() < 0.2:
        config["global_step_transform"] = "epoch"
    return config


@pytest.mark.parametrize("seed", range(12))
async def test_same_files_as_ignite(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    epochs = rng.randint(2, 7)
    scores = [rng.choice([0.1, 0.5, 0.5, 0.9, 0.3, 0.7]) for _ in range(epochs)]
    config = random_config(rng)
    two_objects = rng.random() < 0.5

    def build(lib_checkpoint: Any, saver: Any, model: nn.Module, opt: Any) -> Any:
        kwargs = dict(config)
        if "score_function" in kwargs:
            kwargs["score_function"] = lambda e: scores[e.state.epoch - 1]
        if "global_step_transform" in kwargs:
            kwargs["global_step_transform"] = lambda e, _: e.state.epoch
        to_save = {"model": model, "opt": opt} if two_objects else {"model": model}
        return lib_checkpoint(to_save, saver, **kwargs)

    torch.manual_seed(seed)
    ref_model = nn.Linear(3, 2)
    ours_model = nn.Linear(3, 2)
    ours_model.load_state_dict(ref_model.state_dict())

    def trainer_step(model: nn.Module) -> Any:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def step(engine: Any, batch: float) -> None:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(batch)

        return step, opt

    step, opt = trainer_step(ref_model)
    ref = IgniteEngine(step)
    ref_handler = build(IgniteCheckpoint, IgniteDiskSaver(tmp_path / "ignite"), ref_model, opt)
    ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, ref_handler)
    ref.run([0.5, 1.0], max_epochs=epochs)

    step, opt = trainer_step(ours_model)
    ours = Engine(step)
    handler = build(Checkpoint, DiskSaver(tmp_path / "ours"), ours_model, opt)
    ours.add_event_handler(Events.EPOCH_COMPLETED, handler)
    await ours.run([0.5, 1.0], max_epochs=epochs)

    ref_files = sorted(p.name for p in (tmp_path / "ignite").iterdir())
    our_files = checkpoint_files(tmp_path / "ours")
    assert our_files == ref_files
    assert Path(str(handler.last_checkpoint)).name == Path(str(ref_handler.last_checkpoint)).name
    for name in ref_files:
        theirs = torch.load(tmp_path / "ignite" / name, weights_only=True)
        mine = torch.load(tmp_path / "ours" / name, weights_only=True)
        assert sorted(mine) == sorted(theirs)
        # One object: the file is its state dict (plus "checkpointer" with include_self); else a dict of them.
        ref_state, our_state = (theirs["model"], mine["model"]) if two_objects else (theirs, mine)
        assert all(torch.equal(our_state[k], ref_state[k]) for k in ("weight", "bias"))
        if config["include_self"]:
            assert mine["checkpointer"] == theirs["checkpointer"]


# ---------------------------------------------------------------- snapshots and non-blocking writes


class GatedSaver(BaseSaveHandler):
    """Writes to memory, each write held until the test lets it through: a very slow disk."""

    def __init__(self) -> None:
        self.files: dict[str, Any] = {}
        self.gate = threading.Event()
        self.writing = threading.Event()

    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        self.writing.set()
        self.gate.wait(timeout=30)
        self.files[filename] = checkpoint

    def remove(self, filename: str) -> None:
        del self.files[filename]


async def test_the_file_holds_the_state_at_the_firing_not_later(tmp_path: Path) -> None:
    model = model_with(0.0)
    engine = Engine(lambda e, b: None)
    checkpointer = Checkpoint({"model": model, "trainer": engine}, DiskSaver(tmp_path), n_saved=None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)

    @engine.on(Events.EPOCH_COMPLETED)
    def mutate_right_after_the_firing(engine: Engine) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(1000.0 + engine.state.epoch)

    @engine.on(Events.EPOCH_STARTED)
    def set_epoch_weights(engine: Engine) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(engine.state.epoch))

    await engine.run([0, 1, 2], max_epochs=3)
    for epoch in (1, 2, 3):
        content = torch.load(tmp_path / f"checkpoint_{3 * epoch}.pt", weights_only=True)
        assert all(torch.all(t == float(epoch)) for t in content["model"].values())
        assert content["trainer"]["iteration"] == 3 * epoch


async def test_training_goes_on_while_a_write_is_in_flight_and_waits_for_the_next() -> None:
    saver = GatedSaver()
    model = model_with(1.0)
    during_write: list[int] = []

    async def step(engine: Engine, batch: int) -> None:
        await anyio.lowlevel.checkpoint()
        if saver.writing.is_set() and not saver.gate.is_set():
            during_write.append(engine.state.iteration)
            if len(during_write) == 5:
                saver.gate.set()

    engine = Engine(step)
    checkpointer = Checkpoint({"model": model}, saver, n_saved=2)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=[1, 30]), checkpointer)
    state = await engine.run(range(40))
    # While the first write was held, five more iterations ran (once its thread had started).
    assert len(during_write) == 5
    assert during_write == list(range(during_write[0], during_write[0] + 5))
    assert state.iteration == 40
    assert sorted(saver.files) == ["model_1.pt", "model_30.pt"]  # both durable by COMPLETED


async def test_a_failed_write_fails_the_run_and_leaves_no_checkpoint_looking_file(tmp_path: Path) -> None:
    class Unpicklable:
        def state_dict(self) -> dict[str, Any]:
            return {"fn": threading.Lock()}  # torch.save cannot pickle a lock

    engine = Engine(lambda e, b: None)
    engine.add_event_handler(
        Events.EPOCH_COMPLETED, Checkpoint({"model": model_with(1.0), "bad": Unpicklable()}, DiskSaver(tmp_path))
    )
    with pytest.raises(TypeError) as info:
        await engine.run([0, 1])
    assert not isinstance(info.value, BaseExceptionGroup)
    assert os.listdir(tmp_path) == [".checkpoint.lock"]  # neither a .pt file nor a temporary one


async def test_final_checkpoint_on_cancellation(tmp_path: Path) -> None:
    model = model_with(0.0)

    async def step(engine: Engine, batch: int) -> None:
        await anyio.lowlevel.checkpoint()  # where the cancellation lands, before this step changes anything
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(engine.state.iteration))

    engine = Engine(step)
    checkpointer = Checkpoint({"model": model, "trainer": engine}, DiskSaver(tmp_path), filename_prefix="final")
    engine.add_event_handler(Events.INTERRUPT, checkpointer)
    with anyio.CancelScope() as scope:
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=7), lambda: scope.cancel())
        await engine.run(range(100))
    assert scope.cancelled_caught
    assert checkpointer.last_checkpoint == tmp_path / "final_checkpoint_7.pt"
    content = torch.load(tmp_path / "final_checkpoint_7.pt", weights_only=True)
    assert content["trainer"]["iteration"] == engine.state.iteration == 7  # resumable from here
    assert all(torch.all(t == 7.0) for t in content["model"].values())


# ---------------------------------------------------------------- crash safety


@pytest.mark.timeout(400)  # 20 worker processes each import torch: a minute alone, more on a loaded machine
def test_sigkill_at_random_moments_never_leaves_a_bad_newest_checkpoint(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("_checkpoint_worker.py")
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    left_partial: list[Path] = []
    for attempt in range(20):
        with subprocess.Popen(
            [sys.executable, str(worker), str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
        ) as proc:
            try:
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready", f"worker {attempt} did not start"
                # The worker started, so it removed what the previous one left half-written.
                assert not any(p.exists() for p in left_partial)
                time.sleep(rng.uniform(0.0, 0.3))  # a random moment to kill at, not a synchronisation
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
        checkpoints = sorted(tmp_path.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        assert checkpoints, f"no checkpoint after kill {attempt}"
        newest = checkpoints[-1]
        step = float(newest.stem.split("_")[1])
        restored = nn.Sequential(*(nn.Linear(512, 512) for _ in range(4)))  # the worker's model
        Checkpoint.load_objects({"model": restored}, newest)
        assert all(torch.all(p == step) for p in restored.parameters()), f"{newest.name} is incomplete"
        left_partial = list(tmp_path.glob(".*.partial"))


# ---------------------------------------------------------------- exact resume


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def training(seed: int = 0) -> tuple[Engine, nn.Module, Any, Any]:
    torch.manual_seed(seed)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)

    def step(engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    engine = Engine(step)
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda: scheduler.step())
    return engine, model, optimizer, scheduler


def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(123)
    return [(torch.randn(8, 4, generator=g), torch.randn(8, 1, generator=g)) for _ in range(5)]


async def test_resume_from_a_checkpoint_ends_bitwise_equal_to_an_uninterrupted_run(tmp_path: Path) -> None:
    engine, model, _, _ = training()
    torch.manual_seed(7)
    await engine.run(data(), max_epochs=6)
    uninterrupted = {k: v.clone() for k, v in model.state_dict().items()}

    engine, model, optimizer, scheduler = training()
    torch.manual_seed(7)
    to_save = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "trainer": engine, "rng": RNGStates()}
    checkpointer = Checkpoint(to_save, DiskSaver(tmp_path), n_saved=1)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    engine.add_event_handler(Events.EPOCH_COMPLETED(once=3), lambda e: e.terminate())  # "killed" after epoch 3
    await engine.run(data(), max_epochs=6)
    torch.manual_seed(999)  # whatever happens in between is undone by the checkpoint's RNG states

    engine, model, optimizer, scheduler = training(seed=1)  # fresh objects, other initial weights
    to_load = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "trainer": engine, "rng": RNGStates()}
    Checkpoint.load_objects(to_load, tmp_path / "checkpoint_15.pt")
    assert (engine.state.epoch, engine.state.iteration) == (3, 15)
    await engine.run(data(), max_epochs=6)
    resumed = model.state_dict()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


# ---------------------------------------------------------------- loading and bad input


async def test_single_object_checkpoints_and_model_checkpoint(tmp_path: Path) -> None:
    handler = ModelCheckpoint(tmp_path, "net", n_saved=2)
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.EPOCH_COMPLETED, handler, {"model": model_with(3.0)})
    await engine.run([0], max_epochs=3)
    assert checkpoint_files(tmp_path) == ["net_model_2.pt", "net_model_3.pt"]
    restored = model_with(0.0)
    Checkpoint.load_objects({"model": restored}, handler.last_checkpoint)  # type: ignore[arg-type]
    assert all(torch.all(p == 3.0) for p in restored.parameters())


def test_load_errors_name_the_problem_and_load_nothing(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model_with(2.0).state_dict()}, path)
    model, other = model_with(0.0), model_with(0.0)
    with pytest.raises(ValueError, match=r"lacks \['optimizer'\]"):
        Checkpoint.load_objects({"model": model, "optimizer": torch.optim.SGD(other.parameters(), lr=1)}, path)
    assert all(torch.all(p == 0.0) for p in model.parameters())  # nothing was loaded

    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt is truncated or corrupt"):
        Checkpoint.load_objects({"model": model}, truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match=r"garbage\.pt is truncated or corrupt"):
        Checkpoint.load_objects({"model": model}, garbage)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Checkpoint.load_objects({"model": model}, tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="has no load_state_dict"):
        Checkpoint.load_objects({"model": object()}, path)


def test_bad_arguments(tmp_path: Path) -> None:
    # A list is a list of objects to save (pytorch-ignite's nested to_save): the item that cannot be is named.
    with pytest.raises(TypeError, match=r"'data'\[0\] \(int\) has no state_dict"):
        Checkpoint({"model": model_with(0.0), "data": [1, 2]}, DiskSaver(tmp_path))
    with pytest.raises(ValueError, match="n_saved must be an integer >= 1"):
        Checkpoint({"model": model_with(0.0)}, DiskSaver(tmp_path), n_saved=0)
    (tmp_path / "old.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"already holds \['old.pt'\]"):
        DiskSaver(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match=r"cannot create checkpoint directory .*a-file/sub"):
        DiskSaver(blocker / "sub")


async def test_a_score_that_is_not_a_number_fails_the_run(tmp_path: Path) -> None:
    def accuracy(engine: Engine) -> str:
        return "great"

    engine = Engine(lambda e, b: None)
    engine.add_event_handler(
        Events.EPOCH_COMPLETED, Checkpoint({"model": model_with(0.0)}, DiskSaver(tmp_path), score_function=accuracy)
    )
    with pytest.raises(TypeError, match=r"accuracy.*'great'.*need a number"):
        await engine.run([0])


async def test_handlers_schedulers_scalers_and_the_checkpoint_itself_round_trip(tmp_path: Path) -> None:
    from ignite_async.handlers import EarlyStopping, LRScheduler

    def objects() -> dict[str, Any]:
        model = model_with(1.0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = Engine(lambda e, b: None)
        return {
            "trainer": trainer,
            "scheduler": LRScheduler(torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)),
            "stopper": EarlyStopping(patience=3, score_function=lambda e: 0.0, trainer=trainer),
            "scaler": torch.amp.GradScaler("cpu", init_scale=1024.0),
        }

    saved = objects()
    saved["stopper"].counter, saved["stopper"].best_score = 2, 0.75
    trainer = saved["trainer"]
    trainer.add_event_handler(Events.ITERATION_STARTED, saved["scheduler"])
    checkpointer = Checkpoint(saved, DiskSaver(tmp_path), include_self=True)
    trainer.add_event_handler(Events.COMPLETED, checkpointer)
    await trainer.run(range(5))

    checkpointer.close()  # the names are the next one's now, as in a new process
    loaded = objects()
    again = Checkpoint(loaded, DiskSaver(tmp_path, require_empty=False), include_self=True)
    Checkpoint.load_objects({**loaded, "checkpointer": again}, checkpointer.last_checkpoint)  # type: ignore[arg-type]
    assert loaded["trainer"].state.iteration == 5
    assert loaded["scheduler"].event_index == 5
    assert (loaded["stopper"].counter, loaded["stopper"].best_score) == (2, 0.75)
    assert loaded["scaler"].get_scale() == 1024.0
    assert again.last_checkpoint == checkpointer.last_checkpoint


# ---------------------------------------------------------------- file modes


class _Peek:
    """Pickled inside a checkpoint: notes the directory's files, with their modes, while the write is on."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: dict[str, int] = {}

    def __reduce__(self) -> Any:
        self.seen = {p.name: stat.S_IMODE(p.stat().st_mode) for p in self.directory.iterdir()}
        return (str, ("peeked",))


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request: pytest.FixtureRequest) -> Any:
    previous = os.umask(request.param)  # process-wide: set for this test only, restored after
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_files_get_the_mode_the_umask_gives_as_ignites_do(tmp_path: Path, umask: int) -> None:
    modes = {}
    for lib, saver in (("ignite", IgniteDiskSaver), ("ours", DiskSaver)):
        for atomic in (True, False):
            directory = tmp_path / f"{lib}-{atomic}"
            saver(directory, atomic=atomic)({"model": model_with(1.0).state_dict()}, "checkpoint_1.pt")
            modes[lib, atomic] = stat.S_IMODE((directory / "checkpoint_1.pt").stat().st_mode)
    # What open() and torch.save(path) give, and so pytorch-ignite's non-atomic DiskSaver: 0o666 less the umask.
    assert modes["ignite", False] == 0o666 & ~umask
    assert modes["ours", True] == modes["ours", False] == modes["ignite", False]
    # pytorch-ignite's atomic files are mkstemp's 0o600 plus read for group and others, whatever the umask:
    # the same under the usual 0o022, wider under 0o077 (ours stay private there).
    assert modes["ignite", True] == 0o644
    if umask == 0o022:
        assert modes["ours", True] == modes["ignite", True]
    # The temporary file has the final mode from the start, and a name a later DiskSaver can tell as abandoned.
    directory = tmp_path / "peek"
    peek = _Peek(directory)
    DiskSaver(directory)({"peek": peek}, "checkpoint_2.pt")
    [(partial, mode)] = peek.seen.items()
    pattern = rf"\.checkpoint_2\.pt\.{re.escape(socket.gethostname())}@{os.getpid()}\.[^.]+\.partial"
    assert re.fullmatch(pattern, partial)
    assert mode == 0o666 & ~umask


# ---------------------------------------------------------------- one directory, several writers


def test_only_temporary_files_of_writers_that_are_gone_are_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            gone = subprocess.run(
                [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
            )
            names = {
                "live": f".checkpoint_3.pt.{host}@{live.pid}.k2j3.partial",
                "ours": f".checkpoint_4.pt.{host}@{os.getpid()}.a8d0.partial",
                "gone": f".checkpoint_2.pt.{host}@{int(gone.stdout)}.z9q1.partial",
                "other host": f".checkpoint_2.pt.elsewhere@{int(gone.stdout)}.m3n4.partial",
            }
            for name in names.values():
                (tmp_path / name).write_bytes(b"half a checkpoint")
            DiskSaver(tmp_path, require_empty=False)
            left = {p.name for p in tmp_path.iterdir()}
        finally:
            live.kill()
    assert left == {names["live"], names["ours"], names["other host"]}  # only "gone" is provably abandoned


def test_a_saver_created_beside_a_live_writer_neither_breaks_it_nor_takes_its_names(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("_checkpoint_worker.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with subprocess.Popen(
        [sys.executable, str(worker), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            partials_seen = 0
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # the worker writes all the time: its temporary files come and go
                partials_seen += bool(list(tmp_path.glob(".*.partial")))
                DiskSaver(tmp_path, require_empty=False)
            with pytest.raises(CheckpointInUseError, match=rf"'model' in {tmp_path} .*pid {proc.pid} on host"):
                Checkpoint({"model": model_with(0.0)}, DiskSaver(tmp_path, require_empty=False))
            Checkpoint({"model": model_with(0.0)}, DiskSaver(tmp_path, require_empty=False), filename_prefix="best")
            assert proc.poll() is None, proc.communicate()[1]  # still writing, not dead of a FileNotFoundError
        finally:
            proc.kill()
            _, err = proc.communicate(timeout=30)
    assert partials_seen > 0
    assert "FileNotFoundError" not in err


def test_two_checkpoints_of_one_process_cannot_share_names(tmp_path: Path) -> None:
    first = Checkpoint({"model": model_with(0.0)}, DiskSaver(tmp_path))
    with pytest.raises(CheckpointInUseError, match="in this process"):
        Checkpoint({"model": model_with(1.0)}, DiskSaver(tmp_path, require_empty=False))
    Checkpoint({"model": model_with(1.0)}, DiskSaver(tmp_path, require_empty=False), filename_prefix="best")
    first.close()
    Checkpoint({"model": model_with(1.0)}, DiskSaver(tmp_path, require_empty=False))  # free now
    del first
    # One that is no longer reachable gives its names up (a notebook cell run again).
    Checkpoint({"model": model_with(1.0)}, DiskSaver(tmp_path, require_empty=False))


async def test_model_checkpoint_claims_its_names_at_its_first_save(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(Events.COMPLETED, ModelCheckpoint(tmp_path, "net"), {"model": model_with(1.0)})
    await engine.run([0])
    other = ModelCheckpoint(tmp_path, "net", require_empty=False)
    with pytest.raises(CheckpointInUseError, match="'net_model'"):
        await other(engine, {"model": model_with(2.0)})


# ---------------------------------------------------------------- bookkeeping in step with the disk


async def test_a_checkpoint_counts_only_once_it_is_written() -> None:
    saver = GatedSaver()  # the first write never finishes during the run

    async def step(engine: Engine, batch: int) -> None:
        await anyio.lowlevel.checkpoint()

    engine = Engine(step)
    engine.cancel_grace_period = 0.1
    checkpointer = Checkpoint({"model": model_with(1.0)}, saver, n_saved=1)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=[1, 2]), checkpointer)
    with anyio.fail_after(10), anyio.move_on_after(0.5):  # cancelled while the second waits for the first
        await engine.run(range(10))
    assert engine.state.iteration == 1
    assert checkpointer.last_checkpoint is None  # nothing is durable yet
    saver.gate.set()
    with anyio.fail_after(10):
        while "model_1.pt" not in saver.files:  # noqa: ASYNC110 - a thread abandoned by the cancellation
            await anyio.sleep(0.01)
    assert checkpointer.last_checkpoint == "model_1.pt"
    assert sorted(saver.files) == ["model_1.pt"]


async def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(small_filesystem: Path) -> None:
    engine = Engine(lambda e, b: None)
    model = nn.Linear(256, 256)  # 257 KiB: one fits, the filler takes the rest
    checkpointer = Checkpoint({"model": model}, DiskSaver(small_filesystem), n_saved=1)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)

    @engine.on(Events.EPOCH_STARTED(once=2))
    async def fill_once_the_first_is_written() -> None:
        with anyio.fail_after(10):
            while not (small_filesystem / "model_2.pt").exists():  # noqa: ASYNC110 - written by a thread
                await anyio.sleep(0.01)
        fill(small_filesystem)

    with pytest.raises(OSError, match=rf"model_4\.pt in {small_filesystem}: no space left") as info:
        await engine.run([0, 1], max_epochs=3)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(small_filesystem / "model_4.pt")
    assert checkpointer.last_checkpoint == small_filesystem / "model_2.pt"
    assert checkpoint_files(small_filesystem) == ["filler", "model_2.pt"]  # no temporary file left either
    restored = nn.Linear(256, 256)
    Checkpoint.load_objects({"model": restored}, small_filesystem / "model_2.pt")
    assert torch.equal(restored.weight, model.weight)


async def test_a_final_checkpoint_that_fails_on_cancel_fails_the_run(small_filesystem: Path) -> None:
    async def step(engine: Engine, batch: int) -> None:
        await anyio.lowlevel.checkpoint()

    engine = Engine(step)
    checkpointer = Checkpoint({"model": nn.Linear(256, 256)}, DiskSaver(small_filesystem), filename_prefix="final")
    engine.add_event_handler(Events.INTERRUPT, checkpointer)
    fill(small_filesystem)
    scope = anyio.CancelScope()
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda: scope.cancel())
    with anyio.fail_after(10), scope, pytest.raises(InterruptHandlerError, match="no space left") as info:
        await engine.run(range(100))
    assert isinstance(info.value.error, OSError)
    assert info.value.error.errno == errno.ENOSPC
    assert checkpointer.last_checkpoint is None


@pytest.mark.parametrize("scored", [False, True])
async def test_a_resumed_run_counts_the_files_of_the_previous_one_in_n_saved(tmp_path: Path, scored: bool) -> None:
    scores = [0.1, 0.9, 0.3, 0.5, 0.7, 0.2, 0.8]
    options: dict[str, Any] = (
        {"score_function": lambda e: scores[e.state.epoch - 1], "score_name": "acc"} if scored else {}
    )

    def trainer(n_saved: int | None, require_empty: bool) -> tuple[Engine, Checkpoint]:
        engine = Engine(lambda e, b: None)
        checkpointer = Checkpoint(
            {"model": model_with(1.0), "trainer": engine},
            DiskSaver(tmp_path, require_empty=require_empty),
            n_saved=n_saved,
            **options,
        )
        engine.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
        return engine, checkpointer

    first, checkpointer = trainer(None, True)  # killed after 4 epochs, with every checkpoint kept
    await first.run([0], max_epochs=4)
    checkpointer.close()
    assert len(checkpoint_files(tmp_path)) == 4

    resumed, checkpointer = trainer(2, False)
    newest = tmp_path / ("checkpoint_acc=0.5000.pt" if scored else "checkpoint_4.pt")  # epoch 4's
    Checkpoint.load_objects({"trainer": resumed}, newest)
    await resumed.run([0], max_epochs=7)
    expected = (
        ["checkpoint_acc=0.8000.pt", "checkpoint_acc=0.9000.pt"] if scored else ["checkpoint_6.pt", "checkpoint_7.pt"]
    )
    assert checkpoint_files(tmp_path) == expected
    assert [item.filename for item in checkpointer._saved] == sorted(expected, key=lambda n: n)


# ---------------------------------------------------------------- the weights-only loader


class OwnClass:
    def __init__(self, value: int) -> None:
        self.value = value


class HoldsOwnClass:
    def __init__(self) -> None:
        self.thing = OwnClass(7)

    def state_dict(self) -> dict[str, Any]:
        return {"thing": self.thing}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.thing = state["thing"]


def test_a_checkpoint_of_own_classes_is_refused_clearly_and_loads_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "own.pt"
    torch.save({"holder": HoldsOwnClass().state_dict()}, path)
    with pytest.raises(ValueError, match=r"holds .*OwnClass, outside torch's weights-only allow-list") as info:
        Checkpoint.load_objects({"holder": HoldsOwnClass()}, path)
    assert "weights_only=False" not in str(info.value)
    assert "safe_globals=" in str(info.value)
    assert "corrupt" not in str(info.value)
    loaded = HoldsOwnClass()
    loaded.thing = OwnClass(0)
    Checkpoint.load_objects({"holder": loaded}, path, safe_globals=[OwnClass])
    assert loaded.thing.value == 7


# ---------------------------------------------------------------- reload_objects


def weights_follow_the_epoch(model: nn.Module) -> Any:
    def step(engine: Any, batch: Any) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(engine.state.epoch))

    return step


async def test_reload_objects_loads_the_same_files_as_ignites(tmp_path: Path) -> None:
    scores = [0.25, 0.5, 0.125, 0.75]
    kwargs: dict[str, Any] = {
        "score_function": lambda e: scores[e.state.epoch - 1],
        "score_name": "acc",
        "global_step_transform": lambda e, _: e.state.epoch,
        "n_saved": None,
    }
    ref_model = model_with(0.0)
    ref = IgniteEngine(weights_follow_the_epoch(ref_model))
    ref_handler = IgniteCheckpoint({"model": ref_model}, tmp_path / "ignite", **kwargs)
    ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, ref_handler)
    ref.run([0], max_epochs=4)
    model = model_with(0.0)
    engine = Engine(weights_follow_the_epoch(model))
    ours = Checkpoint({"model": model}, tmp_path / "ours", **kwargs)
    engine.add_event_handler(Events.EPOCH_COMPLETED, ours)
    await engine.run([0], max_epochs=4)

    assert checkpoint_files(tmp_path / "ours") == sorted(p.name for p in (tmp_path / "ignite").iterdir())
    for epoch in (2, 3):
        score = f"{scores[epoch - 1]:.4f}"  # pytorch-ignite takes the score as its file name writes it
        theirs, mine = model_with(-1.0), model_with(-1.0)
        ref_handler.reload_objects({"model": theirs}, global_step=epoch, score=score)
        ours.reload_objects({"model": mine}, global_step=epoch, score=scores[epoch - 1])  # or as a number
        assert all(torch.all(p == float(epoch)) for p in mine.parameters())
        assert all(torch.equal(a, b) for a, b in zip(mine.parameters(), theirs.parameters(), strict=True))
    newest = model_with(-1.0)
    ours.reload_objects({"model": newest}, load_kwargs={"strict": True})  # no components: last_checkpoint
    assert Path(str(ours.last_checkpoint)).name == "model_4_acc=0.7500.pt"
    assert all(torch.all(p == 4.0) for p in newest.parameters())


def test_reload_objects_rejects_what_it_cannot_load(tmp_path: Path) -> None:
    checkpointer = Checkpoint({"model": model_with(0.0)}, DiskSaver(tmp_path))
    with pytest.raises(ValueError, match="has saved nothing yet"):
        checkpointer.reload_objects({"model": model_with(0.0)})
    with pytest.raises(TypeError, match=r"unknown filename components \['epoch'\]"):
        checkpointer.reload_objects({"model": model_with(0.0)}, epoch=3)
    with pytest.raises(TypeError, match="load_kwargs must be a mapping"):
        checkpointer.reload_objects({"model": model_with(0.0)}, ["strict"], global_step=1)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"model_7\.pt"):
        checkpointer.reload_objects({"model": model_with(0.0)}, global_step=7)
    in_memory = Checkpoint({"model": model_with(0.0)}, GatedSaver())
    with pytest.raises(AttributeError, match="needs a DiskSaver"):
        in_memory.reload_objects({"model": model_with(0.0)}, global_step=1)


# ---------------------------------------------------------------- SAVED_CHECKPOINT


async def test_saved_checkpoint_fires_once_the_file_is_durable_and_named(tmp_path: Path) -> None:
    model = model_with(0.0)

    def step(engine: Engine, batch: Any) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(engine.state.iteration))

    engine = Engine(step)
    checkpointer = Checkpoint({"model": model}, DiskSaver(tmp_path), n_saved=2)
    seen: list[tuple[str, float]] = []

    # Registered by the first firing; registering first allows handlers before it, as here.
    engine.register_events(*CheckpointEvents)

    @engine.on(Checkpoint.SAVED_CHECKPOINT)
    def on_saved(engine: Engine) -> None:
        path = checkpointer.last_checkpoint
        assert isinstance(path, Path)
        assert path.is_file()
        restored = model_with(-1.0)
        Checkpoint.load_objects({"model": restored}, path)
        seen.append((path.name, float(restored.weight.detach()[0, 0])))

    engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), checkpointer)
    await engine.run(range(6))
    assert seen == [("model_2.pt", 2.0), ("model_4.pt", 4.0), ("model_6.pt", 6.0)]
    assert checkpoint_files(tmp_path) == ["model_4.pt", "model_6.pt"]


async def test_saved_checkpoint_fires_when_ignites_fires_with_the_same_last_checkpoint(tmp_path: Path) -> None:
    scores = [0.5, 0.25, 0.75, 0.75, 0.125]  # n_saved=2: 0.125 is never saved
    ref = IgniteEngine(lambda e, b: None)
    ref_handler = IgniteCheckpoint(
        {"model": model_with(0.0)},
        IgniteDiskSaver(tmp_path / "ignite"),
        n_saved=2,
        score_function=lambda e: scores[e.state.epoch - 1],
    )
    ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, ref_handler)
    ref.register_events(*type(IgniteCheckpoint.SAVED_CHECKPOINT))
    theirs: list[tuple[int, str]] = []
    ref.add_event_handler(
        IgniteCheckpoint.SAVED_CHECKPOINT,
        lambda e: theirs.append((e.state.epoch, Path(ref_handler.last_checkpoint).name)),
    )
    ref.run([0], max_epochs=len(scores))

    engine = Engine(lambda e, b: None)
    ours = Checkpoint(
        {"model": model_with(0.0)},
        DiskSaver(tmp_path / "ours"),
        n_saved=2,
        score_function=lambda e: scores[e.state.epoch - 1],
    )
    mine: list[tuple[int, str]] = []
    engine.register_events(*CheckpointEvents)  # else its first firing does: handlers are added after it
    engine.add_event_handler(
        Checkpoint.SAVED_CHECKPOINT, lambda e: mine.append((e.state.epoch, Path(str(ours.last_checkpoint)).name))
    )
    engine.add_event_handler(Events.EPOCH_COMPLETED, ours)
    await engine.run([0], max_epochs=len(scores))
    assert [name for _, name in mine] == [name for _, name in theirs]
    # The write ran in the background: the engine may be an epoch further on when it is announced.
    assert all(
        their_epoch <= epoch <= their_epoch + 1 for (epoch, _), (their_epoch, _) in zip(mine, theirs, strict=True)
    )
    assert [name for _, name in theirs] == ["model_0.5000.pt", "model_0.5000.pt", "model_0.7500.pt", "model_0.7500.pt"]


async def test_a_slow_write_fires_saved_checkpoint_only_when_it_is_done() -> None:
    saver = GatedSaver()

    async def step(engine: Engine, batch: int) -> None:
        await anyio.lowlevel.checkpoint()

    engine = Engine(step)
    checkpointer = Checkpoint({"model": model_with(1.0)}, saver)
    fired: list[tuple[str | Path | None, list[str]]] = []
    engine.register_events(*CheckpointEvents)
    engine.add_event_handler(
        Checkpoint.SAVED_CHECKPOINT, lambda: fired.append((checkpointer.last_checkpoint, sorted(saver.files)))
    )

    @engine.on(Events.ITERATION_COMPLETED(once=3))
    async def release(engine: Engine) -> None:
        assert fired == []  # the write of iteration 1 is still held: nothing announced
        await anyio.to_thread.run_sync(saver.writing.wait, 10)
        saver.gate.set()

    engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), checkpointer)
    with anyio.fail_after(20):
        await engine.run(range(5))
    assert fired == [("model_1.pt", ["model_1.pt"])]
    assert engine.last_event_name is Events.COMPLETED  # the loop's events are not overwritten


async def test_the_first_firing_registers_the_event() -> None:
    engine = Engine(lambda e, b: None)
    assert not engine.has_registered_events(Checkpoint.SAVED_CHECKPOINT)
    checkpointer = Checkpoint({"model": model_with(1.0)}, GatedSaver())
    checkpointer.save_handler.gate.set()  # type: ignore[union-attr]
    engine.add_event_handler(Events.COMPLETED, checkpointer)
    await engine.run([0])
    assert engine.has_registered_events(Checkpoint.SAVED_CHECKPOINT)
    assert Checkpoint.SAVED_CHECKPOINT is CheckpointEvents.SAVED_CHECKPOINT
    assert CheckpointEvents.SAVED_CHECKPOINT.value == "saved_checkpoint"


# ---------------------------------------------------------------- callable save handlers


@pytest.mark.parametrize("with_metadata", [True, False])
async def test_a_callable_save_handler_gets_the_calls_ignites_gets(tmp_path: Path, with_metadata: bool) -> None:
    scores = [0.5, 0.25, 0.75, 0.75, 0.875]
    calls: dict[str, list[tuple[str, list[str], Any]]] = {"ignite": [], "ours": []}

    def saver_for(lib: str) -> Any:
        if with_metadata:

            def save(checkpoint: Mapping[str, Any], filename: str, metadata: Any) -> None:
                calls[lib].append((filename, sorted(checkpoint), dict(metadata)))

            return save

        def save2(checkpoint: Mapping[str, Any], filename: str) -> None:
            calls[lib].append((filename, sorted(checkpoint), None))

        return save2

    kwargs: dict[str, Any] = {"n_saved": 2, "score_function": lambda e: scores[e.state.epoch - 1], "score_name": "acc"}
    ref = IgniteEngine(lambda e, b: None)
    ref_handler = IgniteCheckpoint({"model": model_with(0.0), "opt": RNGStates()}, saver_for("ignite"), **kwargs)
    ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, ref_handler)
    ref.run([0], max_epochs=len(scores))

    engine = Engine(lambda e, b: None)
    calls_saver = saver_for("ours")
    ours = Checkpoint({"model": model_with(0.0), "opt": RNGStates()}, calls_saver, **kwargs)
    engine.add_event_handler(Events.EPOCH_COMPLETED, ours)
    await engine.run([0], max_epochs=len(scores))

    assert calls["ours"] == calls["ignite"]
    assert len(calls["ours"]) == 5  # each score beat the worst kept one
    assert ours.last_checkpoint == ref_handler.last_checkpoint == "checkpoint_acc=0.8750.pt"
    assert ours.save_handler is calls_saver


def test_a_save_handler_that_is_neither_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="save_handler must be a BaseSaveHandler, a directory or a callable"):
        Checkpoint({"model": model_with(0.0)}, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"save_handler .* must take \(checkpoint, filename, metadata\)"):
        Checkpoint({"model": model_with(0.0)}, lambda checkpoint: None)


# ---------------------------------------------------------------- lists and dicts of objects in to_save


async def test_lists_and_dicts_of_objects_are_saved_as_ignite_saves_them(tmp_path: Path) -> None:
    def objects() -> dict[str, Any]:
        models = [model_with(1.0), model_with(2.0)]
        return {
            "models": models,
            "optimizers": {
                "g": torch.optim.SGD(models[0].parameters(), lr=0.1),
                "d": torch.optim.Adam(models[1].parameters()),
            },
            "trainer_rng": RNGStates(),
        }

    ref_objects, our_objects = objects(), objects()
    ref = IgniteEngine(lambda e, b: None)
    ref.add_event_handler(IgniteEvents.EPOCH_COMPLETED, IgniteCheckpoint(ref_objects, tmp_path / "ignite", n_saved=2))
    ref.run([0], max_epochs=3)
    engine = Engine(lambda e, b: None)
    checkpointer = Checkpoint(our_objects, tmp_path / "ours", n_saved=2)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    await engine.run([0], max_epochs=3)

    names = sorted(p.name for p in (tmp_path / "ignite").iterdir())
    assert checkpoint_files(tmp_path / "ours") == names == ["checkpoint_2.pt", "checkpoint_3.pt"]
    for name in names:
        theirs = torch.load(tmp_path / "ignite" / name, weights_only=True)
        mine = torch.load(tmp_path / "ours" / name, weights_only=True)
        assert sorted(mine) == sorted(theirs) == ["models", "optimizers", "trainer_rng"]
        assert isinstance(mine["models"], list)
        assert len(mine["models"]) == len(theirs["models"]) == 2
        for a, b in zip(mine["models"], theirs["models"], strict=True):
            assert sorted(a) == sorted(b)
            assert all(torch.equal(a[k], b[k]) for k in a)
        assert sorted(mine["optimizers"]) == sorted(theirs["optimizers"]) == ["d", "g"]
        assert mine["optimizers"]["d"]["param_groups"] == theirs["optimizers"]["d"]["param_groups"]

    fresh = objects()
    for model in fresh["models"]:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    Checkpoint.load_objects(fresh, checkpointer.last_checkpoint)  # type: ignore[arg-type]
    assert [float(m.weight.detach()[0, 0]) for m in fresh["models"]] == [1.0, 2.0]
    # A list of another length loads nothing, and says where.
    shorter = {**objects(), "models": [model_with(9.0)]}
    with pytest.raises(ValueError, match=r"'models' holds 1 objects but the checkpoint holds 2 items"):
        Checkpoint.load_objects(shorter, checkpointer.last_checkpoint)  # type: ignore[arg-type]
    assert float(shorter["models"][0].weight.detach()[0, 0]) == 9.0


async def test_a_single_list_entry_is_saved_as_a_list_and_loads_back(tmp_path: Path) -> None:
    engine = Engine(lambda e, b: None)
    checkpointer = Checkpoint({"models": [model_with(1.0), model_with(2.0)]}, DiskSaver(tmp_path))
    engine.add_event_handler(Events.COMPLETED, checkpointer)
    await engine.run([0])
    assert checkpoint_files(tmp_path) == ["models_1.pt"]  # pytorch-ignite's name: the single key
    content = torch.load(tmp_path / "models_1.pt", weights_only=True)
    assert isinstance(content, list)
    assert len(content) == 2
    restored = [model_with(0.0), model_with(0.0)]
    checkpointer.reload_objects({"models": restored})
    assert [float(m.bias.detach()[0]) for m in restored] == [1.0, 2.0]
    with pytest.raises(TypeError, match="include_self=True needs a dict"):
        Checkpoint({"models": [model_with(1.0)]}, DiskSaver(tmp_path / "x"), include_self=True)


def test_reload_objects_refuses_a_to_load_that_is_not_a_mapping(tmp_path: Path) -> None:
    model = model_with(1.0)
    checkpointer = Checkpoint({"model": model}, DiskSaver(tmp_path))
    for bad in ("x", tmp_path / "model_1.pt", [model]):
        with pytest.raises(TypeError, match=r"to_load must be a mapping of names to objects .*\{'model': model\}"):
            checkpointer.reload_objects(bad, global_step=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- snapshots: never slower than a blocking save


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
)
async def test_weights_changed_on_the_device_right_after_the_firing_are_not_in_the_file(
    tmp_path: Path, device: str
) -> None:
    torch.manual_seed(0)
    model = nn.Linear(64, 64).to(device)
    engine = Engine(lambda e, b: None)
    checkpointer = Checkpoint({"model": model}, DiskSaver(tmp_path), n_saved=None)
    at_firing: dict[int, dict[str, torch.Tensor]] = {}

    @engine.on(Events.EPOCH_COMPLETED)
    def remember(engine: Engine) -> None:
        at_firing[engine.state.iteration] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)

    @engine.on(Events.EPOCH_COMPLETED)
    def overwrite_right_after_the_firing(engine: Engine) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(-3.0).add_(1.0)  # enqueued on the training stream before the copy may have run

    await engine.run([0, 1], max_epochs=3)
    assert sorted(at_firing) == [2, 4, 6]
    for iteration, expected in at_firing.items():
        content = torch.load(tmp_path / f"model_{iteration}.pt", weights_only=True)
        assert all(t.device.type == "cpu" for t in content.values())
        assert all(torch.equal(content[k], expected[k]) for k in expected)


class HeldDiskSaver(DiskSaver):
    """A DiskSaver whose first write waits for the test: the next firing finds it still in flight."""

    def __init__(self, dirname: Path) -> None:
        super().__init__(dirname)
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.given: list[int] = []  # the data_ptr of each checkpoint's weight

    def __call__(self, checkpoint: Mapping[str, Any], filename: str, metadata: Mapping[str, Any] | None = None) -> None:
        self.given.append(checkpoint["weight"].data_ptr())
        if len(self.given) == 1:
            self.writing.set()
            self.gate.wait(timeout=30)
        super().__call__(checkpoint, filename, metadata)


async def test_a_firing_that_finds_the_write_in_flight_waits_and_writes_the_live_state_uncopied(tmp_path: Path) -> None:
    model = model_with(0.0)
    saver = HeldDiskSaver(tmp_path)
    busy_at_second: list[bool] = []

    def step(engine: Engine, batch: int) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(engine.state.iteration))

    engine = Engine(step)

    @engine.on(Events.ITERATION_COMPLETED(once=3))
    async def release_the_first_write() -> None:
        assert await anyio.to_thread.run_sync(saver.writing.wait, 10)
        busy_at_second.append(len(saver.given) == 1)
        # No await from here to the checkpointer's firing: it finds the write in flight (only the event loop
        # could count it finished).
        saver.gate.set()

    checkpointer = Checkpoint({"model": model}, saver, n_saved=None)
    engine.add_event_handler(Events.ITERATION_COMPLETED(once=[1, 3, 5]), checkpointer)

    @engine.on(Events.ITERATION_COMPLETED)
    def overwrite_right_after_the_firing() -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(-1.0)

    with anyio.fail_after(30):
        await engine.run(range(6))
    assert busy_at_second == [True]
    # The first write (nothing in flight) got a copy; the second, which found the first in flight, waited and was
    # written from the model's own tensors (no copy on top of the wait). The third is written live too if the
    # second write took longer than the two steps since (saves still come faster than they are written).
    weight = model.weight.data_ptr()
    assert [ptr == weight for ptr in saver.given][:2] == [False, True]
    assert len(saver.given) == 3
    for iteration in (1, 3, 5):
        content = torch.load(tmp_path / f"model_{iteration}.pt", weights_only=True)
        assert all(torch.all(t == float(iteration)) for t in content.values())


def _make_unwritable(directory: Path) -> list[str]:
    """Make ``directory`` refuse new files; the command that undoes it (root ignores modes: chattr +i)."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        return ["chmod", "700", str(directory)]
    made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a directory unwritable as root here: {made.stderr.strip()}")
    return ["chattr", "-i", str(directory)]


async def test_a_directory_that_is_not_writable_fails_the_run_naming_the_file_and_keeps_the_previous(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "checkpoints"
    model = nn.Linear(8, 8)
    engine = Engine(lambda e, b: None)
    checkpointer = Checkpoint({"model": model}, DiskSaver(directory), n_saved=1)
    engine.add_event_handler(Events.EPOCH_COMPLETED, checkpointer)
    undo: list[list[str]] = []

    @engine.on(Events.EPOCH_STARTED(once=2))
    async def lock_the_directory_once_the_first_is_written() -> None:
        with anyio.fail_after(10):
            while checkpointer.last_checkpoint is None:  # noqa: ASYNC110 - written by a background thread
                await anyio.sleep(0.01)
        undo.append(_make_unwritable(directory))

    try:
        with pytest.raises(OSError, match=rf"cannot write checkpoint model_4\.pt in {directory}") as info:
            await engine.run([0, 1], max_epochs=3)
    finally:
        for command in undo:
            subprocess.run(command, check=True)  # noqa: ASYNC221 - a moment's chattr/chmod, after the run
    assert info.value.errno in (errno.EACCES, errno.EPERM)
    assert isinstance(info.value, PermissionError)  # the original error's class
    assert info.value.filename == str(directory / "model_4.pt")
    assert checkpointer.last_checkpoint == directory / "model_2.pt"
    assert checkpoint_files(directory) == ["model_2.pt"]
    restored = nn.Linear(8, 8)
    Checkpoint.load_objects({"model": restored}, directory / "model_2.pt")
    assert torch.equal(restored.weight, model.weight)
