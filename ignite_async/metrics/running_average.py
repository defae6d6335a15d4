"""Exponential moving averages of an output or of a metric, and plain averages."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ignite_async.distributed.comm import all_reduce, get_world_size
from ignite_async.engine import Engine, Events
from ignite_async.metrics.metric import (
    Metric,
    MetricUsage,
    NotComputableError,
    RunningBatchWise,
    SingleEpochRunningBatchWise,
    _usage,
    sync_all_reduce,
)

__all__ = ["Average", "RunningAverage"]


class RunningAverage(Metric):
    """``value = alpha * value + (1 - alpha) * new`` at each update, the first update setting it.

    ``new`` is ``output_transform(output)`` (the output's running average, e.g. the loss's), or, with ``src``,
    the source metric's value on that one batch. Attached with ``running_batch_wise`` usage by default
    (``single_epoch_running_batch_wise`` restarts it each epoch).

    :param epoch_bound: deprecated, as in pytorch-ignite 0.5.5 (a ``UserWarning`` says so): ``True`` attaches
        it as ``usage="single_epoch_running_batch_wise"`` (restarted each epoch), ``False`` as
        ``"running_batch_wise"``, whatever ``usage`` :meth:`attach` is given. ``None`` (the default): the usage
        decides.
    :param skip_unrolling: see :class:`~ignite_async.metrics.metric.Metric`.

    >>> import asyncio
    >>> from ignite_async import Engine
    >>> from ignite_async.metrics import RunningAverage
    >>> engine = Engine(lambda e, b: float(b))
    >>> RunningAverage(output_transform=lambda loss: loss, alpha=0.5).attach(engine, "avg_loss")
    >>> asyncio.run(engine.run([4.0, 0.0, 2.0])).metrics["avg_loss"]
    2.0
    """

    _state_attrs = ("_value",)
    required_output_keys = None

    def __init__(
        self,
        src: Metric | None = None,
        alpha: float = 0.98,
        output_transform: Callable[[Any], Any] | None = None,
        epoch_bound: bool | None = None,
        device: str | torch.device | None = None,
        skip_unrolling: bool = False,
    ) -> None:
        if not (isinstance(src, Metric) or src is None):
            raise TypeError(f"src must be a Metric or None, got {type(src).__name__}")
        if not (isinstance(alpha, (int, float)) and 0.0 < alpha <= 1.0):
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if src is not None:
            if output_transform is not None:
                raise ValueError("give output_transform or src, not both (src has its own)")
            if device is not None:
                raise ValueError("device is src's when src is given")
            device = src._device
        elif output_transform is None:
            raise ValueError("give src (a metric) or output_transform (to average the process function's output)")
        if epoch_bound is not None:
            if not isinstance(epoch_bound, bool):
                raise TypeError(f"epoch_bound must be None, True or False, got {epoch_bound!r}")
            usage = "single_epoch_running_batch_wise" if epoch_bound else "running_batch_wise"
            warnings.warn(
                f"RunningAverage(epoch_bound={epoch_bound}) is deprecated (as in pytorch-ignite 0.5.5): attach it "
                f"with usage={usage!r} instead, which is what epoch_bound={epoch_bound} means",
                UserWarning,
                stacklevel=2,
            )
        self.src = src
        self.alpha = alpha
        self.epoch_bound = epoch_bound
        super().__init__(output_transform or (lambda x: x), device or "cpu", skip_unrolling=skip_unrolling)

    def reset(self) -> None:
        self._value: Any = None
        if self.src is not None:
            self.src.reset()

    def update(self, output: Any) -> None:
        if self.src is None:
            value = output
            if isinstance(value, torch.Tensor):
                # A CPU scalar (the usual loss) is averaged as a float: three tensor ops cost more than the
                # rest of an update. Any other tensor stays a tensor on the device, never read back here.
                if value.ndim == 0 and value.device.type == "cpu":
                    value = value.item()
                else:
                    value = value.detach().to(self._device)
        else:
            value = self.src.compute()  # the source's value on this batch, then start it afresh
            self.src.reset()
        if self._value is None:
            # A copy: the output's tensor may be reused by whoever produced it.
            self._value = value.clone() if isinstance(value, torch.Tensor) else value
        else:
            self._value = self._value * self.alpha + (1.0 - self.alpha) * value

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.src is not None:
            state["src"] = self.src.state_dict()  # what the source has accumulated since its last value
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.src is not None:
            if "src" not in state_dict:
                raise ValueError("RunningAverage.load_state_dict: the state lacks its source metric's ('src')")
            self.src.load_state_dict(state_dict["src"])

    def compute(self) -> Any:
        if self.src is None and self._value is not None and get_world_size() > 1:
            return all_reduce(self._value) / get_world_size()  # the mean of the ranks' averages
        return self._value

    def _bound_usage(self, usage: str | MetricUsage) -> MetricUsage:
        u = _usage(usage)  # checked even when epoch_bound overrides it, as pytorch-ignite
        if self.epoch_bound is None:
            return u
        return SingleEpochRunningBatchWise() if self.epoch_bound else RunningBatchWise()

    def attach(self, engine: Engine, name: str, usage: str | MetricUsage = "running_batch_wise") -> None:
        usage = self._bound_usage(usage)
        if self.src is not None and not engine.has_event_handler(
            self.src.iteration_completed, Events.ITERATION_COMPLETED
        ):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.src.iteration_completed)
        super().attach(engine, name, usage)

    def detach(self, engine: Engine, usage: str | MetricUsage = "running_batch_wise") -> None:
        usage = self._bound_usage(usage)
        src = self.src
        if src is not None and engine.has_event_handler(src.iteration_completed, Events.ITERATION_COMPLETED):
            engine.remove_event_handler(src.iteration_completed, Events.ITERATION_COMPLETED)
        super().detach(engine, usage)


class Average(Metric):
    """The mean of the outputs: numbers, or tensors whose first dimension is the batch (averaged over it)."""

    _state_attrs = ("_sum", "_num_examples")
    required_output_keys = None

    def reset(self) -> None:
        self._sum: Any = torch.tensor(0.0, dtype=torch.float64, device=self._device)
        self._num_examples = 0

    def update(self, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            output = output.detach().to(self._sum)
            if output.ndim > 1:
                self._sum = self._sum + output.sum(dim=0)
                self._num_examples += output.shape[0]
                return
        elif isinstance(output, bool) or not isinstance(output, numbers.Number):
            raise TypeError(f"Average takes numbers or tensors, got {type(output).__name__}")
        self._sum = self._sum + output
        self._num_examples += 1

    @sync_all_reduce("_sum", "_num_examples")
    def compute(self) -> Any:
        if self._num_examples == 0:
            raise NotComputableError("Average must have at least one example before it can be computed")
        return self._sum / self._num_examples
