"""``ignite_async.contrib.common`` against pytorch-ignite's ``ignite.contrib.engines.common``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from ignite.contrib.engines import common as ignite_common
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events as IgniteEvents
from ignite.handlers import DiskSaver as IgniteDiskSaver
from ignite.handlers import PiecewiseLinear as IgnitePiecewiseLinear
from ignite.metrics import Accuracy as IgniteAccuracy
from ignite.metrics import Loss as IgniteLoss
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from ignite_async import Engine, Events
from ignite_async.contrib import common
from ignite_async.distributed import comm
from ignite_async.handlers import DiskSaver, PiecewiseLinear
from ignite_async.loggers import read_jsonl
from ignite_async.metrics import Accuracy, Loss
from tests.loggers._http_server import Collector, serve
from tests.loggers._wandb_offline import read_run, run_dirs, settle

# Events recorded on the trainer (EXCEPTION_RAISED is left out: a handler there changes how a run fails).
TRACED = [
    "STARTED",
    "EPOCH_STARTED",
    "GET_BATCH_STARTED",
    "GET_BATCH_COMPLETED",
    "ITERATION_STARTED",
    "ITERATION_COMPLETED",
    "DATALOADER_STOP_ITERATION",
    "EPOCH_COMPLETED",
    "TERMINATE",
    "COMPLETED",
]


# ---------------------------------------------------------------------------------------------------------------
# pytorch-ignite's CIFAR10 example (examples/cifar10/main.py), small: a tiny convnet on random 8x8 images, three
# epochs of four iterations. The same recipe is written once per framework below.


def _setup() -> tuple[nn.Module, torch.optim.Optimizer, list[Any], list[Any]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    train = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(4)]
    val = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(2)]
    return model, optimizer, train, val


def _train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[Any, Any], dict[str, float]]:
    def step(engine: Any, batch: Any) -> dict[str, float]:
        model.train()
        x, y = batch
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"batch loss": loss.item()}

    return step


def _eval_step(model: nn.Module) -> Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]]:
    def step(engine: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        with torch.no_grad():
            return model(batch[0]), batch[1]

    return step


MILESTONES = [(0, 0.0), (4, 0.1), (12, 0.0)]


@dataclass
class Outcome:
    checkpoints: list[str]
    best: list[str]
    train_metrics: dict[str, float]
    val_metrics: dict[str, float]
    trace: list[tuple[str, int, int]]
    validations: int
    lr: float
    scalars: dict[str, list[tuple[int, float]]]


def _pt_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.pt"))


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items()}


def run_with_ignite(out: Path) -> Outcome:
    model, optimizer, train, val = _setup()
    trainer = IgniteEngine(_train_step(model, optimizer))
    lr_scheduler = IgnitePiecewiseLinear(optimizer, "lr", milestones_values=MILESTONES)
    to_save = {"trainer": trainer, "model": model, "optimizer": optimizer, "lr_scheduler": lr_scheduler}
    ignite_common.setup_common_training_handlers(
        trainer,
        to_save=to_save,
        save_every_iters=3,
        output_path=str(out / "checkpoints"),
        lr_scheduler=lr_scheduler,
        output_names=["batch loss"],
        with_pbars=False,  # tqdm is not installed: pytorch-ignite's bars cannot run here
        log_every_iters=2,
        n_saved=2,
    )
    evaluator = IgniteEngine(_eval_step(model))
    IgniteAccuracy().attach(evaluator, "accuracy")
    IgniteLoss(nn.functional.cross_entropy).attach(evaluator, "loss")
    validations = []
    trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda: validations.append(evaluator.run(val)))
    ignite_common.save_best_model_by_val_score(
        str(out / "best"), evaluator, model, "accuracy", n_saved=2, trainer=trainer, tag="test"
    )
    ignite_common.add_early_stopping_by_val_score(5, evaluator, trainer, "accuracy")
    tb_logger = ignite_common.setup_tb_logging(
        str(out / "tb"), trainer, optimizer, evaluators={"test": evaluator}, log_every_iters=2
    )
    trace: list[tuple[str, int, int]] = []
    for name in TRACED:
        trainer.add_event_handler(
            getattr(IgniteEvents, name), lambda e, n=name: trace.append((n, e.state.epoch, e.state.iteration))
        )
    trainer.run(train, max_epochs=3)
    tb_logger.close()
    return Outcome(
        _pt_files(out / "checkpoints"),
        _pt_files(out / "best"),
        _floats(trainer.state.metrics),
        _floats(evaluator.state.metrics),
        trace,
        len(validations),
        optimizer.param_groups[0]["lr"],
        _scalars(out / "tb"),
    )


async def run_with_ours(out: Path) -> Outcome:
    model, optimizer, train, val = _setup()
    trainer = Engine(_train_step(model, optimizer))
    lr_scheduler = PiecewiseLinear(optimizer, "lr", milestones_values=MILESTONES)
    to_save = {"trainer": trainer, "model": model, "optimizer": optimizer, "lr_scheduler": lr_scheduler}
    common.setup_common_training_handlers(
        trainer,
        to_save=to_save,
        save_every_iters=3,
        output_path=out / "checkpoints",
        lr_scheduler=lr_scheduler,
        output_names=["batch loss"],
        log_every_iters=2,
        n_saved=2,
    )
    evaluator = Engine(_eval_step(model))
    Accuracy().attach(evaluator, "accuracy")
    Loss(nn.functional.cross_entropy).attach(evaluator, "loss")
    validations = []

    @trainer.on(Events.EPOCH_COMPLETED)
    async def validate() -> None:
        validations.append(await evaluator.run(val))

    common.save_best_model_by_val_score(
        out / "best", evaluator, model, "accuracy", n_saved=2, trainer=trainer, tag="test"
    )
    common.add_early_stopping_by_val_score(5, evaluator, trainer, "accuracy")
    trace: list[tuple[str, int, int]] = []
    for name in TRACED:
        trainer.add_event_handler(
            getattr(Events, name), lambda e, n=name: trace.append((n, e.state.epoch, e.state.iteration))
        )
    async with common.setup_tb_logging(
        out / "tb", trainer, optimizer, evaluators={"test": evaluator}, log_every_iters=2
    ):
        await trainer.run(train, max_epochs=3)
    return Outcome(
        _pt_files(out / "checkpoints"),
        _pt_files(out / "best"),
        _floats(trainer.state.metrics),
        _floats(evaluator.state.metrics),
        trace,
        len(validations),
        optimizer.param_groups[0]["lr"],
        _scalars(out / "tb"),
    )


@pytest.fixture(scope="module")
def ignite_outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return run_with_ignite(tmp_path_factory.mktemp("ignite"))


@pytest.mark.anyio
async def test_the_cifar10_recipe_matches_pytorch_ignite(
    ignite_outcome: Outcome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = await run_with_ours(tmp_path)
    expected = ignite_outcome
    assert ours.checkpoints == expected.checkpoints == ["training_checkpoint_12.pt", "training_checkpoint_9.pt"]
    assert ours.best == expected.best
    assert len(ours.best) == 2
    assert all(name.startswith("best_model_") and "_test_accuracy=" in name for name in ours.best)
    assert ours.trace == expected.trace
    assert ours.trace[-1] == ("COMPLETED", 3, 12)
    assert ours.validations == expected.validations == 3
    assert set(ours.train_metrics) == set(expected.train_metrics) == {"batch loss"}
    assert ours.train_metrics == pytest.approx(expected.train_metrics, rel=1e-6)
    assert ours.val_metrics == pytest.approx(expected.val_metrics, rel=1e-6)
    assert ours.lr == pytest.approx(expected.lr)
    # TensorBoard: the same scalars at the same steps, under pytorch-ignite's tags.
    assert (
        set(ours.scalars)
        == set(expected.scalars)
        == {
            "training/batch loss",
            "lr/group_0",
            "test/accuracy",
            "test/loss",
        }
    )
    for tag, points in expected.scalars.items():
        assert [s for s, _ in ours.scalars[tag]] == [s for s, _ in points], tag
        assert [v for _, v in ours.scalars[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag
    assert [s for s, _ in ours.scalars["test/accuracy"]] == [1, 2, 3]  # at the trainer's epoch
    assert "Epoch [3/3] 4/4 iterations" in capsys.readouterr().out  # the progress bar, one line per epoch


# ---------------------------------------------------------------------------------------------------------------
# setup_common_training_handlers, item by item


def _trainer_and_ignite(output: Callable[[Any, Any], Any] = lambda e, b: 0.0) -> tuple[Engine, IgniteEngine]:
    return Engine(output), IgniteEngine(output)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"to_save": {"m": nn.Linear(1, 1)}, "output_path": "x", "save_handler": "set below"},
            ValueError,
            "output_path and save_handler are mutually exclusive",
        ),
        ({"to_save": {"m": nn.Linear(1, 1)}}, ValueError, "output_path or save_handler arguments should be"),
    ],
)
def test_bad_checkpoint_arguments_raise_what_pytorch_ignite_raises(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    ours, theirs = _trainer_and_ignite()
    if "save_handler" in kwargs:
        kwargs = {**kwargs, "output_path": str(tmp_path)}
        with pytest.raises(error, match=match):
            ignite_common.setup_common_training_handlers(
                theirs, **{**kwargs, "save_handler": IgniteDiskSaver(str(tmp_path), require_empty=False)}
            )
        with pytest.raises(error, match=match):
            common.setup_common_training_handlers(ours, **{**kwargs, "save_handler": DiskSaver(tmp_path)})
    else:
        with pytest.raises(error, match=match):
            ignite_common.setup_common_training_handlers(theirs, **kwargs)
        with pytest.raises(error, match=match):
            common.setup_common_training_handlers(ours, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"with_gpu_stats": True}, RuntimeError, "GpuInfo needs a CUDA GPU"),
        ({"output_names": "loss"}, TypeError, "output_names must be a list of names"),
        ({"output_names": 3}, TypeError, r"output_names must be a list of names \(str\).*got 3"),
        ({"output_names": ["loss", 1]}, TypeError, r"output_names must hold names \(str\), got \[1\]"),
        ({"log_every_iters": 0}, ValueError, "log_every_iters must be an integer >= 1"),
        ({"save_every_iters": 1.5}, ValueError, "save_every_iters must be an integer >= 1"),
        ({"lr_scheduler": 0.1}, TypeError, "lr_scheduler must be a torch LR scheduler or a callable"),
    ],
)
@pytest.mark.anyio
async def test_bad_arguments_are_named_and_nothing_is_attached(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    trainer = Engine(lambda e, b: float("nan"))
    with pytest.raises(error, match=match):
        common.setup_common_training_handlers(trainer, **kwargs)
    assert (await trainer.run(range(2))).iteration == 2  # no TerminateOnNan was attached


def test_a_pytorch_ignite_engine_is_refused() -> None:
    with pytest.raises(TypeError, match=r"trainer must be an ignite_async Engine, got ignite\.engine\.engine\.Engine"):
        common.setup_common_training_handlers(IgniteEngine(lambda e, b: 0.0))


@pytest.mark.anyio
async def test_a_torch_lr_scheduler_steps_every_iteration_as_in_pytorch_ignite() -> None:
    def lrs(engine_cls: Any, setup: Any) -> tuple[list[float], Any]:
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        seen: list[float] = []

        def step(engine: Any, batch: Any) -> float:
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            return 0.0

        engine = engine_cls(step)
        setup(engine, lr_scheduler=scheduler, with_pbars=False)
        return seen, engine

    theirs, ignite_engine = lrs(IgniteEngine, ignite_common.setup_common_training_handlers)
    ignite_engine.run(range(3), max_epochs=2)
    ours, engine = lrs(Engine, common.setup_common_training_handlers)
    await engine.run(range(3), max_epochs=2)
    assert ours == theirs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.anyio
async def test_running_averages_of_sequence_tensor_and_mapping_outputs_match_pytorch_ignite() -> None:
    outputs = [(1.0, 4.0), (3.0, 0.0), (2.0, 2.0)]
    ours, theirs = _trainer_and_ignite(lambda e, b: outputs[b])
    for engine, setup in ((ours, common), (theirs, ignite_common)):
        setup.setup_common_training_handlers(engine, output_names=["a", "b"], with_pbars=False)
    expected = theirs.run(range(3)).metrics
    state = await ours.run(range(3))
    assert _floats(state.metrics) == pytest.approx(_floats(expected))
    assert set(state.metrics) == {"a", "b"}

    bad = Engine(lambda e, b: object())
    common.setup_common_training_handlers(bad, output_names=["a"], with_pbars=False)
    with pytest.raises(TypeError, match="cannot take 'a' from the process function's output"):
        await bad.run(range(1))


@pytest.mark.anyio
async def test_terminate_on_nan_stops_the_run() -> None:
    trainer = Engine(lambda e, b: float("nan") if b == 1 else 0.5)
    common.setup_common_training_handlers(trainer, with_pbars=False)
    state = await trainer.run(range(4), max_epochs=2)
    assert state.iteration == 2


@pytest.mark.anyio
async def test_the_cuda_cache_is_emptied_each_epoch_when_cuda_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    emptied: list[int] = []
    trainer = Engine(lambda e, b: 0.0)
    with monkeypatch.context() as patch:  # only while attaching: the run itself stays on the CPU
        patch.setattr(torch.cuda, "is_available", lambda: True)
        common.setup_common_training_handlers(trainer, with_pbars=False)
        untouched = Engine(lambda e, b: 0.0)
        common.setup_common_training_handlers(untouched, with_pbars=False, clear_cuda_cache=False)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(trainer.state.epoch))
    await trainer.run(range(2), max_epochs=3)
    await untouched.run(range(2), max_epochs=3)
    assert emptied == [1, 2, 3]


def test_a_distributed_sampler_outside_a_distributed_job_is_ignored_with_pytorch_ignites_warning() -> None:
    sampler = DistributedSampler(TensorDataset(torch.arange(8)), num_replicas=2, rank=0)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        ignite_common.setup_common_training_handlers(
            IgniteEngine(lambda e, b: 0.0), train_sampler=sampler, with_pbars=False
        )
    with pytest.warns(UserWarning, match="Train sampler argument will be ignored") as ours:
        common.setup_common_training_handlers(Engine(lambda e, b: 0.0), train_sampler=sampler, with_pbars=False)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs if w.category is UserWarning]


@pytest.mark.anyio
@pytest.mark.parametrize("in_the_loader", [False, True])
async def test_in_a_distributed_job_the_sampler_gets_each_epoch_once(
    monkeypatch: pytest.MonkeyPatch, in_the_loader: bool
) -> None:
    dataset = TensorDataset(torch.arange(8.0))
    sampler = DistributedSampler(dataset, num_replicas=2, rank=0)
    epochs: list[int] = []
    set_epoch = sampler.set_epoch
    monkeypatch.setattr(sampler, "set_epoch", lambda epoch: (epochs.append(epoch), set_epoch(epoch)))
    data: Any = DataLoader(dataset, batch_size=2, sampler=sampler) if in_the_loader else [0, 1]
    trainer = Engine(lambda e, b: 0.0)
    with monkeypatch.context() as patch:  # a world of 2 only while attaching
        patch.setattr(comm, "get_world_size", lambda: 2)
        with pytest.raises(TypeError, match="Train sampler should be torch DistributedSampler"):
            common.setup_common_training_handlers(trainer, train_sampler=[0, 1], with_pbars=False)
        common.setup_common_training_handlers(trainer, train_sampler=sampler, with_pbars=False)
    await trainer.run(data, max_epochs=3)
    assert epochs == [0, 1, 2]  # from our handler, or from the engine for its own loader's sampler: never both


# ---------------------------------------------------------------------------------------------------------------
# best models and early stopping


def _scored_evaluator(engine_cls: Any, scores: list[float]) -> Any:
    evaluator = engine_cls(lambda e, b: None)
    it = iter(scores)
    evaluator.add_event_handler(
        Events.COMPLETED if engine_cls is Engine else IgniteEvents.COMPLETED,
        lambda e: e.state.metrics.update(Loss=next(it)),
    )
    return evaluator


@pytest.mark.anyio
async def test_best_models_by_a_falling_score_are_named_as_by_pytorch_ignite(tmp_path: Path) -> None:
    scores = [0.9, 0.4, 0.6, 0.2]
    models = {"net": nn.Linear(2, 2), "head": nn.Linear(2, 1)}

    theirs_trainer = IgniteEngine(lambda e, b: 0.0)
    theirs_eval = _scored_evaluator(IgniteEngine, scores)
    ignite_common.gen_save_best_models_by_val_score(
        IgniteDiskSaver(str(tmp_path / "theirs")),
        theirs_eval,
        models,
        "Loss",
        n_saved=2,
        trainer=theirs_trainer,
        score_sign=-1.0,
    )
    theirs_trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda: theirs_eval.run([0]))
    theirs_trainer.run([0], max_epochs=4)

    trainer = Engine(lambda e, b: 0.0)
    evaluator = _scored_evaluator(Engine, scores)
    best = common.gen_save_best_models_by_val_score(
        DiskSaver(tmp_path / "ours"), evaluator, models, "Loss", n_saved=2, trainer=trainer, score_sign=-1.0
    )

    @trainer.on(Events.EPOCH_COMPLETED)
    async def validate() -> None:
        await evaluator.run([0])

    await trainer.run([0], max_epochs=4)
    assert (
        _pt_files(tmp_path / "ours")
        == _pt_files(tmp_path / "theirs")
        == [
            "best_checkpoint_2_val_loss=-0.4000.pt",
            "best_checkpoint_4_val_loss=-0.2000.pt",
        ]
    )
    assert best.last_checkpoint == tmp_path / "ours" / "best_checkpoint_4_val_loss=-0.2000.pt"


@pytest.mark.anyio
async def test_early_stopping_stops_the_trainer_where_pytorch_ignite_does(trace: list[tuple[str, int, int]]) -> None:
    scores = [0.5, 0.7, 0.6, 0.65, 0.9, 1.0]
    theirs_trainer = IgniteEngine(lambda e, b: 0.0)
    theirs_eval = _scored_evaluator(IgniteEngine, scores)
    ignite_common.add_early_stopping_by_val_score(2, theirs_eval, theirs_trainer, "Loss")
    theirs_trainer.add_event_handler(IgniteEvents.EPOCH_COMPLETED, lambda: theirs_eval.run([0]))
    theirs_epoch = theirs_trainer.run([0, 1], max_epochs=6).epoch

    trainer = Engine(lambda e, b: 0.0)
    evaluator = _scored_evaluator(Engine, scores)
    stopper = common.add_early_stopping_by_val_score(2, evaluator, trainer, "Loss")

    @trainer.on(Events.EPOCH_COMPLETED)
    async def validate() -> None:
        await evaluator.run([0])

    trainer.add_event_handler(Events.TERMINATE, lambda e: trace.append(("TERMINATE", e.state.epoch, e.state.iteration)))
    state = await trainer.run([0, 1], max_epochs=6)
    assert state.epoch == theirs_epoch == 4
    assert trace == [("TERMINATE", 4, 8)]
    assert stopper.best_score == 0.7


# ---------------------------------------------------------------------------------------------------------------
# logging recipes


def test_bad_logging_arguments_raise_what_pytorch_ignite_raises(tmp_path: Path) -> None:
    for kwargs, match in (
        ({"optimizers": 1}, "optimizers should be either a single optimizer or a dictionary"),
        ({"evaluators": 1}, "evaluators should be either a single engine or a dictionary"),
    ):
        with pytest.raises(TypeError, match=match):
            ignite_common.setup_tb_logging(str(tmp_path / "theirs"), IgniteEngine(lambda e, b: 0.0), **kwargs)
        for setup, target in (
            (common.setup_tb_logging, tmp_path / "tb"),
            (common.setup_jsonl_logging, tmp_path / "m.jsonl"),
            (common.setup_http_logging, "http://127.0.0.1:1/records"),
        ):
            with pytest.raises(TypeError, match=match):
                setup(target, Engine(lambda e, b: 0.0), **kwargs)
        for tracker in (common.setup_mlflow_logging, common.setup_wandb_logging):  # refused before a client is made
            with pytest.raises(TypeError, match=match):
                tracker(Engine(lambda e, b: 0.0), **kwargs)
    with pytest.raises(ValueError, match="log_every_iters must be an integer >= 1"):
        common.setup_jsonl_logging(tmp_path / "m.jsonl", Engine(lambda e, b: 0.0), log_every_iters=0)
    for tracker in (common.setup_mlflow_logging, common.setup_wandb_logging):
        with pytest.raises(TypeError, match="trainer must be an ignite_async Engine"):
            tracker(IgniteEngine(lambda e, b: 0.0))
        with pytest.raises(ValueError, match="log_every_iters must be an integer >= 1"):
            tracker(Engine(lambda e, b: 0.0), log_every_iters=0)


def test_a_metric_name_that_is_not_a_string_is_refused_at_the_call(tmp_path: Path) -> None:
    evaluator = Engine(lambda e, b: None)
    with pytest.raises(TypeError, match=r"metric_name must be the name \(str\) of a metric.*got 3"):
        common.gen_save_best_models_by_val_score(tmp_path, evaluator, nn.Linear(1, 1), 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metric_name must be"):
        common.save_best_model_by_val_score(tmp_path, evaluator, nn.Linear(1, 1), None)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())  # nothing was attached or written


def _trainer_with_evaluators() -> tuple[Engine, torch.optim.Optimizer, dict[str, Engine]]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.25)
    trainer = Engine(lambda e, b: 0.0)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: e.state.metrics.update(loss=e.state.iteration / 10))
    evaluators = {}
    for name in ("train", "test"):
        evaluator = Engine(lambda e, b: None)
        evaluator.add_event_handler(Events.COMPLETED, lambda e, n=name: e.state.metrics.update(acc=len(n) / 10))
        evaluators[name] = evaluator

    @trainer.on(Events.EPOCH_COMPLETED)
    async def validate() -> None:
        for evaluator in evaluators.values():
            await evaluator.run([0])

    return trainer, optimizer, evaluators


EXPECTED_RECORDS = [
    ("optimizer", "g/lr/group0", 2, 0.25),
    ("optimizer", "g/lr/group0", 4, 0.25),
    ("training", "loss", 2, 0.2),
    ("training", "loss", 4, 0.4),
    ("train", "acc", 1, 0.5),
    ("train", "acc", 2, 0.5),
    ("test", "acc", 1, 0.4),
    ("test", "acc", 2, 0.4),
]


def _key(record: tuple[str, str, int, float]) -> tuple[str, str, int]:
    return record[:3]


@pytest.mark.anyio
async def test_jsonl_logging_logs_the_trainer_the_learning_rates_and_the_evaluators(tmp_path: Path) -> None:
    trainer, optimizer, evaluators = _trainer_with_evaluators()
    path = tmp_path / "metrics.jsonl"
    async with common.setup_jsonl_logging(path, trainer, {"g": optimizer}, evaluators, log_every_iters=2):
        await trainer.run([0, 1], max_epochs=2)
    records = [(r["tag"], r["name"], r["step"], r["value"]) for r in read_jsonl(path)]
    assert sorted(records, key=_key) == sorted(EXPECTED_RECORDS, key=_key)


@pytest.mark.anyio
async def test_http_logging_posts_the_same_records(tmp_path: Path) -> None:
    trainer, optimizer, evaluators = _trainer_with_evaluators()
    app = Collector()
    with serve(app) as url:
        async with common.setup_http_logging(
            url, trainer, {"g": optimizer}, evaluators, log_every_iters=2, run_id="run-1", flush_interval=0.05
        ) as logger:
            await trainer.run([0, 1], max_epochs=2)
        assert logger.statistics().sent == len(EXPECTED_RECORDS)
    assert {body["run"] for body in app.received} == {"run-1"}
    records = [(r["tag"], r["name"], r["step"], r["value"]) for body in app.received for r in body["records"]]
    assert sorted(records, key=_key) == sorted(EXPECTED_RECORDS, key=_key)


@pytest.mark.anyio
async def test_a_single_evaluator_logs_under_validation_and_none_means_every_iteration(tmp_path: Path) -> None:
    trainer, optimizer, evaluators = _trainer_with_evaluators()
    path = tmp_path / "metrics.jsonl"
    async with common.setup_jsonl_logging(
        path, trainer, optimizer, evaluators["test"], log_every_iters=None, evaluator_metric_names=["acc"]
    ):
        await trainer.run([0, 1], max_epochs=1)
    records = {(r["tag"], r["name"], r["step"]) for r in read_jsonl(path)}
    assert records == {
        ("optimizer", "lr/group0", 1),
        ("optimizer", "lr/group0", 2),
        ("training", "loss", 1),
        ("training", "loss", 2),
        ("validation", "acc", 1),
    }


# MLflow and W&B recipes, against pytorch-ignite's on the same servers and files


def _ignite_trainer_with_evaluators() -> tuple[IgniteEngine, torch.optim.Optimizer, dict[str, IgniteEngine]]:
    """pytorch-ignite's twin of _trainer_with_evaluators: the same metrics at the same events."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.25)
    trainer = IgniteEngine(lambda e, b: 0.0)
    trainer.add_event_handler(
        IgniteEvents.ITERATION_COMPLETED, lambda e: e.state.metrics.update(loss=e.state.iteration / 10)
    )
    evaluators = {}
    for name in ("train", "test"):
        evaluator = IgniteEngine(lambda e, b: None)
        evaluator.add_event_handler(IgniteEvents.COMPLETED, lambda e, n=name: e.state.metrics.update(acc=len(n) / 10))
        evaluators[name] = evaluator

    @trainer.on(IgniteEvents.EPOCH_COMPLETED)
    def validate() -> None:
        for evaluator in evaluators.values():
            evaluator.run([0])

    return trainer, optimizer, evaluators


def _mlflow_history(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    keys = client.get_run(run_id).data.metrics
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


@pytest.fixture
def ignite_mlflow_history(mlflow_server: str) -> dict[str, list[tuple[int, float]]]:
    """What pytorch-ignite's setup_mlflow_logging logs (sync: its MLflowLogger uses mlflow's global run)."""
    import mlflow

    previous = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        trainer, optimizer, evaluators = _ignite_trainer_with_evaluators()
        logger = ignite_common.setup_mlflow_logging(
            trainer, {"g": optimizer}, evaluators, log_every_iters=2, tracking_uri=mlflow_server
        )
        trainer.run([0, 1], max_epochs=2)
        run = mlflow.active_run()
        assert run is not None
        logger.close()
    finally:
        mlflow.set_tracking_uri(previous)  # pytorch-ignite's logger set the process-wide URI
    return _mlflow_history(mlflow_server, run.info.run_id)


@pytest.mark.anyio
async def test_mlflow_logging_logs_pytorch_ignites_keys_steps_and_values(
    mlflow_server: str, ignite_mlflow_history: dict[str, list[tuple[int, float]]]
) -> None:
    trainer, optimizer, evaluators = _trainer_with_evaluators()
    async with common.setup_mlflow_logging(
        trainer, {"g": optimizer}, evaluators, log_every_iters=2, tracking_uri=mlflow_server, experiment="common"
    ) as logger:
        await trainer.run([0, 1], max_epochs=2)
    assert logger.run_id is not None
    ours = _mlflow_history(mlflow_server, logger.run_id)
    assert ours == ignite_mlflow_history
    assert ours == {
        "g lr group_0": [(2, 0.25), (4, 0.25)],
        "training loss": [(2, 0.2), (4, 0.4)],
        "train acc": [(1, 0.5), (2, 0.5)],
        "test acc": [(1, 0.4), (2, 0.4)],
    }


@pytest.fixture
def wandb_setup_kwargs(wandb_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The shared offline W&B arguments with a project; each run gets its own ``dir`` below."""
    return {**{k: v for k, v in wandb_kwargs.items() if k != "dir"}, "project": "ignite-async-tests"}


@pytest.fixture
def ignite_wandb_dir(tmp_path: Path, wandb_setup_kwargs: dict[str, Any]) -> Path:
    """pytorch-ignite's setup_wandb_logging run, offline, in its own directory (sync: wandb.init is called at once)."""
    directory = tmp_path / "theirs"
    directory.mkdir()
    trainer, optimizer, evaluators = _ignite_trainer_with_evaluators()
    logger = ignite_common.setup_wandb_logging(
        trainer, {"g": optimizer}, evaluators, log_every_iters=2, dir=str(directory), **wandb_setup_kwargs
    )
    trainer.run([0, 1], max_epochs=2)
    logger.close()
    return directory


@pytest.mark.anyio
async def test_wandb_logging_logs_pytorch_ignites_steps_and_values(
    tmp_path: Path, wandb_setup_kwargs: dict[str, Any], ignite_wandb_dir: Path
) -> None:
    directory = tmp_path / "ours"
    directory.mkdir()
    trainer, optimizer, evaluators = _trainer_with_evaluators()
    async with common.setup_wandb_logging(
        trainer, {"g": optimizer}, evaluators, log_every_iters=2, dir=str(directory), **wandb_setup_kwargs
    ) as logger:
        await trainer.run([0, 1], max_epochs=2)
    assert logger.statistics().dropped == 0
    settle()
    ((ours_dir,), (theirs_dir,)) = run_dirs(directory), run_dirs(ignite_wandb_dir)
    ours, theirs = read_run(ours_dir).history, read_run(theirs_dir).history
    # The evaluators at the trainer's iteration (not its epoch), as pytorch-ignite logs them for W&B.
    assert theirs == {
        2: {"g/lr/group_0": 0.25, "training/loss": 0.2, "train/acc": 0.5, "test/acc": 0.4},
        4: {"g/lr/group_0": 0.25, "training/loss": 0.4, "train/acc": 0.5, "test/acc": 0.4},
    }
    assert ours == theirs  # the same keys too: "g/lr/group_0"
