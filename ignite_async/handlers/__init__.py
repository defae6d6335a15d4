"""Handlers for training: checkpoints, early stopping, NaN guards, timers (pytorch-ignite's ``ignite.handlers``)."""

from __future__ import annotations

from ignite_async.handlers.basic_profiler import BasicTimeProfiler
from ignite_async.handlers.checkpoint import (
    BaseSaveHandler,
    Checkpoint,
    CheckpointEvents,
    CheckpointInUseError,
    DiskSaver,
    ModelCheckpoint,
)
from ignite_async.handlers.distributed_checkpoint import DCPSaver
from ignite_async.handlers.early_stopping import EarlyStopping
from ignite_async.handlers.ema import EMAHandler
from ignite_async.handlers.epoch_output_store import EpochOutputStore
from ignite_async.handlers.global_step import global_step_from_engine
from ignite_async.handlers.lr_finder import FastaiLRFinder
from ignite_async.handlers.lr_plateau import ReduceLROnPlateauScheduler
from ignite_async.handlers.param_scheduler import (
    BaseParamScheduler,
    BatchSizeScheduler,
    ConcatScheduler,
    CosineAnnealingScheduler,
    CyclicalScheduler,
    LinearCyclicalScheduler,
    LRScheduler,
    ParamGroupScheduler,
    ParamScheduler,
    PiecewiseLinear,
    create_lr_scheduler_with_warmup,
)
from ignite_async.handlers.profiler import HandlersTimeProfiler
from ignite_async.handlers.progress import ProgressBar
from ignite_async.handlers.rng_states import RNGStates
from ignite_async.handlers.state_param_scheduler import (
    ExpStateScheduler,
    LambdaStateScheduler,
    MultiStepStateScheduler,
    PiecewiseLinearStateScheduler,
    StateParamScheduler,
    StepStateScheduler,
)
from ignite_async.handlers.swa import StochasticWeightAveraging
from ignite_async.handlers.terminate_on_nan import TerminateOnNan
from ignite_async.handlers.time_limit import TimeLimit
from ignite_async.handlers.timer import Timer
from ignite_async.handlers.tracer import Tracer

__all__ = [
    "BaseParamScheduler",
    "BaseSaveHandler",
    "BasicTimeProfiler",
    "BatchSizeScheduler",
    "Checkpoint",
    "CheckpointEvents",
    "CheckpointInUseError",
    "ConcatScheduler",
    "CosineAnnealingScheduler",
    "CyclicalScheduler",
    "DCPSaver",
    "DiskSaver",
    "EMAHandler",
    "EarlyStopping",
    "EpochOutputStore",
    "ExpStateScheduler",
    "FastaiLRFinder",
    "HandlersTimeProfiler",
    "LRScheduler",
    "LambdaStateScheduler",
    "LinearCyclicalScheduler",
    "ModelCheckpoint",
    "MultiStepStateScheduler",
    "ParamGroupScheduler",
    "ParamScheduler",
    "PiecewiseLinear",
    "PiecewiseLinearStateScheduler",
    "ProgressBar",
    "RNGStates",
    "ReduceLROnPlateauScheduler",
    "StateParamScheduler",
    "StepStateScheduler",
    "StochasticWeightAveraging",
    "TerminateOnNan",
    "TimeLimit",
    "Timer",
    "Tracer",
    "create_lr_scheduler_with_warmup",
    "global_step_from_engine",
]
