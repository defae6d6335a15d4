"""Common training recipes: pytorch-ignite's ``ignite.contrib.engines.common``, on this package's handlers.

``from ignite.contrib.engines import common`` becomes ``from ignite_async.contrib import common``: the same
function names, arguments and defaults, attaching this package's handlers (:class:`~ignite_async.handlers.Checkpoint`,
:class:`~ignite_async.handlers.TerminateOnNan`, :class:`~ignite_async.metrics.RunningAverage`,
:class:`~ignite_async.handlers.ProgressBar`, :class:`~ignite_async.handlers.EarlyStopping`, the loggers of
:mod:`ignite_async.loggers`) to :class:`~ignite_async.Engine` objects. The functions are sync: they only attach
handlers; the run is awaited as usual.

>>> import asyncio, tempfile
>>> from pathlib import Path
>>> import torch
>>> from ignite_async import Engine
>>> from ignite_async.contrib import common
>>> model = torch.nn.Linear(2, 1)
>>> trainer = Engine(lambda engine, batch: {"loss": 0.5})
>>> directory = tempfile.mkdtemp()
>>> common.setup_common_training_handlers(
...     trainer, to_save={"model": model}, save_every_iters=2, output_path=directory,
...     output_names=["loss"], with_pbars=False,
... )
>>> state = asyncio.run(trainer.run(range(3), max_epochs=2))
>>> state.metrics
{'loss': 0.5}
>>> sorted(path.name for path in Path(directory).glob("*.pt"))
['training_model_6.pt']
"""

from __future__ import annotations

import functools
import gc
import numbers
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from ignite_async.distributed import comm
from ignite_async.engine import Engine, Events
from ignite_async.handlers import (
    BaseSaveHandler,
    Checkpoint,
    DiskSaver,
    EarlyStopping,
    ProgressBar,
    TerminateOnNan,
    global_step_from_engine,
)
from ignite_async.loggers import (
    BaseLogger,
    HTTPLogger,
    JSONLinesLogger,
    MLflowLogger,
    TensorBoardLogger,
    WandBLogger,
)
from ignite_async.metrics import GpuInfo, RunningAverage

__all__ = [
    "add_early_stopping_by_val_score",
    "empty_cuda_cache",
    "gen_save_best_models_by_val_score",
    "get_default_score_fn",
    "save_best_model_by_val_score",
    "setup_common_distrib_training_handlers",
    "setup_common_training_handlers",
    "setup_http_logging",
    "setup_jsonl_logging",
    "setup_mlflow_logging",
    "setup_tb_logging",
    "setup_wandb_logging",
]

MetricNames = str | Sequence[str]
Optimizers = torch.optim.Optimizer | Mapping[str | None, torch.optim.Optimizer]
Evaluators = Engine | Mapping[str, Engine]

get_default_score_fn = Checkpoint.get_default_score_fn


def _check_engine(name: str, engine: object) -> None:
    if not isinstance(engine, Engine):
        raise TypeError(f"{name} must be an ignite_async Engine, got {type(engine).__module__}.{type(engine).__name__}")


def _check_every(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _check_output_names(output_names: object) -> list[str] | None:
    if output_names is None:
        return None
    if isinstance(output_names, str):
        raise TypeError(f"output_names must be a list of names, got the string {output_names!r}")
    if not isinstance(output_names, Iterable):
        raise TypeError(
            f"output_names must be a list of names (str) of the process function's outputs, got {output_names!r}"
        )
    names = list(output_names)
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise TypeError(f"output_names must hold names (str), got {bad!r} in {names!r}")
    return names


def _check_metric_name(metric_name: object) -> str:
    if not isinstance(metric_name, str):
        raise TypeError(
            f"metric_name must be the name (str) of a metric in evaluator.state.metrics, got {metric_name!r}"
        )
    return metric_name


def empty_cuda_cache(_: Engine | None = None) -> None:
    """Give the CUDA caching allocator's unused memory back, then collect garbage (an epoch handler).

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.contrib.common import empty_cuda_cache
    >>> trainer = Engine(lambda engine, batch: None)
    >>> _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, empty_cuda_cache)
    >>> asyncio.run(trainer.run(range(2), max_epochs=2)).epoch
    2
    """
    torch.cuda.empty_cache()
    gc.collect()


def _output_value(output: Any, index: int, name: str) -> Any:
    if isinstance(output, Mapping):
        return output[name]
    if isinstance(output, Sequence):
        return output[index]
    if isinstance(output, (torch.Tensor, numbers.Number)):
        return output
    raise TypeError(
        f"cannot take {name!r} from the process function's output: it should be a mapping, a sequence, a tensor "
        f"or a number, got {type(output).__name__}"
    )


def _sampler_epoch_handler(sampler: Any) -> Callable[[Engine], None]:
    def set_sampler_epoch(engine: Engine) -> None:
        data = engine.state.dataloader
        engine_handles = {
            id(getattr(data, "sampler", None)),
            id(getattr(getattr(data, "batch_sampler", None), "sampler", None)),
        }
        if id(sampler) not in engine_handles:  # the engine sets the epoch of its own loader's sampler
            sampler.set_epoch(engine.state.epoch - 1)

    return set_sampler_epoch


def setup_common_training_handlers(
    trainer: Engine,
    train_sampler: DistributedSampler[Any] | None = None,
    to_save: Mapping[str, Any] | None = None,
    save_every_iters: int = 1000,
    output_path: str | Path | None = None,
    lr_scheduler: Any = None,
    with_gpu_stats: bool = False,
    output_names: Iterable[str] | None = None,
    with_pbars: bool = True,
    with_pbar_on_iters: bool = True,
    log_every_iters: int = 100,
    stop_on_nan: bool = True,
    clear_cuda_cache: bool = True,
    save_handler: BaseSaveHandler | None = None,
    **kwargs: Any,
) -> None:
    """Attach the usual training handlers to ``trainer``, as pytorch-ignite's function of the same name does.

    In the order attached: :class:`~ignite_async.handlers.TerminateOnNan` (``stop_on_nan``); ``lr_scheduler``
    (a ``torch.optim.lr_scheduler`` scheduler is stepped at every ``ITERATION_COMPLETED``, any other, such as
    :class:`~ignite_async.handlers.LRScheduler` or a ``ParamScheduler``, is called at every
    ``ITERATION_STARTED``); :func:`empty_cuda_cache` at every ``EPOCH_COMPLETED`` when CUDA is available and
    ``clear_cuda_cache``; a :class:`~ignite_async.handlers.Checkpoint` of ``to_save`` with the prefix
    ``"training"`` every ``save_every_iters`` iterations, into ``output_path`` (a ``DiskSaver`` with
    ``require_empty=False``) or ``save_handler``, with ``kwargs`` (e.g. ``n_saved``); a
    :class:`~ignite_async.metrics.RunningAverage` per name of ``output_names`` (the output's item of that name
    if it is a mapping, of that position if a sequence, the output itself if a tensor or number) into
    ``trainer.state.metrics[name]``; and a :class:`~ignite_async.handlers.ProgressBar` (``with_pbars``) that
    shows every metric, redrawn every ``log_every_iters`` iterations (``with_pbar_on_iters``) or at the end of
    each epoch.

    Differences from pytorch-ignite: one rich bar stands for its two tqdm bars (ours shows the epoch count in
    its label). In a
    distributed job, ``train_sampler.set_epoch(epoch - 1)`` is called at each ``EPOCH_STARTED`` only when it
    is not the sampler of the loader the trainer runs on, since the engine already sets that one's epoch. A
    ``save_handler`` must be a :class:`~ignite_async.handlers.BaseSaveHandler` (not any callable).

    :raises ValueError: for ``output_path`` with ``save_handler``, ``to_save`` with neither, or a
        ``save_every_iters``/``log_every_iters`` that is not an integer >= 1.
    :raises TypeError: for a ``trainer`` that is not an ignite_async ``Engine``, a non-callable
        ``lr_scheduler``, ``output_names`` that is not an iterable of strings (one string included), or
        (distributed) a ``train_sampler`` that is not a ``DistributedSampler``.
    :raises RuntimeError: for ``with_gpu_stats=True`` on a machine without a CUDA GPU (from
        :class:`~ignite_async.metrics.GpuInfo`, which writes ``"gpu:0 mem(%)"`` and ``"gpu:0 util(%)"``).

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> from ignite_async.contrib import common
    >>> trainer = Engine(lambda engine, batch: {"loss": 0.25})
    >>> common.setup_common_training_handlers(trainer, output_names=["loss"], with_pbars=False)
    >>> asyncio.run(trainer.run(range(2))).metrics
    {'loss': 0.25}

    ``setup_common_distrib_training_handlers`` is an alias of this function, as in pytorch-ignite:

    >>> common.setup_common_distrib_training_handlers is common.setup_common_training_handlers
    True
    """
    _check_engine("trainer", trainer)
    world_size = comm.get_world_size()
    if train_sampler is not None:
        if world_size > 1 and not isinstance(train_sampler, DistributedSampler):
            raise TypeError("Train sampler should be torch DistributedSampler and have `set_epoch` method")
        if world_size <= 1 and isinstance(train_sampler, DistributedSampler):
            warnings.warn(
                "Argument train_sampler is a distributed sampler, but either there is no distributed setting or "
                "world size is < 2. Train sampler argument will be ignored",
                UserWarning,
                stacklevel=2,
            )
    if output_path is not None and save_handler is not None:
        raise ValueError(
            "Arguments output_path and save_handler are mutually exclusive. Please, define only one of them"
        )
    if to_save is not None and output_path is None and save_handler is None:
        raise ValueError(
            "If to_save argument is provided then output_path or save_handler arguments should be also defined"
        )
    _check_every("save_every_iters", save_every_iters)
    _check_every("log_every_iters", log_every_iters)
    if lr_scheduler is not None and not callable(lr_scheduler) and not hasattr(lr_scheduler, "step"):
        raise TypeError(f"lr_scheduler must be a torch LR scheduler or a callable handler, got {lr_scheduler!r}")
    names = _check_output_names(output_names)
    if with_gpu_stats:  # first, as in pytorch-ignite: on a machine without a GPU, nothing is attached
        GpuInfo().attach(trainer, name="gpu", event_name=Events.ITERATION_COMPLETED(every=log_every_iters))

    if stop_on_nan:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan())

    if lr_scheduler is not None:
        if isinstance(lr_scheduler, torch.optim.lr_scheduler.LRScheduler):
            scheduler = lr_scheduler
            trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: scheduler.step())
        else:
            trainer.add_event_handler(Events.ITERATION_STARTED, lr_scheduler)

    if torch.cuda.is_available() and clear_cuda_cache:
        trainer.add_event_handler(Events.EPOCH_COMPLETED, empty_cuda_cache)

    if to_save is not None:
        handler: BaseSaveHandler | None = save_handler
        if output_path is not None:
            handler = DiskSaver(output_path, require_empty=False)
        assert handler is not None
        checkpointer = Checkpoint(to_save, handler, filename_prefix="training", **kwargs)
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=save_every_iters), checkpointer)

    for index, name in enumerate(names or ()):
        RunningAverage(output_transform=functools.partial(_output_value, index=index, name=name)).attach(trainer, name)

    if with_pbars and comm.get_rank() == 0:
        event = Events.ITERATION_COMPLETED(every=log_every_iters) if with_pbar_on_iters else Events.EPOCH_COMPLETED
        ProgressBar().attach(trainer, metric_names="all", event_name=event)

    if world_size > 1 and train_sampler is not None:
        trainer.add_event_handler(Events.EPOCH_STARTED, _sampler_epoch_handler(train_sampler))


setup_common_distrib_training_handlers = setup_common_training_handlers


def gen_save_best_models_by_val_score(
    save_handler: BaseSaveHandler | str | Path,
    evaluator: Engine,
    models: nn.Module | Mapping[str, nn.Module],
    metric_name: str,
    n_saved: int = 3,
    trainer: Engine | None = None,
    tag: str = "val",
    score_sign: float = 1.0,
    **kwargs: Any,
) -> Checkpoint:
    """Keep the ``n_saved`` best ``models`` by ``evaluator.state.metrics[metric_name]``, saved with ``save_handler``.

    A :class:`~ignite_async.handlers.Checkpoint` with the prefix ``"best"`` and the score name
    ``f"{tag}_{metric_name.lower()}"``, fired at the evaluator's ``COMPLETED``; with ``trainer``, file names
    carry the trainer's epoch (``best_model_3_val_accuracy=0.9000.pt``). ``score_sign=-1.0`` keeps the
    lowest (a loss). ``kwargs`` go to the Checkpoint.

    :return: the Checkpoint, attached.
    :raises TypeError: for an ``evaluator`` or ``trainer`` that is not an ignite_async ``Engine``, or a
        ``metric_name`` that is not a string.

    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> import torch
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.contrib.common import gen_save_best_models_by_val_score
    >>> trainer = Engine(lambda engine, batch: None)
    >>> evaluator = Engine(lambda engine, batch: None)
    >>> scores = iter([0.5, 0.9, 0.7])
    >>> _ = evaluator.add_event_handler(Events.COMPLETED, lambda e: e.state.metrics.update(acc=next(scores)))
    >>> async def validate(engine):
    ...     await evaluator.run([0])
    >>> _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     best = gen_save_best_models_by_val_score(
    ...         directory, evaluator, {"net": torch.nn.Linear(1, 1)}, "acc", n_saved=1, trainer=trainer
    ...     )
    ...     _ = asyncio.run(trainer.run([0], max_epochs=3))
    ...     names = sorted(path.name for path in Path(directory).glob("*.pt"))
    ...     best.close()
    >>> names
    ['best_net_2_val_acc=0.9000.pt']
    """
    _check_engine("evaluator", evaluator)
    if trainer is not None:
        _check_engine("trainer", trainer)
    _check_metric_name(metric_name)
    to_save: Mapping[str, nn.Module] = {"model": models} if isinstance(models, nn.Module) else models
    checkpointer = Checkpoint(
        to_save,
        save_handler,
        filename_prefix="best",
        n_saved=n_saved,
        global_step_transform=None if trainer is None else global_step_from_engine(trainer),
        score_name=f"{tag}_{metric_name.lower()}",
        score_function=get_default_score_fn(metric_name, score_sign=score_sign),
        **kwargs,
    )
    evaluator.add_event_handler(Events.COMPLETED, checkpointer)
    return checkpointer


def save_best_model_by_val_score(
    output_path: str | Path,
    evaluator: Engine,
    model: nn.Module,
    metric_name: str,
    n_saved: int = 3,
    trainer: Engine | None = None,
    tag: str = "val",
    score_sign: float = 1.0,
    **kwargs: Any,
) -> Checkpoint:
    """:func:`gen_save_best_models_by_val_score` into the directory ``output_path`` (``require_empty=False``).

    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> import torch
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.contrib.common import save_best_model_by_val_score
    >>> evaluator = Engine(lambda engine, batch: None)
    >>> scores = iter([0.5, 0.9, 0.7])
    >>> _ = evaluator.add_event_handler(Events.COMPLETED, lambda e: e.state.metrics.update(acc=next(scores)))
    >>> directory = tempfile.mkdtemp()
    >>> best = save_best_model_by_val_score(directory, evaluator, torch.nn.Linear(1, 1), "acc", n_saved=2)
    >>> for _ in range(3):
    ...     _ = asyncio.run(evaluator.run([0]))
    >>> sorted(path.name for path in Path(directory).glob("*.pt"))
    ['best_model_val_acc=0.7000.pt', 'best_model_val_acc=0.9000.pt']
    """
    return gen_save_best_models_by_val_score(
        DiskSaver(output_path, require_empty=False),
        evaluator,
        model,
        metric_name,
        n_saved=n_saved,
        trainer=trainer,
        tag=tag,
        score_sign=score_sign,
        **kwargs,
    )


def add_early_stopping_by_val_score(
    patience: int, evaluator: Engine, trainer: Engine, metric_name: str, score_sign: float = 1.0
) -> EarlyStopping:
    """Stop ``trainer`` once ``evaluator.state.metrics[metric_name]`` has not improved for ``patience`` runs
    of the evaluator (an :class:`~ignite_async.handlers.EarlyStopping` at its ``COMPLETED``);
    ``score_sign=-1.0`` for a metric that should fall.

    :return: the EarlyStopping handler, attached.

    >>> import asyncio
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.contrib.common import add_early_stopping_by_val_score
    >>> trainer = Engine(lambda engine, batch: None)
    >>> evaluator = Engine(lambda engine, batch: None)
    >>> losses = iter([0.5, 0.4, 0.45, 0.42, 0.41])
    >>> _ = evaluator.add_event_handler(Events.COMPLETED, lambda e: e.state.metrics.update(loss=next(losses)))
    >>> async def validate(engine):
    ...     await evaluator.run([0])
    >>> _ = trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    >>> _ = add_early_stopping_by_val_score(2, evaluator, trainer, "loss", score_sign=-1.0)
    >>> asyncio.run(trainer.run([0], max_epochs=5)).epoch  # no better loss than epoch 2's in epochs 3 and 4
    4
    """
    _check_engine("evaluator", evaluator)
    _check_engine("trainer", trainer)
    stopper = EarlyStopping(
        patience=patience, score_function=get_default_score_fn(metric_name, score_sign=score_sign), trainer=trainer
    )
    evaluator.add_event_handler(Events.COMPLETED, stopper)
    return stopper


def _setup_logging(
    logger: BaseLogger,
    trainer: Engine,
    optimizers: Optimizers | None,
    evaluators: Evaluators | None,
    log_every_iters: int | None,
    trainer_metric_names: MetricNames,
    evaluator_metric_names: MetricNames,
    evaluator_step_event: Any = None,
) -> None:
    every = 1 if log_every_iters is None else log_every_iters
    logger.attach_output_handler(
        trainer, Events.ITERATION_COMPLETED(every=every), "training", metric_names=trainer_metric_names
    )
    if optimizers is not None:
        by_tag = {None: optimizers} if isinstance(optimizers, torch.optim.Optimizer) else optimizers
        for key, optimizer in by_tag.items():
            logger.attach_opt_params_handler(
                trainer, Events.ITERATION_STARTED(every=every), optimizer, param_name="lr", tag=key
            )
    if evaluators is not None:
        by_name = {"validation": evaluators} if isinstance(evaluators, Engine) else evaluators
        # The trainer's epoch, or its counter of evaluator_step_event (W&B needs steps that never decrease).
        step = global_step_from_engine(trainer, custom_event_name=evaluator_step_event)
        for name, evaluator in by_name.items():
            logger.attach_output_handler(
                evaluator, Events.COMPLETED, name, metric_names=evaluator_metric_names, global_step_transform=step
            )


def _check_logging_args(trainer: Engine, optimizers: object, evaluators: object, log_every_iters: object) -> None:
    _check_engine("trainer", trainer)
    if optimizers is not None and not isinstance(optimizers, (torch.optim.Optimizer, Mapping)):
        raise TypeError("Argument optimizers should be either a single optimizer or a dictionary or optimizers")
    if evaluators is not None and not isinstance(evaluators, (Engine, Mapping)):
        raise TypeError("Argument evaluators should be either a single engine or a dictionary or engines")
    if log_every_iters is not None:
        _check_every("log_every_iters", log_every_iters)


def setup_tb_logging(
    output_path: str | Path,
    trainer: Engine,
    optimizers: Optimizers | None = None,
    evaluators: Evaluators | None = None,
    log_every_iters: int | None = 100,
    *,
    trainer_metric_names: MetricNames = "all",
    evaluator_metric_names: MetricNames = "all",
    **kwargs: Any,
) -> TensorBoardLogger:
    """A :class:`~ignite_async.loggers.TensorBoardLogger` in ``output_path`` logging the usual records.

    The trainer's metrics every ``log_every_iters`` iterations (tag ``"training"``; ``None`` means every
    iteration), each optimizer's learning rates at the same iterations' ``ITERATION_STARTED`` (a dict's keys
    as tags), and each evaluator's metrics when it completes, at the trainer's epoch (a single evaluator
    under the tag ``"validation"``, a dict's under its keys). ``kwargs`` go to the logger. Close it when
    done: ``await logger.close()``, or ``async with setup_tb_logging(...) as logger``.

    :raises TypeError: for ``optimizers`` or ``evaluators`` of the wrong type.

    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.contrib.common import setup_tb_logging
    >>> trainer = Engine(lambda engine, batch: None)
    >>> _ = trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: e.state.metrics.update(loss=1.5))
    >>> async def main(directory):
    ...     async with setup_tb_logging(directory, trainer, log_every_iters=2):
    ...         await trainer.run(range(4))
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     asyncio.run(main(directory))
    ...     [path.name.startswith("events.out.tfevents") for path in Path(directory).iterdir()]
    [True]
    """
    _check_logging_args(trainer, optimizers, evaluators, log_every_iters)
    logger = TensorBoardLogger(output_path, **kwargs)
    _setup_logging(
        logger, trainer, optimizers, evaluators, log_every_iters, trainer_metric_names, evaluator_metric_names
    )
    return logger


def setup_jsonl_logging(
    path: str | Path,
    trainer: Engine,
    optimizers: Optimizers | None = None,
    evaluators: Evaluators | None = None,
    log_every_iters: int | None = 100,
    *,
    trainer_metric_names: MetricNames = "all",
    evaluator_metric_names: MetricNames = "all",
    **kwargs: Any,
) -> JSONLinesLogger:
    """:func:`setup_tb_logging`'s records, into a :class:`~ignite_async.loggers.JSONLinesLogger` at ``path``.

    >>> import asyncio, tempfile
    >>> from pathlib import Path
    >>> from ignite_async import Engine, Events
    >>> from ignite_async.contrib.common import setup_jsonl_logging
    >>> from ignite_async.loggers import read_jsonl
    >>> trainer = Engine(lambda engine, batch: None)
    >>> _ = trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: e.state.metrics.update(loss=1.5))
    >>> path = Path(tempfile.mkdtemp()) / "metrics.jsonl"
    >>> async def main():
    ...     async with setup_jsonl_logging(path, trainer, log_every_iters=2):
    ...         await trainer.run(range(4))
    >>> asyncio.run(main())
    >>> [(r["tag"], r["name"], r["step"], r["value"]) for r in read_jsonl(path)]
    [('training', 'loss', 2, 1.5), ('training', 'loss', 4, 1.5)]
    """
    _check_logging_args(trainer, optimizers, evaluators, log_every_iters)
    logger = JSONLinesLogger(path, **kwargs)
    _setup_logging(
        logger, trainer, optimizers, evaluators, log_every_iters, trainer_metric_names, evaluator_metric_names
    )
    return logger


def setup_http_logging(
    url: str,
    trainer: Engine,
    optimizers: Optimizers | None = None,
    evaluators: Evaluators | None = None,
    log_every_iters: int | None = 100,
    *,
    trainer_metric_names: MetricNames = "all",
    evaluator_metric_names: MetricNames = "all",
    **kwargs: Any,
) -> HTTPLogger:
    """:func:`setup_tb_logging`'s records, POSTed to ``url`` by an :class:`~ignite_async.loggers.HTTPLogger`
    (``kwargs`` go to it: ``run_id``, ``batch_size``, ``headers``, ...).

    Building and attaching it contacts nothing; records go out only while the trainer runs:

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> from ignite_async.contrib.common import setup_http_logging
    >>> trainer = Engine(lambda engine, batch: None)
    >>> logger = setup_http_logging("http://127.0.0.1:8000/metrics", trainer, log_every_iters=10, run_id="run-1")
    >>> type(logger).__name__, logger.run_id
    ('HTTPLogger', 'run-1')
    >>> asyncio.run(logger.close())  # nothing was logged: nothing is sent
    """
    _check_logging_args(trainer, optimizers, evaluators, log_every_iters)
    logger = HTTPLogger(url, **kwargs)
    _setup_logging(
        logger, trainer, optimizers, evaluators, log_every_iters, trainer_metric_names, evaluator_metric_names
    )
    return logger


def setup_mlflow_logging(
    trainer: Engine,
    optimizers: Optimizers | None = None,
    evaluators: Evaluators | None = None,
    log_every_iters: int | None = 100,
    *,
    trainer_metric_names: MetricNames = "all",
    evaluator_metric_names: MetricNames = "all",
    **kwargs: Any,
) -> MLflowLogger:
    """:func:`setup_tb_logging`'s records, as the metrics of an MLflow run, by an
    :class:`~ignite_async.loggers.MLflowLogger` (``kwargs`` go to it: ``tracking_uri``, ``experiment``,
    ``run_name``, ...; ``pip install 'ignite-async[mlflow]'``).

    The keys are pytorch-ignite's: ``"training loss"``, ``"lr group_0"`` (``"<key> lr group_0"`` for a dict of
    optimizers), ``"validation accuracy"``; evaluators at the trainer's epoch. The logger's writer thread creates
    the run at its first write after the trainer starts, and ends it (FINISHED, FAILED or KILLED) when the
    trainer's run ends; close the logger when done.

    :raises TypeError: for a ``trainer`` that is not an ignite_async ``Engine``, or ``optimizers`` or
        ``evaluators`` of the wrong type.
    :raises ValueError: for a ``log_every_iters`` that is not None or an integer >= 1.
    :raises ImportError: naming ``pip install 'ignite-async[mlflow]'`` if MLflow is missing.

    Building and attaching it contacts nothing; the run is created once there is something to log:

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> from ignite_async.contrib.common import setup_mlflow_logging
    >>> trainer = Engine(lambda engine, batch: None)
    >>> logger = setup_mlflow_logging(trainer, tracking_uri="http://127.0.0.1:5000", experiment="demo")
    >>> type(logger).__name__, logger.run_id
    ('MLflowLogger', None)
    >>> asyncio.run(logger.close())  # nothing was logged: nothing is sent
    """
    _check_logging_args(trainer, optimizers, evaluators, log_every_iters)
    logger = MLflowLogger(**kwargs)
    _setup_logging(
        logger, trainer, optimizers, evaluators, log_every_iters, trainer_metric_names, evaluator_metric_names
    )
    return logger


def setup_wandb_logging(
    trainer: Engine,
    optimizers: Optimizers | None = None,
    evaluators: Evaluators | None = None,
    log_every_iters: int | None = 100,
    *,
    trainer_metric_names: MetricNames = "all",
    evaluator_metric_names: MetricNames = "all",
    **kwargs: Any,
) -> WandBLogger:
    """:func:`setup_tb_logging`'s records, as the history of a Weights & Biases run, by a
    :class:`~ignite_async.loggers.WandBLogger` (``kwargs`` go to it, and on to ``wandb.init``: ``project``,
    ``name``, ``config``, ``mode``, ``dir``, ...; ``pip install 'ignite-async[wandb]'``).

    As in pytorch-ignite, the evaluators' metrics are logged at the trainer's *iteration* (W&B steps must
    not decrease), under ``"<evaluator key>/<metric>"``; the trainer's under ``"training/<metric>"``. The
    W&B run is started at the first record and finished when the logger is closed.

    :raises TypeError: for a ``trainer`` that is not an ignite_async ``Engine``, ``optimizers`` or
        ``evaluators`` of the wrong type, or a keyword that ``wandb.init`` does not take.
    :raises ValueError: for a ``log_every_iters`` that is not None or an integer >= 1.
    :raises ImportError: naming ``pip install 'ignite-async[wandb]'`` if wandb is missing.

    Building and attaching it starts no W&B run; that happens at the first record:

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> from ignite_async.contrib.common import setup_wandb_logging
    >>> trainer = Engine(lambda engine, batch: None)
    >>> logger = setup_wandb_logging(trainer, project="demo", mode="offline")
    >>> type(logger).__name__, logger.run is None
    ('WandBLogger', True)
    >>> asyncio.run(logger.close())  # nothing was logged: no run was started
    """
    _check_logging_args(trainer, optimizers, evaluators, log_every_iters)
    logger = WandBLogger(**kwargs)
    _setup_logging(
        logger,
        trainer,
        optimizers,
        evaluators,
        log_every_iters,
        trainer_metric_names,
        evaluator_metric_names,
        evaluator_step_event=Events.ITERATION_COMPLETED,
    )
    return logger
